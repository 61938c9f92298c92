/**
 * The probe runner: one entry point for every probe kind, and probe.json caching. A saved
 * probe is reused when its kind, settings and model fingerprint all match; otherwise the probe
 * runs again and the file is rewritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadLapack, onOneThread } from '../backend/lapack.ts';
import type { Batch } from '../data/batch.ts';
import { fieldError, HiloError } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';
import { projectionPaths } from '../model/families.ts';
import type { CausalLM, ModelConfig } from '../model/types.ts';
import { activationRankScores } from './activation-rank.ts';
import { alphaHillScores } from './alpha-hill.ts';
import { alphaHillFromDir } from './alpha-hill-dir.ts';
import { calibrationDigest } from './calibration.ts';
import { passTokens, splitsBatches } from './passes.ts';
import { depthScores } from './depth.ts';
import { configFingerprint, modelFingerprint } from './fingerprint.ts';
import { gradSensitivityScores } from './grad-sensitivity.ts';
import { EVALS_THRESH, type WeightMatrix } from './hill.ts';
import type { ProbeProgress } from './progress.ts';
import { PROBE_KINDS, type ProbeKind, type ProbeResult } from './types.ts';

/** The model a probe looks at: its config always; its directory for weight probes; a loaded LM for data probes. */
export interface ProbeModel {
  config: ModelConfig;
  /** HF model directory: weights for alpha-hill (read tensor by tensor) and the fingerprint. */
  dir?: string;
  /** Loaded model, needed by grad-sensitivity and activation-rank (and alpha-hill without a dir). */
  lm?: CausalLM;
}

export interface ProbeOptions {
  /** Calibration batches for grad-sensitivity and activation-rank. */
  batches?: readonly Batch[];
  /** activation-rank: in-layer path whose inputs are measured (default: the layer's first linear). */
  inputModule?: string;
  /** alpha-hill from a directory: matrices done, time and time left, after each matrix. */
  onProgress?: (p: ProbeProgress) => void;
  /** Data probes: most tokens one pass holds (default: HILO_PROBE_PASS_TOKENS, else PASS_TOKENS). */
  maxTokensPerPass?: number;
}


export function checkProbeKind(kind: string, field = 'recipe.adapter.probe'): ProbeKind {
  if (!(PROBE_KINDS as readonly string[]).includes(kind)) throw fieldError(field, kind, PROBE_KINDS);
  return kind as ProbeKind;
}

/** Everything besides the model that changes a probe's numbers. */
export function probeSettings(kind: ProbeKind, config: ModelConfig, opts: ProbeOptions = {}): Record<string, unknown> {
  switch (kind) {
    case 'depth':
      return { score: 'l/(L-1)' };
    case 'alpha-hill':
      return { evals_thresh: EVALS_THRESH, xmin_candidates: 'all eigenvalues but the largest', layer_score: 'mean over the layer linears' };
    case 'grad-sensitivity': {
      // micro-batches change the numbers (|w g| of each pass's gradient), so a split is recorded
      const cap = opts.maxTokensPerPass ?? passTokens();
      const split = splitsBatches(opts.batches ?? [], cap) ? { max_tokens_per_pass: cap } : {};
      return { importance: 'sum |w dL/dw| per layer, mean over batches', calibration: calibrationDigest(opts.batches ?? []), ...split };
    }
    case 'activation-rank':
      return { input_module: opts.inputModule ?? projectionPaths(config)[0], calibration: calibrationDigest(opts.batches ?? []) };
  }
}

export function fingerprintOf(model: ProbeModel): string {
  return model.dir ? modelFingerprint(model.dir) : configFingerprint(model.config);
}

function lmMatrices(lm: CausalLM): (modulePath: string) => WeightMatrix {
  return (p) => {
    const m = lm.baseModules.get(p);
    if (!m) throw new HiloError(`alpha-hill: the model has no module ${p}`);
    return { rows: m.inFeatures, cols: m.outFeatures, data: m.kernelValues() }; // [in, out]; the spectrum is the same
  };
}

/** Run probe `kind` on `model`. Data probes need `model.lm` and `opts.batches`. */
export async function runProbe(kind: ProbeKind, model: ProbeModel, opts: ProbeOptions = {}): Promise<ProbeResult> {
  checkProbeKind(kind);
  const base = { kind, settings: probeSettings(kind, model.config, opts), fingerprint: fingerprintOf(model) };
  if (kind === 'depth') return { ...base, layers: depthScores(model.config.numLayers) };
  if (kind === 'alpha-hill') {
    if (model.dir) {
      const s = await alphaHillFromDir(model.config, model.dir, { onProgress: opts.onProgress });
      return { ...base, layers: s.layers, modules: s.modules };
    }
    if (!model.lm) throw new HiloError('alpha-hill: needs the model directory or a loaded model');
    const lapack = loadLapack().lapack;
    const s = await onOneThread(lapack, () => alphaHillScores(model.config, lmMatrices(model.lm!), { lapack }));
    return { ...base, layers: s.layers, modules: s.modules };
  }
  if (!model.lm) throw new HiloError(`${kind}: needs a loaded model`);
  if (!opts.batches?.length) throw new HiloError(`${kind}: needs calibration batches (recipe.adapter.calibration.batches >= 1)`);
  const maxTokensPerPass = opts.maxTokensPerPass ?? passTokens();
  if (kind === 'grad-sensitivity') return { ...base, ...gradSensitivityScores(model.lm, opts.batches, { maxTokensPerPass }) };
  const lapack = loadLapack().lapack;
  const lm = model.lm;
  const batches = opts.batches;
  const ranks = await onOneThread(lapack, () => activationRankScores(lm, batches, base.settings.input_module as string, lapack, { maxTokensPerPass }));
  return { ...base, layers: ranks.layers };
}

/** Key order-independent JSON, so settings compare by value. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Atomic (temp file + rename): the probe cache is shared by runs that may finish together. */
export function writeProbeFile(file: string, result: ProbeResult): void {
  writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
}

/** Read and check a probe.json; errors name the file and the field. */
export function readProbeFile(file: string): ProbeResult {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${file}: cannot read a probe.json (${(e as Error).message})`);
  }
  checkProbeKind(String(raw.kind), `${file}: kind`);
  const layers = raw.layers;
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw fieldError(`${file}: layers`, layers, 'a non-empty list of finite numbers');
  }
  if (typeof raw.fingerprint !== 'string') throw fieldError(`${file}: fingerprint`, raw.fingerprint, 'a string');
  const settings = raw.settings;
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw fieldError(`${file}: settings`, settings, 'an object');
  const modules = raw.modules as ProbeResult['modules'];
  return { kind: raw.kind as ProbeKind, settings: settings as Record<string, unknown>, layers, ...(modules ? { modules } : {}), fingerprint: raw.fingerprint };
}

/**
 * The saved probe at `file` if it was made by the same kind, settings and model; null when the
 * file is absent or stale (the caller then runs the probe and writes the file again).
 */
export function reusableProbe(file: string, kind: ProbeKind, model: ProbeModel, opts: ProbeOptions = {}): ProbeResult | null {
  if (!fs.existsSync(file)) return null;
  const saved = readProbeFile(file);
  const same = saved.kind === kind
    && saved.fingerprint === fingerprintOf(model)
    && canonical(saved.settings) === canonical(probeSettings(kind, model.config, opts));
  return same ? saved : null;
}

/**
 * `hilo export`: a trained run (its adapter or a checkpoint) as a hilo adapter package, a PEFT
 * LoRA adapter, or a merged Hugging Face model; and a PEFT adapter imported as a hilo adapter.
 * Every format is written to a temporary folder and renamed into place (out-dir.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Adapters } from '../adapters/inject.ts';
import { saveAdapters } from '../adapters/io.ts';
import { checkModelLoad } from '../allocate/memory-for-recipe.ts';
import { writePlanFile } from '../allocate/plan-file.ts';
import { initBackend } from '../backend/index.ts';
import { HiloError } from '../errors.ts';
import { buildModel, loadModel } from '../model/load.ts';
import { encodeSafetensors } from '../model/safetensors.ts';
import { saveModel } from '../model/save.ts';
import type { CausalLM, LinearModule } from '../model/types.ts';
import { calibrationDigest } from '../probe/calibration.ts';
import { modelFingerprint } from '../probe/fingerprint.ts';
import { calibrationBatches } from '../probe/for-recipe.ts';
import { heldOutBatches, relativeLogitError, type Forward, type LogitError } from './approx.ts';
import { measureGateMeans, type GateMeans } from './gate-means.ts';
import { hiloPackageConfig } from './hilo-package.ts';
import { mergedTensors } from './merged.ts';
import { commitOutDir, checkOutDir, PROVENANCE_FILE, tempDirFor, type Provenance } from './out-dir.ts';
import { peftFromAdapters, peftTensors, type PeftExport } from './peft.ts';
import { injectPeft, readPeftAdapter } from './peft-import.ts';
import { openSource, resolveSource, type ExportSource } from './source.ts';

export const EXPORT_FORMATS = ['hilo', 'peft', 'merged'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  format?: ExportFormat;
  /** Default: adapters/<run name>[-peft|-merged] under the current directory. */
  out?: string;
  /** A checkpoint step N or folder instead of the run's final adapter. */
  checkpoint?: string;
  /** Training batches (recipe data, seeded) for the mean routing weights; default the recipe's adapter.calibration.batches. */
  calibration?: number;
  force?: boolean;
  /** Default: the recipe's backend. */
  backend?: string;
  log?: (msg: string) => void;
}

export interface ExportResult {
  out: string;
  format: ExportFormat;
  status: 'written' | 'replaced' | 'unchanged';
  /** True when no module had to be folded (every module one expert). */
  exact: boolean;
  /** peft/merged: the export's logits against the mixture's on held-out data. */
  error: LogitError | null;
}

/** Logits with `modules` swapped into model.modules for the duration of one forward. */
function forwardWith(model: CausalLM, modules: Map<string, LinearModule>): Forward {
  return (ids, mask) => {
    const before = new Map([...modules.keys()].map((p) => [p, model.modules.get(p)!]));
    for (const [p, m] of modules) model.modules.set(p, m);
    try {
      return model.forward(ids, { attentionMask: mask });
    } finally {
      for (const [p, m] of before) model.modules.set(p, m);
    }
  };
}

/** Mean routing weights of every mixture module on the recipe's calibration batches (none needed without mixtures). */
async function gatesFor(src: ExportSource, model: CausalLM, adapters: Adapters, batches: number | undefined, log: (m: string) => void) {
  if (![...adapters.layers.values()].some((m) => m.spec.experts > 1)) return { gates: new Map() as GateMeans, calibration: null };
  const n = batches ?? src.recipe.adapter.calibration.batches;
  if (!(Number.isInteger(n) && n >= 1)) throw new HiloError(`--calibration: got ${n}; allowed: an integer >= 1`);
  const cal = await calibrationBatches({ ...src.recipe, adapter: { ...src.recipe.adapter, calibration: { ...src.recipe.adapter.calibration, batches: n } } });
  log(`measuring mean routing weights on ${cal.length} calibration batches of the training data`);
  return { gates: measureGateMeans(model, adapters, cal), calibration: calibrationDigest(cal) };
}

const roundTo = (x: number) => Number(x.toPrecision(6));

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

async function writeFolded(format: 'peft' | 'merged', src: ExportSource, model: CausalLM, adapters: Adapters, tmp: string, prov: Provenance, opts: ExportOptions) {
  const log = opts.log ?? (() => {});
  const { gates, calibration } = await gatesFor(src, model, adapters, opts.calibration, log);
  const peft: PeftExport = peftFromAdapters(adapters, model.config, src.recipe.model.path, gates);
  const held = heldOutBatches(src.recipe, model.config.vocabSize);
  log(`measuring the logit error on ${held.sequences} ${held.split} sequences`);
  const moe = forwardWith(model, new Map(adapters.layers));
  let error: LogitError;
  const folded = [...adapters.layers.values()].filter((m) => m.spec.experts > 1).length;
  // the hilo_export record: what it came from, and how close the folding is
  const record = (e: LogitError) => ({
    ...prov,
    exact: folded === 0,
    folded_modules: folded,
    routing_weights: Object.fromEntries([...gates].map(([p, w]) => [p, w.map(roundTo)])),
    calibration,
    approximation_error: { relative_logit_error: e.relative, max_abs_logit_error: e.maxAbs, split: held.split, sequences: held.sequences, tokens: e.tokens },
  });
  if (format === 'peft') {
    adapters.remove();
    const modules = new Map(peft.modules.map((m) => [m.path, { A: m.A, B: m.B }]));
    const imported = injectPeft(model, { config: peft.config, modules, source: 'export' });
    try {
      error = relativeLogitError(held.batches, moe, forwardWith(model, new Map(imported.layers)));
    } finally {
      imported.dispose();
    }
    const cfg = sortKeys({ ...peft.config, hilo_export: record(error) });
    fs.writeFileSync(path.join(tmp, 'adapter_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
    fs.writeFileSync(path.join(tmp, 'adapter_model.safetensors'), encodeSafetensors(peftTensors(peft.modules)));
  } else {
    const tensors = mergedTensors(model, peft.modules);
    // held the way the base is (outside the engine, in its dtype, when it is): buildModel shares those bytes
    const merged = buildModel(model.config, new Map(tensors), { source: 'merged export', storage: model.storage });
    try {
      error = relativeLogitError(held.batches, moe, (ids, mask) => merged.forward(ids, { attentionMask: mask }));
      await saveModel(tensors, tmp, { config: model.config, tokenizerFrom: src.recipe.model.path, metadata: { hilo: 'merged' } });
    } finally {
      merged.dispose();
    }
    fs.writeFileSync(path.join(tmp, PROVENANCE_FILE), `${JSON.stringify({ ...record(error), base_model_name_or_path: src.recipe.model.path }, null, 2)}\n`);
  }
  return { exact: folded === 0, error };
}

/** Export a run (see ExportOptions); returns where it went and, for folded formats, the error. */
export async function exportRun(target: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const format = opts.format ?? 'hilo';
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new HiloError(`--format: got "${format}"; allowed: ${EXPORT_FORMATS.map((f) => `"${f}"`).join(' | ')}`);
  const src = resolveSource(target, opts.checkpoint);
  const out = path.resolve(opts.out ?? path.join('adapters', `${src.runName}${format === 'hilo' ? '' : `-${format}`}`));
  const prov: Provenance = { format, source: src.dir };
  checkOutDir(out, prov, opts.force ?? false);
  await initBackend(opts.backend ?? src.recipe.backend);
  opts.log?.(`exporting ${src.dir} as ${format} to ${out}`);
  const { model, adapters } = await openSource(src);
  const tmp = tempDirFor(out);
  try {
    let exact = true;
    let error: LogitError | null = null;
    if (format === 'hilo') {
      saveAdapters(adapters, tmp, hiloPackageConfig(src, model, adapters, { ...prov }));
      writePlanFile(path.join(tmp, 'plan.json'), adapters.plan);
    } else {
      ({ exact, error } = await writeFolded(format, src, model, adapters, tmp, prov, opts));
    }
    const status = commitOutDir(tmp, out, opts.force ?? false);
    return { out, format, status, exact, error };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    adapters.dispose();
    model.dispose();
  }
}

export interface ImportOptions {
  /** The base model folder; default the PEFT config's base_model_name_or_path when it is a local folder. */
  model?: string;
  out?: string;
  force?: boolean;
  backend?: string;
}

/** A PEFT LoRA folder -> a hilo adapter package (one-expert modules) + its plan.json. */
export async function importPeft(peftDir: string, opts: ImportOptions = {}): Promise<{ out: string; status: string; modules: number }> {
  const peft = readPeftAdapter(peftDir);
  const base = opts.model ?? (typeof peft.config.base_model_name_or_path === 'string' ? peft.config.base_model_name_or_path : '');
  if (!base || !fs.existsSync(path.join(base, 'config.json'))) {
    throw new HiloError(`--model: got ${JSON.stringify(base)}; allowed: the base model folder the PEFT adapter was trained on (its base_model_name_or_path is not a local model folder)`);
  }
  const out = path.resolve(opts.out ?? path.join('adapters', `${path.basename(path.resolve(peftDir))}-hilo`));
  const prov: Provenance = { format: 'hilo', source: path.resolve(peftDir) };
  checkOutDir(out, prov, opts.force ?? false);
  await initBackend(opts.backend ?? 'auto');
  const model = await loadModel(base, { check: checkModelLoad });
  const tmp = tempDirFor(out);
  try {
    const adapters = injectPeft(model, peft);
    try {
      saveAdapters(adapters, tmp, {
        hilo_export: { ...prov }, base_model_name_or_path: base, base_model_fingerprint: modelFingerprint(base),
        imported_from: { peft_type: 'LORA', dir: path.resolve(peftDir) }, trainable_params: adapters.numParams(), active_params: adapters.numParams(),
      });
      writePlanFile(path.join(tmp, 'plan.json'), adapters.plan);
    } finally {
      adapters.dispose();
    }
    return { out, status: commitOutDir(tmp, out, opts.force ?? false), modules: peft.modules.size };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    model.dispose();
  }
}

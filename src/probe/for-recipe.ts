/**
 * The probe a recipe asks for, measured or reused: adapter.probe_path if given, else
 * <output_dir>/probe.json when it matches kind, settings and model, else the machine's probe cache
 * (cache.ts), else a fresh run saved to both.
 * Only the data probes load the model (and tfjs); depth needs config.json alone and alpha-hill
 * reads the safetensors files tensor by tensor.
 */
import path from 'node:path';
import type { Batch } from '../data/batch.ts';
import { fieldError, HiloError } from '../errors.ts';
import { checkMaxLength } from '../model/check.ts';
import { readModelConfig, type LoadCheck } from '../model/load.ts';
import { DATA_PROBES, probeKindFor } from '../names.ts';
import type { Recipe } from '../recipe/schema.ts';
import { cacheProbe, cachedProbe } from './cache.ts';
import { progressPrinter, type ProbeProgress } from './progress.ts';
import { fingerprintOf, readProbeFile, reusableProbe, runProbe, writeProbeFile, type ProbeModel } from './run.ts';
import type { ProbeKind, ProbeResult } from './types.ts';

export interface RecipeProbe {
  result: ProbeResult;
  /** Where it was read from or written to. */
  file: string;
  reused: boolean;
  /** The shared cache entry it came from or was saved to (cache.ts); null when unused or off. */
  cache: string | null;
}

/** The kind a recipe measures: alphalora is alpha-hill by definition; otherwise adapter.probe. */
export function recipeProbeKind(recipe: Pick<Recipe, 'adapter'>): ProbeKind {
  return (probeKindFor(recipe.adapter) ?? recipe.adapter.probe) as ProbeKind;
}

/** The first adapter.calibration.batches training batches, in the run's seeded order. */
export async function calibrationBatches(recipe: Recipe): Promise<Batch[]> {
  const { loadDataset, encodeDataset, makeBatches, padIdOf } = await import('../data/index.ts');
  const { loadTokenizer } = await import('../model/tokenizer.ts');
  const tok = loadTokenizer(recipe.model.path);
  checkMaxLength(recipe.data.max_length, readModelConfig(recipe.model.path), recipe.model.path); // errors only: training warns
  const encoded = encodeDataset(loadDataset(recipe.data, path.dirname(recipe.model.path), recipe.seed), tok, recipe.data);
  if (encoded.train.length === 0) throw new HiloError('recipe.data: no training examples to calibrate the probe on');
  const { batches, batch_size: batchSize } = recipe.adapter.calibration;
  const out: Batch[] = [];
  for (const { batch } of makeBatches(encoded.train, { batchSize: Math.min(batchSize, encoded.train.length), seed: recipe.seed, padId: padIdOf(tok) })) {
    out.push(batch);
    if (out.length === batches) break;
  }
  return out;
}

/**
 * Measure (or reuse) the recipe's probe. `backend` is initialised only when a data probe must
 * run, and the model loaded after `check` (the caller's memory check, model/load.ts LoadCheck).
 * Progress goes to stderr unless `onProgress` says otherwise (null: silent).
 */
export async function probeForRecipe(
  recipe: Recipe,
  opts: { backend?: string; force?: boolean; onProgress?: ((p: ProbeProgress) => void) | null; env?: NodeJS.ProcessEnv; check?: LoadCheck } = {},
): Promise<RecipeProbe> {
  const kind = recipeProbeKind(recipe);
  const dir = recipe.model.path;
  const source: ProbeModel = { config: readModelConfig(dir), dir };
  if (recipe.adapter.probe_path) {
    const file = recipe.adapter.probe_path;
    const result = readProbeFile(file);
    if (result.kind !== kind) throw fieldError('recipe.adapter.probe_path', file, `a probe.json of kind "${kind}" (this one is "${result.kind}")`);
    if (result.fingerprint !== fingerprintOf(source)) {
      throw fieldError('recipe.adapter.probe_path', file, `a probe.json measured on ${dir} (its model fingerprint differs)`);
    }
    return { result, file, reused: true, cache: null };
  }
  const file = path.join(recipe.output_dir, 'probe.json');
  const data = DATA_PROBES.includes(kind);
  const batches = data ? await calibrationBatches(recipe) : undefined;
  if (!opts.force) {
    const saved = reusableProbe(file, kind, source, { batches });
    if (saved) return { result: saved, file, reused: true, cache: null };
    const cached = cachedProbe(kind, source, fingerprintOf(source), { batches }, opts.env);
    if (cached) {
      writeProbeFile(file, cached.result);
      return { result: cached.result, file, reused: true, cache: cached.file };
    }
  }
  let result: ProbeResult;
  if (data) {
    const { initBackend } = await import('../backend/index.ts');
    const { loadModel } = await import('../model/load.ts');
    await initBackend(opts.backend ?? recipe.backend);
    const lm = await loadModel(dir, { check: opts.check });
    try {
      result = await runProbe(kind, { ...source, lm }, { batches });
    } finally {
      lm.dispose();
    }
  } else {
    const onProgress = opts.onProgress === undefined ? progressPrinter(`${kind} on ${dir}`) : (opts.onProgress ?? undefined);
    result = await runProbe(kind, source, { onProgress });
  }
  writeProbeFile(file, result);
  return { result, file, reused: false, cache: cacheProbe(result, opts.env) };
}

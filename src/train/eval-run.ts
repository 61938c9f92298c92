/**
 * `hilo eval`: score a trained run (its adapter, or its full model) or the untouched base model
 * on the recipe's eval or test split, without writing anything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { loadRecipe } from '../recipe/load.ts';
import type { Recipe } from '../recipe/schema.ts';
import type { EvalMetrics } from './evaluate.ts';
import { evaluateRun } from './loop.ts';
import { prepareRun } from './run.ts';

export interface EvalTarget {
  recipe: Recipe;
  /** The adapter folder to load, or null for a full model / the base model. */
  adapterDir: string | null;
  /** What is being scored, in words. */
  what: string;
}

/** A run folder (with recipe.json) or a recipe file -> what to evaluate. */
export function resolveEvalTarget(target: string, overrides: readonly string[], base: boolean): EvalTarget {
  if (!fs.existsSync(target)) throw new HiloError(`eval: ${target} does not exist; give a run folder (runs/<name>) or a recipe file`);
  const isDir = fs.statSync(target).isDirectory();
  const recipeFile = isDir ? path.join(target, 'recipe.json') : target;
  if (isDir && !fs.existsSync(recipeFile)) throw new HiloError(`eval: ${target} has no recipe.json; is it a hilo run folder?`);
  const recipe = loadRecipe(recipeFile, overrides);
  if (base) return { recipe: { ...recipe, adapter: { ...recipe.adapter, method: 'none' } }, adapterDir: null, what: `base model ${recipe.model.path}` };
  const runDir = isDir ? path.resolve(target) : recipe.output_dir;
  const adapterDir = path.join(runDir, 'adapter');
  const modelDir = path.join(runDir, 'model');
  if (fs.existsSync(path.join(adapterDir, 'adapter_config.json'))) return { recipe, adapterDir, what: `adapter ${adapterDir}` };
  if (fs.existsSync(path.join(modelDir, 'config.json'))) {
    return { recipe: { ...recipe, model: { ...recipe.model, path: modelDir }, adapter: { ...recipe.adapter, method: 'none' } }, adapterDir: null, what: `model ${modelDir}` };
  }
  throw new HiloError(`eval: ${runDir} holds no trained adapter/ or model/ yet; train it first (hilo train ...) or pass --base to score the base model`);
}

export async function evaluateTarget(t: EvalTarget, split: 'eval' | 'test', log: (m: string) => void): Promise<EvalMetrics> {
  const run = await prepareRun(t.recipe, { log, sink: false, adapterDir: t.adapterDir ?? undefined, evalOnly: true });
  try {
    return await evaluateRun(run, split);
  } finally {
    run.dispose();
  }
}

/**
 * What an export starts from: a run folder's final adapter (runs/<name>/adapter), or one of its
 * checkpoints (trainable.safetensors + plan.json), rebuilt on the run's base model.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { injectAdapters, type Adapters } from '../adapters/inject.ts';
import { ADAPTER_CONFIG_FILE, loadAdapters } from '../adapters/io.ts';
import { checkModelLoad } from '../allocate/memory-for-recipe.ts';
import { readPlan } from '../allocate/plan-file.ts';
import { HiloError } from '../errors.ts';
import { loadModel } from '../model/load.ts';
import { readSafetensors } from '../model/safetensors.ts';
import type { CausalLM } from '../model/types.ts';
import { loadRecipe } from '../recipe/load.ts';
import type { Recipe } from '../recipe/schema.ts';
import { assertCheckpoint, latestCheckpoint } from '../train/checkpoint.ts';

export interface ExportSource {
  runDir: string;
  /** The run folder's name: the default export folder name. */
  runName: string;
  recipe: Recipe;
  /** The trained weights: the run's adapter folder, or a checkpoint folder. */
  kind: 'adapter' | 'checkpoint';
  dir: string;
}

const CHECKPOINT_NAME = /^checkpoint-\d+$/;

/**
 * RUN_DIR (or a checkpoint folder inside one) and --checkpoint N|DIR -> what to export.
 * `who` starts the messages: the command, or the option that named the folder.
 */
export function resolveSource(target: string, checkpoint?: string, who = 'export'): ExportSource {
  if (!fs.existsSync(target) || !fs.statSync(target).isDirectory()) {
    throw new HiloError(`${who}: ${target} does not exist; give a run folder (runs/<name>) written by hilo train`);
  }
  let runDir = path.resolve(target);
  if (checkpoint === undefined && CHECKPOINT_NAME.test(path.basename(runDir))) {
    // a checkpoint folder given directly: its run is the parent
    checkpoint = runDir;
    runDir = path.dirname(runDir);
  }
  if (!fs.existsSync(path.join(runDir, 'recipe.json'))) throw new HiloError(`${who}: ${runDir} has no recipe.json; is it a hilo run folder?`);
  let kind: ExportSource['kind'];
  let dir: string;
  if (checkpoint !== undefined) {
    kind = 'checkpoint';
    dir = /^\d+$/.test(checkpoint) ? path.join(runDir, `checkpoint-${checkpoint}`) : path.resolve(checkpoint);
    assertCheckpoint(dir);
  } else if (fs.existsSync(path.join(runDir, 'adapter', ADAPTER_CONFIG_FILE))) {
    kind = 'adapter';
    dir = path.join(runDir, 'adapter');
  } else {
    const latest = latestCheckpoint(runDir);
    if (!latest) throw new HiloError(`${who}: ${runDir} holds no trained adapter/ and no complete checkpoint yet; train it first (hilo train ...)`);
    kind = 'checkpoint';
    dir = latest;
  }
  // a checkpoint carries the recipe it was trained with; the run's copy otherwise
  const recipeFile = kind === 'checkpoint' ? path.join(dir, 'recipe.json') : path.join(runDir, 'recipe.json');
  const recipe = loadRecipe(recipeFile);
  if (recipe.adapter.method === 'none') {
    throw new HiloError(`${who}: ${runDir} trained the full model (adapter.method "none"); its weights are already a model folder (${path.join(runDir, 'model')})`);
  }
  return { runDir, runName: path.basename(runDir), recipe, kind, dir };
}

/** Assign a checkpoint's trainable.safetensors (adapter variable names) to freshly injected adapters. */
function assignCheckpoint(adapters: Adapters, dir: string): void {
  const file = path.join(dir, 'trainable.safetensors');
  const { tensors } = readSafetensors(file);
  for (const [name, v] of adapters.variables) {
    const t = tensors.get(name);
    if (!t) throw new HiloError(`${file}: no tensor "${name}"; was it written by a run with this plan.json?`);
    if (t.shape.join() !== v.shape.join()) throw new HiloError(`${file}: "${name}" has shape [${t.shape}]; plan.json implies [${v.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape, 'float32')));
  }
  const extra = [...tensors.keys()].filter((n) => !adapters.variables.has(n));
  if (extra.length) throw new HiloError(`${file}: tensors plan.json does not have: ${extra.slice(0, 5).join(', ')}`);
}

/** The trained adapters of `src` injected into `model` (the caller disposes them). */
export function loadTrained(model: CausalLM, src: ExportSource): Adapters {
  if (src.kind === 'adapter') return loadAdapters(model, src.dir);
  const plan = readPlan(path.join(src.dir, 'plan.json'), model.config);
  const a = src.recipe.adapter;
  const adapters = injectAdapters(model, plan, { seed: src.recipe.seed, balanceCoef: a.balance_coef, zLossCoef: a.z_loss_coef });
  try {
    assignCheckpoint(adapters, src.dir);
  } catch (e) {
    adapters.dispose();
    throw e;
  }
  return adapters;
}

/** The base model with the trained adapters in place (the caller disposes both). */
export async function openSource(src: ExportSource): Promise<{ model: CausalLM; adapters: Adapters }> {
  // in the dtype the run trained on (model.dtype): a merged export is that model plus its adapters
  const model = await loadModel(src.recipe.model.path, { check: checkModelLoad, dtype: src.recipe.model.dtype });
  try {
    return { model, adapters: loadTrained(model, src) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

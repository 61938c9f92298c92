/**
 * Tiny hilo runs made in-process on the real stories260K model: the recipe.json, plan.json and
 * adapter/ that `hilo train` writes, with random (non-zero) B and routers so adapters matter,
 * and optionally a checkpoint folder holding the same weights.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { injectAdapters, type Adapters } from '../../src/adapters/inject.ts';
import { saveAdapters } from '../../src/adapters/io.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { writePlanFile } from '../../src/allocate/plan-file.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { saveCheckpoint } from '../../src/train/checkpoint.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const MODEL_DIR = STORIES260K;
export const HILO = path.join(ROOT, 'bin/hilo.js');
export const LLAMA = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-export-'));
}

/** A plan over stories260K's 5 layers: experts[l] and ranks[l] for every module in `modules`. */
export function planOf(experts: number[], ranks: number[], modules = LLAMA, extra: Partial<AdapterPlan> = {}): AdapterPlan {
  return {
    method: 'manual', targetModules: modules.map((m) => m.split('.')[1]), strategy: 'topk', topP: 0.8, alpha: 16,
    scaling: 'alpha/r', fixedScale: 1, dropout: 0.05,
    layers: experts.map((E, l) => Object.fromEntries(modules.map((m) => [m, { experts: E, rank: ranks[l], topK: 2 }]))),
    ...extra,
  };
}

/**
 * B ~ N(0, 0.01) and routers ~ N(0, 1): every expert and gate changes the logits (by ~1), while
 * the logits stay of the base model's size so float32 comparisons at 1e-5 stay meaningful.
 */
export function randomise(adapters: Adapters, seed: number, std = 0.01): void {
  for (const mix of adapters.layers.values()) {
    tf.tidy(() => mix.weights.loraB.assign(tf.randomNormal(mix.weights.loraB.shape, 0, std, 'float32', seed++)));
    if (mix.weights.router) tf.tidy(() => mix.weights.router!.assign(tf.randomNormal(mix.weights.router!.shape, 0, 1, 'float32', seed++)));
  }
}

/** Real sentences (UCI yelp, via the sentiment package) as classification JSONL. */
function writeData(dir: string): void {
  const rows = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/sentiment/test/fixtures/yelp.json'), 'utf8'))
    .filter((r: { text: string }) => r.text)
    .map((r: { text: string; class: number }) => JSON.stringify({ text: r.text, label: r.class ? 'positive' : 'negative' }));
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.slice(0, 32).join('\n'));
  fs.writeFileSync(path.join(dir, 'eval.jsonl'), rows.slice(500, 508).join('\n'));
}

export interface FakeRun {
  runDir: string;
  adapters: Adapters;
}

/**
 * A run folder `dir/<name>` as `hilo train` leaves it (recipe.json, plan.json, adapter/), with
 * `plan` injected into `model` (left injected: the caller removes/disposes) and randomised.
 */
export function makeRun(dir: string, name: string, model: CausalLM, plan: AdapterPlan, seed = 1): FakeRun {
  writeData(dir);
  const runDir = path.join(dir, name);
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, `model: {path: ${MODEL_DIR}}
backend: wasm
seed: ${seed}
output_dir: ${runDir}
data: {train_path: train.jsonl, eval_path: eval.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}, max_length: 24}
adapter: {method: moe-uniform, calibration: {batches: 2, batch_size: 4}}
train: {eval_batch_size: 4}
`);
  const recipe = loadRecipe(file);
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(path.join(runDir, 'recipe.json'), JSON.stringify(recipe, null, 2));
  writePlanFile(path.join(runDir, 'plan.json'), plan);
  const adapters = injectAdapters(model, plan, { seed, balanceCoef: recipe.adapter.balance_coef });
  randomise(adapters, seed * 100);
  saveAdapters(adapters, path.join(runDir, 'adapter'), { base_model_name_or_path: MODEL_DIR });
  return { runDir, adapters };
}

/** checkpoint-{step} of `run` holding the adapters' current weights (what the loop saves). */
export async function writeCheckpoint(run: FakeRun, step: number): Promise<string> {
  const recipe = JSON.parse(fs.readFileSync(path.join(run.runDir, 'recipe.json'), 'utf8'));
  const optimizer = new AdamW(run.adapters.variables);
  try {
    return await saveCheckpoint(run.runDir, {
      trainables: run.adapters.variables, optimizer, recipe, plan: run.adapters.plan,
      state: { step, data: { epoch: 0, index: step }, seed: 1, tokensSeen: 0, elapsedSeconds: 0, lastLoss: null },
    });
  } finally {
    optimizer.dispose();
  }
}

/** Every file of a folder and its bytes, to show a failed export touched nothing. */
export function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
}

/** Logits [B, T, V] of two fixed sequences (one right-padded) as a flat array. */
export function logitsOf(model: CausalLM): Float32Array {
  return tf.tidy(() => {
    const ids = tf.tensor2d([[1, 403, 407, 261, 378, 90, 4, 450], [1, 5, 6, 7, 8, 9, 0, 0]], undefined, 'int32') as tf.Tensor2D;
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]) as tf.Tensor2D;
    return model.forward(ids, { attentionMask: mask }).dataSync() as Float32Array;
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ||a − b|| / ||b||. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
}

/**
 * The float32 floor of stories260K's logits (up to ~18): the same weights on the wasm and cpu
 * backends already differ by 1.3e-5 at most, so "identical" means relative error below 1e-5 and
 * no logit further off than a few times that floor.
 */
export const FLOAT_FLOOR = 5e-5;

/**
 * The training loop is the same with one thread or two: `hilo train` on the real stories260K model
 * with MoE-LoRA, once with its gradients from this thread alone (data_parallel 1, LocalGradients)
 * and once from a pool of two (data_parallel 2, Replicas). With only the cross-entropy trained (no
 * dropout, no router losses, whose masks and means depend on the split) the shards' weighted
 * gradients add up to the whole batch's, so every step logs the same loss and gradient norm, up to
 * float rounding, and evaluation scores alike. A pool that dropped a shard's gradients would log
 * a gradient norm far from one thread's (replicas.test.ts shows how far for one micro-batch).
 *
 * The rounding grows with the steps: AdamW divides each gradient by its own root mean square, so
 * a value whose gradient is rounding-sized moves by a real step either way (the trained weights
 * differ by up to ~1e-3 of their size), and a token whose router then picks another expert
 * moves the evaluation loss by a step of its own.
 *
 * In process, the loop driven by the pool (router losses, dropout, accumulation, eval) keeps no
 * tensor of the main thread's alive past the run, as test/train/leak.test.ts shows for one thread.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../src/recipe/load.ts';
import { train as trainLoop } from '../../src/train/loop.ts';
import { Replicas } from '../../src/train/replicas.ts';
import { prepareRun } from '../../src/train/run.ts';
import { STORIES260K } from '../helpers/fixtures.ts';
import { sentimentLines } from '../helpers/sentences.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HILO = path.join(ROOT, 'bin/hilo.js');

/** A folder with a classification set and a CE-only MoE-LoRA recipe on `replicas` replicas. */
function setup(replicas: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hilo-replicas-loop-${replicas}-`));
  const rows = sentimentLines('yelp');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.slice(0, 40).join('\n'));
  fs.writeFileSync(path.join(dir, 'eval.jsonl'), rows.slice(500, 508).join('\n'));
  fs.writeFileSync(path.join(dir, 'test.jsonl'), rows.slice(600, 612).join('\n'));
  fs.writeFileSync(path.join(dir, 'recipe.yaml'), `model: {path: ${STORIES260K}}
backend: wasm
seed: 5
output_dir: run
data: {train_path: train.jsonl, eval_path: eval.jsonl, test_path: test.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}, max_length: 32}
adapter: {method: moe-uniform, target_modules: [q_proj, v_proj, down_proj], experts: {per_layer: 3}, rank: {r: 2}, top_k: 2, dropout: 0, balance_coef: 0, z_loss_coef: 0}
train: {batch_size: 8, max_steps: 4, save_steps: 0, eval_steps: 0, logging_steps: 1, warmup_steps: 0, learning_rate: 0.01, data_parallel: ${replicas}}
`);
  return dir;
}

function train(dir: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HILO, 'train', 'recipe.yaml'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

const records = (dir: string) => fs.readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

function expectRelative(got: number, want: number, tol: number, what: string): void {
  expect(Number.isFinite(want), what).toBe(true);
  expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(tol * Math.abs(want));
}

describe('the training loop on one thread and on two replicas', () => {
  it('logs the same losses and gradient norms, and evaluates alike', { timeout: 400_000 }, async () => {
    const [one, two] = [setup(1), setup(2)];
    const [a, b] = await Promise.all([train(one), train(two)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stderr).not.toContain('data-parallel replicas');
    expect(b.stderr).toContain('2 data-parallel replicas (train.data_parallel)');
    const steps1 = records(one).filter((r) => 'loss' in r);
    const steps2 = records(two).filter((r) => 'loss' in r);
    expect(steps1.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(steps2.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    for (const [i, r] of steps1.entries()) {
      // step 1 from the same weights: the shards' sum differs from the whole batch's by its rounding alone
      expectRelative(steps2[i].loss, r.loss, i === 0 ? 1e-6 : 1e-4, `loss at step ${r.step}`);
      expectRelative(steps2[i].grad_norm, r.grad_norm, i === 0 ? 1e-6 : 1e-4, `grad_norm at step ${r.step}`);
    }
    // the weights moved, and the loss with them: the steps compared are real ones
    expect(steps1[0].grad_norm).toBeGreaterThan(1e-3);
    expect(steps1[3].loss).not.toBe(steps1[0].loss);
    const eval1 = records(one).find((r) => 'eval_loss' in r)!;
    const eval2 = records(two).find((r) => 'eval_loss' in r)!;
    expect(eval2.eval_examples).toBe(eval1.eval_examples);
    expectRelative(eval2.eval_loss, eval1.eval_loss, 1e-2, 'eval_loss');
    const test1 = JSON.parse(fs.readFileSync(path.join(one, 'run', 'results.json'), 'utf8')).test;
    const test2 = JSON.parse(fs.readFileSync(path.join(two, 'run', 'results.json'), 'utf8')).test;
    expect(test2.examples).toBe(test1.examples);
    expectRelative(test2.loss, test1.loss, 1e-2, 'test loss');
  });

  it('leaves the main thread\'s tensor count unchanged when the pool drives it (router losses, dropout, accumulation, eval)', { timeout: 200_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-replicas-leak-'));
    fs.writeFileSync(path.join(dir, 'train.jsonl'), sentimentLines('amazon').slice(0, 40).join('\n'));
    const recipe = parseRecipe({
      model: { path: STORIES260K },
      backend: 'wasm', output_dir: path.join(dir, 'run'),
      data: { train_path: 'train.jsonl', format: 'classification', label_words: { negative: ' bad', positive: ' good' }, max_length: 32, eval_fraction: 0.2 },
      adapter: { method: 'moe-uniform', experts: { per_layer: 3 }, rank: { r: 2 }, top_k: 2, z_loss_coef: 0.001 },
      train: { batch_size: 4, gradient_accumulation_steps: 2, max_steps: 3, eval_steps: 2, save_steps: 0, logging_steps: 1, data_parallel: 2 },
    }, { baseDir: dir, name: 'replicas-leak' });
    const run = await prepareRun(recipe, { log: () => {}, sink: false });
    try {
      const before = tf.memory().numTensors;
      const result = await trainLoop(run);
      expect(result.steps).toBe(3);
      expect(run.gradientSource).toBeInstanceOf(Replicas);
      expect(run.gradientSource!.count).toBe(2);
      expect(run.gradientSource!.workerTensors()[0]).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      run.dispose();
    }
  });
});

/**
 * The training loop end to end through the CLI, on the real stories260K model: a run killed with
 * SIGKILL and resumed ends with the same adapter bits as an uninterrupted run; SIGINT saves and
 * exits cleanly; a diverging run stops with a clear message and keeps its last good checkpoint.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/model/safetensors.ts';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
import { sentimentLines } from '../helpers/sentences.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = STORIES260K;
const HILO = path.join(ROOT, 'bin/hilo.js');

/** A small real-text classification set (UCI sentences) as user JSONL, so runs stay seconds long. */
function writeData(dir: string): void {
  const rows = sentimentLines('yelp');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.slice(0, 48).join('\n'));
  fs.writeFileSync(path.join(dir, 'eval.jsonl'), rows.slice(500, 508).join('\n'));
  fs.writeFileSync(path.join(dir, 'test.jsonl'), rows.slice(600, 616).join('\n'));
}

function recipe(dir: string, extra = ''): string {
  writeData(dir);
  const file = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(file, `# test recipe
model: {path: ${MODEL}}
backend: wasm
seed: 3
output_dir: ${path.join(dir, 'run')}
data:
  train_path: train.jsonl
  eval_path: eval.jsonl
  test_path: test.jsonl
  format: classification
  label_words: {negative: " bad", positive: " good"}
  max_length: 32
adapter:
  method: moe-uniform
  target_modules: [q_proj, v_proj, down_proj]
  experts: {per_layer: 3}
  rank: {r: 2}
  top_k: 2
  dropout: 0.1
train:
  batch_size: 8
  max_steps: 8
  save_steps: 2
  eval_steps: 0
  logging_steps: 1
  learning_rate: 0.01
  warmup_steps: 2
${extra}`);
  return file;
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-loop-'));
}

function adapterBytes(dir: string): Buffer {
  return fs.readFileSync(path.join(dir, 'run', 'adapter', 'adapter_model.safetensors'));
}

/** Start a training run and send `signal` once checkpoint-`afterStep` exists; resolves with the exit code. */
function runAndSignal(file: string, runDir: string, signal: NodeJS.Signals, afterStep: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HILO, 'train', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      if (listCheckpoints(runDir).some((c) => c.step >= afterStep)) {
        clearInterval(poll);
        child.kill(signal);
      }
    }, 20);
    child.on('exit', (code, sig) => {
      clearInterval(poll);
      resolve({ code, signal: sig, stderr });
    });
  });
}

describe('hilo train', () => {
  it('resumes a SIGKILLed run to the same adapter bits as an uninterrupted run', { timeout: 400_000 }, async () => {
    const a = tmp();
    const whole = spawnSync(process.execPath, [HILO, 'train', recipe(a)], { encoding: 'utf8' });
    expect(whole.status, whole.stderr).toBe(0);
    expect(listCheckpoints(path.join(a, 'run')).map((c) => c.step)).toEqual([2, 4, 6, 8]);
    const results = JSON.parse(fs.readFileSync(path.join(a, 'run', 'results.json'), 'utf8'));
    expect(results.steps).toBe(8);
    expect(results.params.trainable).toBeGreaterThan(0);
    expect(results.test.accuracy).toBeGreaterThanOrEqual(0);
    const lines = fs.readFileSync(path.join(a, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => 'loss' in l).map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    // hilo eval on the run folder reloads the saved adapter and reproduces the test metrics
    const ev = spawnSync(process.execPath, [HILO, 'eval', path.join(a, 'run'), '--json'], { encoding: 'utf8' });
    expect(ev.status, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout)).toEqual(results.test);

    const b = tmp();
    const file = recipe(b);
    const killed = await runAndSignal(file, path.join(b, 'run'), 'SIGKILL', 4);
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(b, 'run', 'results.json'))).toBe(false);
    const resumed = spawnSync(process.execPath, [HILO, 'train', file, 'train.resume=true'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resumed from .*checkpoint-\d+ at step \d+/);
    expect(adapterBytes(b).equals(adapterBytes(a))).toBe(true);
    // the metrics file holds each step once, as if the run had never stopped
    const resumedLines = fs.readFileSync(path.join(b, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(resumedLines.filter((l) => 'loss' in l).map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('resumes a SIGKILLed data-parallel run to the same adapter bits, and stops its replicas on SIGINT', { timeout: 400_000 }, async () => {
    const a = tmp();
    const whole = spawnSync(process.execPath, [HILO, 'train', recipe(a, '  data_parallel: 2')], { encoding: 'utf8' });
    expect(whole.status, whole.stderr).toBe(0);
    expect(whole.stderr).toContain('2 data-parallel replicas (train.data_parallel)');
    expect(JSON.parse(fs.readFileSync(path.join(a, 'run', 'results.json'), 'utf8')).data_parallel).toBe(2);
    const b = tmp();
    const file = recipe(b, '  data_parallel: 2');
    const killed = await runAndSignal(file, path.join(b, 'run'), 'SIGKILL', 4);
    expect(killed.signal).toBe('SIGKILL');
    const resumed = spawnSync(process.execPath, [HILO, 'train', file, 'train.resume=true'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(adapterBytes(b).equals(adapterBytes(a))).toBe(true);
    // the same recipe on one replica trains other bits (dropout masks and router losses are per shard)
    const c = tmp();
    const single = spawnSync(process.execPath, [HILO, 'train', recipe(c, '  data_parallel: 1')], { encoding: 'utf8' });
    expect(single.status, single.stderr).toBe(0);
    expect(adapterBytes(c).equals(adapterBytes(a))).toBe(false);
    const d = tmp();
    const out = await runAndSignal(recipe(d, '  data_parallel: 2'), path.join(d, 'run'), 'SIGINT', 2);
    expect(out.code, out.stderr).toBe(130);
    expect(out.stderr).toMatch(/interrupted: checkpoint saved at step (\d+)/);
  });

  it('saves a checkpoint and exits cleanly on SIGINT', { timeout: 200_000 }, async () => {
    const d = tmp();
    const file = recipe(d, '  # interrupted');
    const out = await runAndSignal(file, path.join(d, 'run'), 'SIGINT', 2);
    expect(out.code).toBe(130);
    expect(out.stderr).toMatch(/interrupted: checkpoint saved at step (\d+)/);
    const step = Number(/saved at step (\d+)/.exec(out.stderr)![1]);
    expect(listCheckpoints(path.join(d, 'run')).map((c) => c.step)).toContain(step);
  });

  it('stops a diverging run with a clear message and keeps the last good checkpoint', { timeout: 200_000 }, () => {
    const d = tmp();
    const out = spawnSync(process.execPath, [HILO, 'train', recipe(d), 'lr=1e30', 'train.max_grad_norm=0', 'train.save_steps=1', 'train.warmup_steps=0'], { encoding: 'utf8' });
    expect(out.status).not.toBe(0);
    // a NaN gradient stops the step before it reaches the weights, so the last checkpoint is a good one
    expect(out.stderr).toMatch(/(loss|gradient norm) is (NaN|Infinity).* at step (\d+): stopping/);
    const bad = Number(/at step (\d+): stopping/.exec(out.stderr)![1]);
    const kept = listCheckpoints(path.join(d, 'run'));
    expect(kept[kept.length - 1].step).toBe(bad - 1);
    expect(out.stderr).toContain(`The last checkpoint, ${kept[kept.length - 1].dir}, is kept`);
    for (const t of readSafetensors(path.join(kept[kept.length - 1].dir, 'trainable.safetensors')).tensors.values()) {
      expect(t.data.every(Number.isFinite)).toBe(true);
    }
  });
});

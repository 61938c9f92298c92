/**
 * The fault matrix of `hilo train`, run through the CLI on the real stories260K model with tiny
 * runs: each fault gets a sentence (exit 2, no stack) and nothing a previous run wrote is lost.
 * Faults below the CLI that need injection (a full disk mid-checkpoint, every way a checkpoint
 * can be broken) are in checkpoint-faults.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
import { LOCK_FILE } from '../../src/train/run-dir.ts';
import { STORIES260K } from '../helpers/fixtures.ts';
import { sentimentLines } from '../helpers/sentences.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = STORIES260K;
const HILO = path.join(ROOT, 'bin/hilo.js');

/** A folder with a 24-example classification set and a LoRA recipe that trains 4 steps, a checkpoint every 2. */
function setup(): { dir: string; recipe: string; run: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-faults-'));
  fs.writeFileSync(path.join(dir, 'train.jsonl'), sentimentLines('amazon').slice(0, 24).join('\n'));
  const recipe = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(recipe, `model: {path: ${MODEL}}
backend: wasm
output_dir: run
data: {train_path: train.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}, max_length: 24, eval_fraction: 0.2}
adapter: {method: lora, target_modules: [q_proj, v_proj], rank: {r: 2}}
train: {batch_size: 4, max_steps: 4, save_steps: 2, eval_steps: 0, logging_steps: 1, warmup_steps: 0, learning_rate: 0.01, data_parallel: 1}
`);
  return { dir, recipe, run: path.join(dir, 'run') };
}

function hilo(dir: string, ...args: string[]) {
  return spawnSync(process.execPath, [HILO, 'train', 'recipe.yaml', ...args], { cwd: dir, encoding: 'utf8' });
}

/** A refusal or fault: exit 2 with a `hilo: ` sentence and no stack trace. */
function expectSentence(r: ReturnType<typeof hilo>, pattern: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** Every file under `dir` with its bytes, to show a refused run changed nothing. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) files.set(f, fs.readFileSync(p).toString('base64'));
  }
  return files;
}

const metricLines = (run: string) => fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n');
/** The steps of the training records (eval records aside), in file order. */
const steps = (run: string) => metricLines(run).map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.step);

describe('hilo train faults', () => {
  it('refuses a folder holding a run; resume=true continues it past a torn metrics line; overwrite_output_dir starts over', { timeout: 300_000 }, () => {
    const { dir, run } = setup();
    const first = hilo(dir, 'train.max_steps=2');
    expect(first.status, first.stderr).toBe(0);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([2]);
    expect(fs.existsSync(path.join(run, LOCK_FILE))).toBe(false); // released at the end

    const before = snapshot(run);
    const again = hilo(dir, 'train.max_steps=4');
    expectSentence(again, new RegExp(`recipe.output_dir: ${run} already holds a run \\(adapter, checkpoint-2, .*\\); continue it with resume=true, start it over with train.overwrite_output_dir=true`));
    expect(snapshot(run)).toEqual(before);

    // a kill during an append leaves half a line; resume (the top-level spelling the messages use) drops it and says so
    const torn = metricLines(run).length + 1;
    fs.appendFileSync(path.join(run, 'metrics.jsonl'), '{"step":3,"loss":0.6');
    const resumed = hilo(dir, 'resume=true', 'train.max_steps=4');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`metrics.jsonl:${torn}: dropped a line that is not JSON (torn: the run was stopped while writing it)`);
    expect(resumed.stderr).toMatch(/resumed from .*checkpoint-2 at step 2/);
    expect(steps(run)).toEqual([1, 2, 3, 4]);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([2, 4]);

    // starting over clears the old run: no checkpoint of it is left for a later resume to pick up
    const over = hilo(dir, 'overwrite_output_dir=true', 'train.max_steps=2', 'train.save_steps=1');
    expect(over.status, over.stderr).toBe(0);
    expect(over.stderr).toMatch(/train.overwrite_output_dir: cleared the previous run from .*run \(adapter, checkpoint-2, checkpoint-4, /);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([1, 2]);
    expect(steps(run)).toEqual([1, 2]);
  });

  it('refuses a second run into a folder another one is writing, naming its pid; a dead run\'s lock is taken over', { timeout: 300_000 }, async () => {
    const { dir, run } = setup();
    const first = spawn(process.execPath, [HILO, 'train', 'recipe.yaml', 'train.max_steps=6'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let firstErr = '';
    first.stderr.on('data', (d) => (firstErr += d));
    const exited = new Promise<number | null>((resolve) => first.on('exit', resolve));
    while (!fs.existsSync(path.join(run, LOCK_FILE))) await new Promise((r) => setTimeout(r, 20));
    first.kill('SIGSTOP'); // held mid-run, however long the second takes to start
    const second = hilo(dir, 'resume=true');
    first.kill('SIGCONT');
    expectSentence(second, new RegExp(`recipe.output_dir: ${run} is in use by another hilo train \\(pid ${first.pid}, lock .*\\); wait for it to finish, stop it, or choose another output_dir`));
    expect(await exited, firstErr).toBe(0);
    const all = [1, 2, 3, 4, 5, 6];
    expect(steps(run)).toEqual(all); // each step logged once: the second run wrote nothing

    // a run killed with SIGKILL leaves its lock; the pid is gone, so the next run takes it over
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    fs.writeFileSync(path.join(run, LOCK_FILE), `${dead}\n`);
    const next = hilo(dir, 'resume=true', 'train.max_steps=7');
    expect(next.status, next.stderr).toBe(0);
    expect(next.stderr).toContain(`taking over the lock of pid ${dead}, which is no longer running`);
    expect(steps(run)).toEqual([...all, 7]);
  });

  it('names the file and tensor a checkpoint lacks, and leaves the checkpoint as it was', { timeout: 300_000 }, () => {
    const { dir, run } = setup();
    expect(hilo(dir, 'train.max_steps=2').status).toBe(0);
    const file = path.join(run, 'checkpoint-2', 'optimizer.safetensors');
    const { tensors, metadata } = readSafetensors(file);
    const dropped = [...tensors.keys()].find((k) => k.startsWith('v/'))!;
    tensors.delete(dropped);
    writeSafetensors(file, new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }])), metadata ?? {});
    const before = snapshot(path.join(run, 'checkpoint-2'));
    const metrics = metricLines(run);
    const r = hilo(dir, 'resume=true');
    expectSentence(r, new RegExp(`checkpoint ${file}: no tensor "${dropped.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"; the file is incomplete`));
    expect(snapshot(path.join(run, 'checkpoint-2'))).toEqual(before);
    expect(metricLines(run)).toEqual(metrics);
  });

  it('says in a sentence that output_dir is below a file, and leaves the file alone', { timeout: 120_000 }, () => {
    const { dir } = setup();
    fs.writeFileSync(path.join(dir, 'notes'), 'keep me');
    const r = hilo(dir, 'output_dir=notes/run');
    expectSentence(r, new RegExp(`recipe.output_dir: ${dir}/notes/run is below ${dir}/notes, which is a file, not a folder`));
    expect(fs.readFileSync(path.join(dir, 'notes'), 'utf8')).toBe('keep me');
  });

  it('leaves no run folder behind when a run fails before it starts', { timeout: 120_000 }, () => {
    const { dir } = setup();
    fs.writeFileSync(path.join(dir, 'broken.jsonl'), '{"text": "fine", "label": "positive"}\n{"text": "torn');
    const r = hilo(dir, 'output_dir=out/run', 'data.train_path=broken.jsonl');
    expectSentence(r, /broken\.jsonl:2/);
    expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
  });

  it('says no checkpoint exists when the gradients turn NaN before the first one', { timeout: 120_000 }, () => {
    const { dir, run } = setup();
    const r = hilo(dir, 'lr=1e30', 'train.max_grad_norm=0', 'train.save_steps=0', 'adapter.method=moe-uniform', 'adapter.experts.per_layer=3', 'adapter.target_modules=[q_proj,v_proj,down_proj]');
    expectSentence(r, /(loss|gradient norm) is (NaN|-?Infinity).* at step 2: stopping\. No checkpoint was written before this step \(train\.save_steps 0\); lower train\.learning_rate 1e\+30/);
    expect(r.stderr).toMatch(/start over with train\.overwrite_output_dir=true/);
    expect(listCheckpoints(run)).toEqual([]);
  });

  it('stops a run whose gradients vanished under a far too large learning rate, naming it', { timeout: 120_000 }, () => {
    const { dir, run } = setup();
    const r = hilo(dir, 'lr=1e6', 'train.max_steps=12', 'train.save_steps=2');
    expectSentence(r, /gradients vanished at step \d+: grad_norm .* for 3 steps against .* at the first step, while the loss .* stayed above its start .*: the weights are saturated, most likely by train\.learning_rate 1000000/);
    expect(r.stderr).toMatch(/The last checkpoint, .*checkpoint-\d+, is kept/);
    expect(fs.existsSync(path.join(run, 'results.json'))).toBe(false);
  });
});

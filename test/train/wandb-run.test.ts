/**
 * A real `hilo train` run logging to a local W&B stand-in (127.0.0.1): the server's history is
 * the run's local W&B history line for line, every logged training step is there with the loss
 * of metrics.jsonl, and the run is marked complete with exit code 0.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeWandb, GOOD_KEY } from '../log/wandb/fake-server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const server = new FakeWandb();
afterAll(() => server.stop());

function train(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/hilo.js'), 'train', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('hilo train with W&B online', () => {
  it('sends the same history the run keeps locally, and completes the run', { timeout: 240_000 }, async () => {
    await server.start(200_000);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-wandb-run-'));
    const { code, stderr } = await train([
      path.join(ROOT, 'recipes/quickstart.yaml'), `output_dir=${out}`, 'train.max_steps=4', 'train.logging_steps=1',
      'train.eval_steps=2', 'data.max_train_examples=48', 'data.max_eval_examples=8',
    ], { WANDB_MODE: 'online', WANDB_BASE_URL: server.url, WANDB_API_KEY: GOOD_KEY, WANDB_PROJECT: 'hilo-test', WANDB_ENTITY: 'team' });
    expect(code, stderr).toBe(0);
    const run = [...server.runs.values()][0];
    expect(run.project).toBe('hilo-test');
    expect(run.complete).toBe(true);
    expect(run.exitcode).toBe(0);
    const local = fs.readFileSync(path.join(out, 'wandb', 'history.jsonl'), 'utf8').trim().split('\n');
    expect(run.history).toEqual(local);
    const rows = run.history.map((l) => JSON.parse(l));
    const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const m of metrics.filter((r) => 'loss' in r)) expect(rows.find((r) => r._step === m.step)?.loss).toBe(m.loss);
    expect(rows.some((r) => r.eval_accuracy !== undefined && r.eval_expert_usage?._type === 'table')).toBe(true);
    const config = JSON.parse(run.config!);
    expect(config.params.value.trainable).toBeGreaterThan(0);
    expect(JSON.parse(run.summary!).test_accuracy).toBeGreaterThanOrEqual(0);
  });
});

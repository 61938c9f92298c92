/**
 * Continuing from PEFT artefacts: a run's LoRA adapter exported as a PEFT adapter, imported back
 * with `hilo export --from-peft`, is the starting point of a new run (adapter.init_from).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HILO = path.join(ROOT, 'bin/hilo.js');
const QUICK = path.join(ROOT, 'recipes/quickstart.yaml');
const SHORT = ['train.max_steps=2', 'train.eval_steps=0', 'data.max_train_examples=32', 'data.max_eval_examples=16', 'backend=wasm'];

function hilo(args: string[]) {
  const r = spawnSync(process.execPath, [HILO, ...args], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r;
}

describe('adapter.init_from', () => {
  it('starts a run from a PEFT LoRA imported into hilo, with its plan and weights', { timeout: 300_000 }, () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-init-'));
    hilo(['train', QUICK, `output_dir=${d}/a`, 'adapter.method=lora', 'adapter.rank.r=4', 'data.loss=tokens', 'lr=5e-3', ...SHORT]);
    hilo(['export', `${d}/a`, '--format', 'peft', '--out', `${d}/peft`]);
    hilo(['export', '--from-peft', `${d}/peft`, '--model', path.join(ROOT, 'models/hilo-base'), '--out', `${d}/imported`]);
    // one step at a vanishing learning rate: the new run's adapter is the imported one
    hilo(['train', QUICK, `output_dir=${d}/b`, `adapter.init_from=${d}/imported`, 'lr=1e-12', 'train.max_steps=1', 'train.eval_steps=0',
      'data.max_train_examples=32', 'data.max_eval_examples=16', 'data.loss=tokens', 'backend=wasm']);
    const a = JSON.parse(fs.readFileSync(`${d}/a/results.json`, 'utf8'));
    const b = JSON.parse(fs.readFileSync(`${d}/b/results.json`, 'utf8'));
    expect(b.plan.layers).toEqual(a.plan.layers);
    expect(b.params.trainable).toBe(a.params.trainable);
    expect(b.test.loss).toBeCloseTo(a.test.loss, 4);
    expect(b.test.accuracy).toBe(a.test.accuracy);
  });

  it('is refused for full training, naming the field', () => {
    const r = spawnSync(process.execPath, [HILO, 'validate', path.join(ROOT, 'recipes/pretrain/base.yaml'), `adapter.init_from=${ROOT}`], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr + r.stdout).toMatch(/recipe\.adapter\.init_from: .*null when adapter\.method is "none"/);
  });
});

/**
 * Full-parameter training (adapter.method: none): pretraining a model from its config alone
 * (random init) and continuing the shipped base; the trained model is a model folder hilo loads.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/model/safetensors.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HILO = path.join(ROOT, 'bin/hilo.js');
const BASE = path.join(ROOT, 'models/hilo-base');
const SHORT = ['train.max_steps=2', 'train.batch_size=4', 'train.eval_steps=0', 'data.max_length=32', 'data.max_train_examples=16', 'data.max_eval_examples=4'];

describe('full-parameter training', () => {
  it('continues the base model and saves a model folder that differs from it and loads back', { timeout: 240_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-full-'));
    const r = spawnSync(process.execPath, [HILO, 'train', path.join(ROOT, 'recipes/pretrain/base.yaml'), `output_dir=${out}`, ...SHORT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.params.trainable).toBe(1_262_720); // every base weight
    expect(results.output).toBe(path.join(out, 'model'));
    const before = readSafetensors(path.join(BASE, 'model.safetensors')).tensors.get('model.layers.0.mlp.up_proj.weight')!;
    const after = readSafetensors(path.join(out, 'model', 'model.safetensors')).tensors.get('model.layers.0.mlp.up_proj.weight')!;
    expect(after.shape).toEqual(before.shape);
    expect(Array.from(after.data)).not.toEqual(Array.from(before.data));
    const score = spawnSync(process.execPath, [HILO, 'score', '--model', path.join(out, 'model'), '--text', 'Call me Ishmael.', '--json', '--backend', 'wasm'], { encoding: 'utf8' });
    expect(score.status, score.stderr).toBe(0);
    const ev = spawnSync(process.execPath, [HILO, 'eval', out, '--json'], { encoding: 'utf8' });
    expect(ev.status, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).perplexity).toBeCloseTo(results.test.perplexity, 3);
  });

  it('pretrains from a random initialisation when the model folder has a config but no weights', { timeout: 240_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-scratch-'));
    for (const f of fs.readdirSync(BASE).filter((f) => !f.endsWith('.safetensors'))) fs.copyFileSync(path.join(BASE, f), path.join(dir, f));
    const r = spawnSync(process.execPath, [HILO, 'train', path.join(ROOT, 'recipes/pretrain/base.yaml'), `model.path=${dir}`, `output_dir=${path.join(dir, 'run')}`, ...SHORT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/has no weights: pretraining from a random initialisation/);
    // a random 4096-token model starts near ln(4096) = 8.32 nats per token
    const first = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').split('\n')[0]);
    expect(first.loss).toBeGreaterThan(7.5);
    expect(first.loss).toBeLessThan(9);
  });

  it('refuses adapters on a model folder without weights', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-noweights-'));
    for (const f of fs.readdirSync(BASE).filter((f) => !f.endsWith('.safetensors'))) fs.copyFileSync(path.join(BASE, f), path.join(dir, f));
    const r = spawnSync(process.execPath, [HILO, 'train', path.join(ROOT, 'recipes/quickstart.yaml'), `model.path=${dir}`, `output_dir=${path.join(dir, 'run')}`, ...SHORT], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/recipe\.model\.path: .* has no \*\.safetensors weights/);
  });
});

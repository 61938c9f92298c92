/**
 * The README's main job on the embedded default: recipes/quickstart.yaml trains a HILO mixture
 * on models/hilo-base end to end (shortened here to a few steps; the full run is the README's).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('recipes/quickstart.yaml', () => {
  it('trains a HILO plan with per-layer experts and ranks on the shipped base model', { timeout: 300_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-quickstart-'));
    const r = spawnSync(process.execPath, [
      path.join(ROOT, 'bin/hilo.js'), 'train', path.join(ROOT, 'recipes/quickstart.yaml'),
      `output_dir=${out}`, 'train.max_steps=3', 'train.eval_steps=0', 'data.max_train_examples=96', 'data.max_eval_examples=16',
    ], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, HILO_DATA_PARALLEL: '' } }); // train.data_parallel auto, as the README runs it
    expect(r.status, r.stderr).toBe(0);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.steps).toBe(3);
    // auto: a replica per core (this machine's), at most 8 and the batch size (16)
    expect(results.data_parallel).toBe(Math.min(os.availableParallelism(), 8, 16));
    expect(results.data.sizes.test).toBe(600);
    expect(results.test.examples).toBe(600);
    // HILO: the more complex a layer (alpha-hill score), the higher its rank ("2468" over the
    // 4 layers) and the more experts it gets.
    const scores: number[] = JSON.parse(fs.readFileSync(path.join(out, 'probe.json'), 'utf8')).layers;
    const layers = results.plan.layers as Array<Record<string, { experts: number; rank: number }>>;
    const byScore = scores.map((s, l) => ({ s, ...Object.values(layers[l])[0] })).sort((a, b) => a.s - b.s);
    expect(byScore.map((x) => x.rank)).toEqual([2, 4, 6, 8]);
    const experts = byScore.map((x) => x.experts);
    expect(experts).toEqual([...experts].sort((a, b) => a - b));
    expect(experts.reduce((a, b) => a + b)).toBe(20); // T = 5 experts per layer on average
    expect(results.params.trainable).toBeGreaterThan(0);
    expect(results.params.active).toBeLessThan(results.params.trainable);
    expect(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
  });
});

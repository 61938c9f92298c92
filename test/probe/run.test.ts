import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { scoreBars } from '../../src/cli/probe.ts';
import { initBackend } from '../../src/backend/index.ts';
import { readModelConfig, loadModel } from '../../src/model/load.ts';
import { configFingerprint, modelFingerprint } from '../../src/probe/fingerprint.ts';
import { readProbeFile, reusableProbe, runProbe, writeProbeFile } from '../../src/probe/run.ts';
import type { ProbeKind } from '../../src/probe/types.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
const ref = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../fixtures/probe/alpha-hill-stories260K.json'), 'utf8')) as { layers: number[] };
const config = readModelConfig(MODEL);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-probe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of stories260K whose config.json differs by one (unused) field. */
function alteredCopy(): string {
  const dir = path.join(tmp, 'copy');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(MODEL, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  const cfg = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, use_cache: false }));
  return dir;
}

describe('runProbe', () => {
  it('depth needs the config alone: l/(L-1)', async () => {
    const r = await runProbe('depth', { config });
    expect(r.layers).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(r.fingerprint).toBe(configFingerprint(config));
    expect((await runProbe('depth', { config: { ...config, numLayers: 1 } })).layers).toEqual([1]);
  });

  it('alpha-hill from the directory and from a loaded model agree with the numpy reference', async () => {
    const fromDir = await runProbe('alpha-hill', { config, dir: MODEL });
    expect(fromDir.fingerprint).toBe(modelFingerprint(MODEL));
    expect(fromDir.modules).toHaveLength(5);
    fromDir.layers.forEach((a, l) => expect(Math.abs(a - ref.layers[l]) / ref.layers[l]).toBeLessThan(1e-3));
    await initBackend('wasm');
    const lm = await loadModel(MODEL);
    try {
      const before = tf.memory().numTensors;
      const fromLm = await runProbe('alpha-hill', { config, lm });
      expect(tf.memory().numTensors).toBe(before);
      fromLm.layers.forEach((a, l) => expect(Math.abs(a - ref.layers[l]) / ref.layers[l]).toBeLessThan(1e-3));
    } finally {
      lm.dispose();
    }
  });

  it.each([
    ['gradients', /recipe\.adapter\.probe: got "gradients"; allowed: "depth" \| "alpha-hill" \| "grad-sensitivity" \| "activation-rank"/],
    ['grad-sensitivity', /grad-sensitivity: needs a loaded model/],
    ['alpha-hill', /alpha-hill: needs the model directory or a loaded model/],
  ])('refuses %s without what it needs', async (kind, msg) => {
    await expect(runProbe(kind as ProbeKind, { config })).rejects.toThrow(msg);
  });
});

describe('probe.json reuse', () => {
  it('fingerprints follow config.json and the safetensors headers, and are stable', () => {
    const copy = alteredCopy();
    expect(modelFingerprint(MODEL)).toBe(modelFingerprint(MODEL));
    expect(modelFingerprint(MODEL)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(modelFingerprint(copy)).not.toBe(modelFingerprint(MODEL));
  });

  it('reuses a saved probe only for the same kind, settings and model', async () => {
    const file = path.join(tmp, 'run', 'probe.json');
    const model = { config, dir: MODEL };
    const r = await runProbe('depth', model);
    writeProbeFile(file, r);
    expect(reusableProbe(file, 'depth', model)).toEqual(r);
    expect(reusableProbe(file, 'alpha-hill', model)).toBeNull();
    expect(reusableProbe(file, 'depth', { config, dir: alteredCopy() })).toBeNull();
    expect(reusableProbe(path.join(tmp, 'none.json'), 'depth', model)).toBeNull();
    fs.writeFileSync(file, JSON.stringify({ ...r, settings: { score: 'other' } }));
    expect(reusableProbe(file, 'depth', model)).toBeNull();
  });

  it('names the file and field of a broken probe.json', () => {
    const file = path.join(tmp, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ kind: 'alpha', settings: {}, layers: [1], fingerprint: 'x' }));
    expect(() => readProbeFile(file)).toThrow(`${file}: kind: got "alpha"; allowed: "depth" | "alpha-hill"`);
    fs.writeFileSync(file, JSON.stringify({ kind: 'depth', settings: {}, layers: [1, 'x'], fingerprint: 'x' }));
    expect(() => readProbeFile(file)).toThrow(`${file}: layers: got [1,"x"]; allowed: a non-empty list of finite numbers`);
    fs.writeFileSync(file, '{');
    expect(() => readProbeFile(file)).toThrow(`${file}: cannot read a probe.json`);
  });
});

describe('hilo probe output', () => {
  it('draws one bar per layer, from the smallest score to the largest', () => {
    const lines = scoreBars(['layer 0', 'layer 1', 'layer 2'], [1, 2, 3], 10);
    expect(lines).toEqual(['layer 0  1.0000  █', 'layer 1  2.0000  █████', 'layer 2  3.0000  ██████████']);
  });
});

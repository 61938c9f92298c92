import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import type { Batch } from '../../src/data/batch.ts';
import { loadModel } from '../../src/model/load.ts';
import type { BaseCausalLM } from '../../src/model/causal-lm.ts';
import { loadLapack } from '../../src/backend/lapack.ts';
import { activationRankScores, effectiveRankFromGram } from '../../src/probe/activation-rank.ts';
import { calibrationDigest } from '../../src/probe/calibration.ts';
import { gradSensitivityScores } from '../../src/probe/grad-sensitivity.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
// Written by scripts/probe-reference.py (PyTorch reference model in float64, same batches).
const ref = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../fixtures/probe/calibration-stories260K.json'), 'utf8')) as {
  batches: Array<{ batchSize: number; seqLen: number; inputIds: number[][]; attentionMask: number[][]; labels: number[][] }>;
  grad_sensitivity: { layers: number[]; modules: Array<Record<string, number>> };
  activation_rank: { input_module: string; layers: number[] };
};
const batches: Batch[] = ref.batches.map((b) => ({
  batchSize: b.batchSize,
  seqLen: b.seqLen,
  inputIds: Int32Array.from(b.inputIds.flat()),
  attentionMask: Float32Array.from(b.attentionMask.flat()),
  labels: Int32Array.from(b.labels.flat()),
}));
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

let model: BaseCausalLM;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL);
});
afterAll(() => model?.dispose());

describe('data-driven probes on stories260K match the PyTorch float64 reference', () => {
  it('grad-sensitivity: sum |w dL/dw| per module and per layer to 1e-3 relative; weights stay frozen; no leak', () => {
    const before = tf.memory().numTensors;
    const s = gradSensitivityScores(model, batches);
    expect(tf.memory().numTensors).toBe(before);
    s.layers.forEach((v, l) => expect(rel(v, ref.grad_sensitivity.layers[l]), `layer ${l}`).toBeLessThan(1e-3));
    s.modules.forEach((mods, l) => {
      expect(Object.keys(mods)).toHaveLength(7);
      for (const [p, v] of Object.entries(mods)) expect(rel(v, ref.grad_sensitivity.modules[l][p]), `${l} ${p}`).toBeLessThan(1e-3);
    });
    for (const m of model.baseModules.values()) expect(m.kernel!.trainable).toBe(false);
  });

  it('activation-rank: effective rank of q_proj inputs per layer to 1e-3 relative; modules restored; no leak', () => {
    const modulesBefore = new Map(model.modules);
    const before = tf.memory().numTensors;
    const s = activationRankScores(model, batches);
    expect(tf.memory().numTensors).toBe(before);
    expect(s.inputModule).toBe(ref.activation_rank.input_module);
    s.layers.forEach((v, l) => expect(rel(v, ref.activation_rank.layers[l]), `layer ${l}`).toBeLessThan(1e-3));
    expect(new Map(model.modules)).toEqual(modulesBefore);
  });

  it('activation-rank: the JS Gram and eigensolver give LAPACK\'s ranks to 1e-6 relative (sqrt lifts round-off in the smallest eigenvalues)', () => {
    const lapack = loadLapack().lapack;
    const js = activationRankScores(model, batches, undefined, null);
    js.layers.forEach((v, l) => expect(rel(v, ref.activation_rank.layers[l]), `layer ${l}`).toBeLessThan(1e-3));
    if (!lapack) return; // no OpenBLAS here: the JS path is the one the test above ran
    const native = activationRankScores(model, batches, undefined, lapack);
    native.layers.forEach((v, l) => expect(rel(v, js.layers[l]), `layer ${l}`).toBeLessThan(1e-6));
  });
});

describe('probe pieces', () => {
  it('effective rank: k equal singular values -> k; one -> 1', () => {
    expect(effectiveRankFromGram([4, 4, 4, 0])).toBeCloseTo(3, 12);
    expect(effectiveRankFromGram([9, 0, 0])).toBeCloseTo(1, 12);
    // sigma = 1, 3: p = 1/4, 3/4
    expect(effectiveRankFromGram([1, 9])).toBeCloseTo(Math.exp(-(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75))), 12);
  });

  it('calibration digest changes with any token', () => {
    const a = calibrationDigest(batches);
    expect(a).toMatchObject({ batches: 2, sequences: 5, tokens: 2 * 12 + 2 * 10 + 6 });
    const changed = batches.map((b) => ({ ...b, inputIds: b.inputIds.slice() }));
    changed[1].inputIds[3] += 1;
    expect(calibrationDigest(changed).sha256).not.toBe(a.sha256);
  });

  it('refuses to run without batches', () => {
    expect(() => gradSensitivityScores(model, [])).toThrow(/calibration\.batches must be >= 1/);
    expect(() => activationRankScores(model, [])).toThrow(/calibration\.batches must be >= 1/);
  });
});

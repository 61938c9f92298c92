// The data probes at real size: weights held outside the tensor engine in their own dtype, passes
// of capped tokens, the layers' Grams a group at a time; each against the in-heap definition.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { loadLapack } from '../../src/backend/lapack.ts';
import type { Batch } from '../../src/data/batch.ts';
import type { BaseCausalLM } from '../../src/model/causal-lm.ts';
import { loadModel } from '../../src/model/load.ts';
import { activationRankScores } from '../../src/probe/activation-rank.ts';
import { layersPerForward, microBatches, passTokens, PASS_TOKENS } from '../../src/probe/passes.ts';
import { gradSensitivityReference, gradSensitivityScores, type LayerScores } from '../../src/probe/grad-sensitivity.ts';
import { probeSettings } from '../../src/probe/run.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** Seeded batches of `B` sequences of `T` tokens, the last sequence of each right-padded by 3. */
function batchesOf(n: number, B: number, T: number, vocab: number): Batch[] {
  let s = 7;
  const next = () => (s = (s * 16807) % 2147483647);
  return Array.from({ length: n }, () => {
    const inputIds = Int32Array.from({ length: B * T }, () => next() % vocab);
    const attentionMask = new Float32Array(B * T).fill(1);
    const labels = inputIds.slice();
    for (let t = T - 3; t < T; t++) {
      attentionMask[(B - 1) * T + t] = 0;
      labels[(B - 1) * T + t] = -100;
    }
    return { inputIds, attentionMask, labels, batchSize: B, seqLen: T };
  });
}

function expectClose(got: LayerScores, want: LayerScores, tol: number): void {
  got.layers.forEach((v, l) => expect(rel(v, want.layers[l]), `layer ${l}`).toBeLessThan(tol));
  got.modules.forEach((mods, l) => {
    expect(Object.keys(mods)).toEqual(Object.keys(want.modules[l]));
    for (const [p, v] of Object.entries(mods)) expect(rel(v, want.modules[l][p]), `${l} ${p}`).toBeLessThan(tol);
  });
}

let heap: BaseCausalLM;
let stored: BaseCausalLM;
let heapBf16: BaseCausalLM;
let storedBf16: BaseCausalLM;
let batches: Batch[];
beforeAll(async () => {
  await initBackend('wasm');
  heap = await loadModel(STORIES260K, { storage: { dtype: 'auto', outside: false } });
  stored = await loadModel(STORIES260K, { storage: { dtype: 'auto', outside: true } });
  heapBf16 = await loadModel(STORIES260K, { storage: { dtype: 'bfloat16', outside: false } });
  storedBf16 = await loadModel(STORIES260K, { storage: { dtype: 'bfloat16', outside: true } });
  batches = batchesOf(2, 4, 16, heap.config.vocabSize);
});
afterAll(() => [heap, stored, heapBf16, storedBf16].forEach((m) => m?.dispose()));

describe('grad-sensitivity through output taps', () => {
  it('the models under test hold their weights where intended', () => {
    const q = 'model.layers.0.self_attn.q_proj';
    expect(heap.baseModules.get(q)!.kernel).not.toBeNull();
    expect(stored.baseModules.get(q)!.kernel).toBeNull();
    expect(storedBf16.baseModules.get(q)!.stored!.dtype).toBe('bfloat16');
  });

  it('stored float32 weights: the in-heap variable gradients\' scores to 1e-4 relative; no leak; modules restored', () => {
    const want = gradSensitivityReference(heap, batches);
    const modules = new Map(stored.modules);
    const before = tf.memory().numTensors;
    const got = gradSensitivityScores(stored, batches);
    expect(tf.memory().numTensors).toBe(before);
    expect(new Map(stored.modules)).toEqual(modules);
    expectClose(got, want, 1e-4);
  });

  it('stored bfloat16 weights (decoded block by block): the in-heap bfloat16 model\'s scores to 1e-4 relative', () => {
    const want = gradSensitivityReference(heapBf16, batches);
    expectClose(gradSensitivityScores(storedBf16, batches), want, 1e-4);
    // and bf16 rounding moves the scores, so the comparison above sees the dtype
    const f32 = gradSensitivityReference(heap, batches);
    expect(Math.max(...want.layers.map((v, l) => rel(v, f32.layers[l])))).toBeGreaterThan(1e-4);
  });

  it('engine weights through the taps: the reference to 1e-4 relative', () => {
    expectClose(gradSensitivityScores(heap, batches), gradSensitivityReference(heap, batches), 1e-4);
  });

  it('a capped pass splits batches into micro-batches, each scored on its own gradient', () => {
    const cap = 2 * 16; // two sequences a pass: each batch of 4 becomes 2 passes
    const got = gradSensitivityScores(stored, batches, { maxTokensPerPass: cap });
    expectClose(got, gradSensitivityReference(heap, microBatches(batches, cap), { maxTokensPerPass: 1e9 }), 1e-4);
    // |w g| of each half's gradient is not |w g| of the whole batch's: the cap changes the numbers
    const whole = gradSensitivityScores(stored, batches);
    expect(rel(got.layers[0], whole.layers[0])).toBeGreaterThan(1e-3);
  });
});

describe('activation-rank in capped passes and layer groups', () => {
  const lapack = loadLapack().lapack;
  it('one layer per forward, two sequences a pass, stored weights: the same ranks (a Gram is a sum over rows)', () => {
    const want = activationRankScores(heap, batches, undefined, lapack);
    const before = tf.memory().numTensors;
    const got = activationRankScores(stored, batches, undefined, lapack, { maxTokensPerPass: 32, gramBytes: 1 });
    expect(tf.memory().numTensors).toBe(before);
    got.layers.forEach((v, l) => expect(rel(v, want.layers[l]), `layer ${l}`).toBeLessThan(1e-6));
    expect(got.layers).toHaveLength(heap.config.numLayers);
  });

  it('layersPerForward: as many d x d float64 Grams as the bytes hold, at least one, at most all', () => {
    expect(layersPerForward(4096, 32, 512 * 2 ** 20)).toBe(4); // 128 MiB each
    expect(layersPerForward(576, 30, 512 * 2 ** 20)).toBe(30);
    expect(layersPerForward(64, 5, 1)).toBe(1);
  });
});

describe('micro-batches and the pass cap', () => {
  it('splits by whole sequences, as views; batches within the cap pass as they are', () => {
    const [b] = batchesOf(1, 5, 4, 100);
    const parts = microBatches([b], 8);
    expect(parts.map((p) => p.batchSize)).toEqual([2, 2, 1]);
    expect(parts[2].inputIds).toEqual(b.inputIds.subarray(16, 20));
    expect(parts[1].attentionMask.buffer).toBe(b.attentionMask.buffer);
    expect(microBatches([b], 20)[0]).toBe(b);
  });

  it('a sequence longer than the cap is an error naming both and the setting', () => {
    const [b] = batchesOf(1, 2, 40, 100);
    expect(() => microBatches([b], 32)).toThrow('calibration sequences of 40 tokens exceed the 32 tokens a probe pass may hold; lower recipe.data.max_length or raise HILO_PROBE_PASS_TOKENS');
  });

  it('HILO_PROBE_PASS_TOKENS sets the cap; a bad value is named', () => {
    expect(passTokens({})).toBe(PASS_TOKENS);
    expect(passTokens({ HILO_PROBE_PASS_TOKENS: '256' })).toBe(256);
    expect(() => passTokens({ HILO_PROBE_PASS_TOKENS: '1.5' })).toThrow('HILO_PROBE_PASS_TOKENS=1.5: expected a whole number of tokens >= 1');
  });

  it('grad-sensitivity settings record the cap only when it splits a batch', () => {
    const config = heap.config;
    expect(probeSettings('grad-sensitivity', config, { batches, maxTokensPerPass: 64 })).not.toHaveProperty('max_tokens_per_pass');
    expect(probeSettings('grad-sensitivity', config, { batches, maxTokensPerPass: 32 })).toMatchObject({ max_tokens_per_pass: 32 });
  });
});

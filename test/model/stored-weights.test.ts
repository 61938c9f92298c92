/**
 * Frozen weights held outside the tensor engine (src/ops/stored.ts, WeightStorage.outside), on the
 * real stories260K with MoE-LoRA adapters: a model whose weight matrices exceed a deliberately
 * lowered heap cap (HILO_HEAP_WEIGHTS) trains a step and matches the uncapped run; bfloat16
 * storage gives the loss of the same weights rounded to bfloat16 as float32 variables; layer
 * checkpointing and the chunked cross-entropy give the gradients of the plain passes.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters, type Adapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import { initBackend } from '../../src/backend/index.ts';
import { IGNORE_INDEX } from '../../src/data/encode.ts';
import { mulberry32 } from '../../src/rng.ts';
import type { BaseCausalLM } from '../../src/model/causal-lm.ts';
import { heapWeightsCap, loadModel, matrixBytes, readModelConfig, storageFor } from '../../src/model/load.ts';
import { chunkedTokenNll, tokenNll } from '../../src/ops/cross-entropy.ts';
import { microBatchGradients } from '../../src/train/step.ts';
import { STORIES260K } from '../helpers/fixtures.ts';
import { microBatch } from '../helpers/batches.ts';

const STORIES = STORIES260K;
const { blas } = loadBlas({});

const PLAN: AdapterPlan = {
  method: 'moe-uniform', targetModules: ['q_proj', 'v_proj', 'down_proj'], strategy: 'topk', topP: 0.8, alpha: 4,
  scaling: 'alpha/r', fixedScale: 1, dropout: 0.1,
  layers: Array.from({ length: 5 }, () => {
    const mod = { experts: 3, rank: 2, topK: 2 };
    return { 'self_attn.q_proj': mod, 'self_attn.v_proj': mod, 'mlp.down_proj': mod };
  }),
};

/** MoE adapters with seeded values everywhere (B starts at 0, which would leave A's gradient 0). */
function adapt(model: BaseCausalLM): Adapters {
  const adapters = injectAdapters(model, PLAN, { seed: 1, balanceCoef: 0.05, zLossCoef: 0.01 });
  const u = mulberry32(3);
  for (const v of adapters.variables.values()) tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => (u() - 0.5) * 0.2), v.shape)));
  return adapters;
}

/** One micro-batch's loss and gradients (by trainable key) with dropout and router losses. */
async function step(model: BaseCausalLM, adapters: Adapters, checkpointLayers = false): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const byName = new Map([...adapters.variables].map(([k, v]) => [v.name, k]));
  const { loss, grads } = await microBatchGradients(model, [...adapters.variables.values()], microBatch(model.config.vocabSize), { seedParts: [4, 2], checkpointLayers });
  const out = new Map(Object.entries(grads).map(([n, g]) => [byName.get(n)!, g.dataSync().slice() as Float32Array]));
  tf.dispose(grads);
  return { loss, grads: out };
}

function expectSameGrads(got: Map<string, Float32Array>, want: Map<string, Float32Array>, rel: number): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  let scale = 0;
  for (const g of want.values()) for (const x of g) scale = Math.max(scale, Math.abs(x));
  expect(scale).toBeGreaterThan(1e-3);
  for (const [k, g] of want) {
    const d = got.get(k)!;
    let worst = 0;
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(d[i] - g[i]));
    expect(worst, k).toBeLessThanOrEqual(rel * scale);
  }
}

async function withCap<T>(mib: string, f: () => Promise<T>): Promise<T> {
  const old = process.env.HILO_HEAP_WEIGHTS;
  process.env.HILO_HEAP_WEIGHTS = mib;
  try {
    return await f();
  } finally {
    if (old === undefined) delete process.env.HILO_HEAP_WEIGHTS;
    else process.env.HILO_HEAP_WEIGHTS = old;
  }
}

describe('where frozen weights go', () => {
  it.each([
    ['0', 0], ['1.5', 1.5 * 2 ** 20], ['128', 128 * 2 ** 20],
  ])('HILO_HEAP_WEIGHTS=%s caps heap weights at %i bytes', (raw, bytes) => {
    expect(heapWeightsCap({ HILO_HEAP_WEIGHTS: raw })).toBe(bytes);
  });

  it('names a bad HILO_HEAP_WEIGHTS and what it takes', () => {
    expect(() => heapWeightsCap({ HILO_HEAP_WEIGHTS: 'lots' })).toThrow(/HILO_HEAP_WEIGHTS=lots: expected MiB as a number >= 0/);
  });

  it('puts a model over the cap outside the engine, a trainable one never', async () => {
    const config = readModelConfig(STORIES);
    expect(matrixBytes(config)).toBe(4 * (512 * 64 + 5 * (4 * 64 * 64 - 2 * 64 * 32 + 3 * 64 * 172)));
    await withCap('0.5', async () => {
      expect(storageFor(config, { dtype: 'bfloat16' })).toEqual({ dtype: 'bfloat16', outside: true });
      expect(storageFor(config, { trainable: true })).toEqual({ dtype: 'auto', outside: false });
    });
    await withCap('2', async () => expect(storageFor(config)).toEqual({ dtype: 'auto', outside: false }));
  });
});

describe.skipIf(!blas)('stories260K with its weights outside the wasm heap', () => {
  let heap: BaseCausalLM;
  let heapAdapters: Adapters;
  let heapStep: { loss: number; grads: Map<string, Float32Array> };
  beforeAll(async () => {
    await initBackend('wasm');
    heap = await loadModel(STORIES);
    heapAdapters = adapt(heap);
    heapStep = await step(heap, heapAdapters);
  });
  afterAll(() => {
    heapAdapters?.dispose();
    heap?.dispose();
  });

  it('over a lowered heap cap: every weight matrix outside, and a training step matches the uncapped one', { timeout: 60_000 }, async () => {
    const capped = await withCap('0.5', () => loadModel(STORIES));
    try {
      expect(capped.stored.size).toBe(36); // 35 projections and the (tied) embedding
      expect([...capped.weights.keys()].every((n) => n.endsWith('norm.weight'))).toBe(true);
      expect(capped.numParameters()).toBe(heap.numParameters());
      const adapters = adapt(capped);
      const before = tf.memory().numTensors;
      const got = await step(capped, adapters);
      expect(tf.memory().numTensors).toBe(before);
      expect(Math.abs(got.loss - heapStep.loss)).toBeLessThan(1e-5 * heapStep.loss);
      expectSameGrads(got.grads, heapStep.grads, 1e-4);
      adapters.dispose();
    } finally {
      capped.dispose();
    }
  });

  it('bfloat16 storage: the loss of the same weights rounded to bfloat16 as float32 variables', { timeout: 60_000 }, async () => {
    const stored = await loadModel(STORIES, { storage: { dtype: 'bfloat16', outside: true } });
    const rounded = await loadModel(STORIES, { dtype: 'bfloat16' }); // on the heap, values rounded
    try {
      expect([...stored.stored.values()].every((m) => m.dtype === 'bfloat16' && m.bytes.byteLength === 2 * m.rows * m.cols)).toBe(true);
      const [a, b] = [adapt(stored), adapt(rounded)];
      const [s, r] = [await step(stored, a), await step(rounded, b)];
      expect(Math.abs(s.loss - r.loss)).toBeLessThan(1e-5 * r.loss);
      expect(Math.abs(s.loss - heapStep.loss)).toBeGreaterThan(1e-6); // it really was rounded
      expect(Math.abs(s.loss - heapStep.loss)).toBeLessThan(0.05 * heapStep.loss);
      a.dispose();
      b.dispose();
    } finally {
      stored.dispose();
      rounded.dispose();
    }
  });

  it('gradient checkpointing gives the gradients of the plain pass, on the heap and outside it', { timeout: 60_000 }, async () => {
    const before = tf.memory().numTensors;
    const again = await step(heap, heapAdapters, true);
    expect(tf.memory().numTensors).toBe(before);
    expect(again.loss).toBeCloseTo(heapStep.loss, 6);
    expectSameGrads(again.grads, heapStep.grads, 1e-6);
    const capped = await loadModel(STORIES, { storage: { dtype: 'auto', outside: true } });
    try {
      const adapters = adapt(capped);
      const [plain, ckpt] = [await step(capped, adapters), await step(capped, adapters, true)];
      expectSameGrads(ckpt.grads, plain.grads, 1e-6);
      adapters.dispose();
    } finally {
      capped.dispose();
    }
  });
});

describe('chunkedTokenNll', () => {
  beforeAll(async () => {
    await initBackend(blas ? 'wasm' : 'cpu');
  });

  it('equals tokenNll of the whole logits, forward and gradient, in chunks of 3 rows of 10', () => {
    const [N, H, V] = [10, 4, 7];
    const u = mulberry32(5);
    const h = tf.tensor2d(Float32Array.from({ length: N * H }, () => u() - 0.5), [N, H]);
    const W = tf.tensor2d(Float32Array.from({ length: H * V }, () => u() - 0.5), [H, V]);
    const targets = Int32Array.from({ length: N }, (_, i) => (i % 4 === 3 ? IGNORE_INDEX : i % V));
    const dy = tf.tensor1d(Float32Array.from({ length: N }, () => u()));
    const head = (rows: tf.Tensor2D) => tf.matMul(rows, W) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const [whole, chunked] = [(x: tf.Tensor) => tokenNll(head(x as tf.Tensor2D), targets), (x: tf.Tensor) => chunkedTokenNll(x as tf.Tensor2D, head, targets, V, 3 * 4 * V)]
      .map((f) => tf.tidy(() => [f(h).dataSync().slice(), tf.grad(f)(h, dy).dataSync().slice()]));
    expect(tf.memory().numTensors).toBe(before);
    for (const k of [0, 1]) {
      expect(whole[k].length).toBe(k === 0 ? N : N * H);
      whole[k].forEach((v, i) => expect(Math.abs(chunked[k][i] - v), `${k} [${i}]`).toBeLessThan(1e-6));
    }
    expect(chunked[0][3]).toBe(0);
    tf.dispose([h, W, dy]);
  });
});

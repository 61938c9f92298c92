/**
 * Evaluation's scoring (src/train/evaluate.ts rowNll) on the real stories260K model with MoE-LoRA
 * adapters: a batch scored a chunk of rows at a time gives each sequence the NLL it gets whole,
 * and holds no more tensor memory at its peak than one chunk does, whatever the batch size
 * (the wasm heap grows to the largest peak it ever serves and never shrinks).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters, type Adapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { EVAL_CHUNK_TOKENS, evalChunkRows } from '../../src/allocate/memory.ts';
import { initBackend } from '../../src/backend/index.ts';
import { padBatch } from '../../src/data/batch.ts';
import { mulberry32 } from '../../src/rng.ts';
import { loadModel } from '../../src/model/load.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { rowNll } from '../../src/train/evaluate.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODS = ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'];

/** `n` sequences of 20-63 tokens (padding of unequal lengths included), or all of `same`, loss on every token. */
function batch(vocab: number, n: number, same?: number) {
  const u = mulberry32(11);
  return padBatch(Array.from({ length: n }, (_, i) => {
    const inputIds = Array.from({ length: same ?? 20 + ((i * 13) % 44) }, () => 1 + Math.floor(u() * (vocab - 1)));
    return { inputIds, labels: inputIds };
  }), 0);
}

describe('evalChunkRows', () => {
  it('takes as many rows as EVAL_CHUNK_TOKENS holds, at least one', () => {
    expect(evalChunkRows(128)).toBe(EVAL_CHUNK_TOKENS / 128);
    expect(evalChunkRows(100, 512)).toBe(5);
    expect(evalChunkRows(4096, 512)).toBe(1);
  });
});

describe('rowNll in chunks', () => {
  let model: CausalLM;
  let adapters: Adapters;
  beforeAll(async () => {
    await initBackend('wasm');
    model = await loadModel(STORIES260K);
    const plan: AdapterPlan = {
      method: 'moe-uniform', targetModules: MODS, strategy: 'topk', topP: 0.8, alpha: 16, scaling: 'alpha/r', fixedScale: 1, dropout: 0,
      layers: Array.from({ length: model.config.numLayers }, () => Object.fromEntries(MODS.map((m) => [m, { experts: 4, rank: 4, topK: 2 }]))),
    };
    adapters = injectAdapters(model, plan, { seed: 3 });
  });
  afterAll(() => {
    adapters?.dispose();
    model?.dispose();
  });

  it('gives every sequence the NLL it gets in one forward, and the first chunk the expert usage', async () => {
    const b = batch(model.config.vocabSize, 7);
    const whole = await rowNll(model, b, undefined, Infinity);
    const ctx = { training: false, auxLosses: [], routerStats: new Map<string, tf.Tensor1D>() };
    const before = tf.memory().numTensors;
    const chunked = await rowNll(model, b, ctx, 2 * b.seqLen); // chunks of 2, 2, 2, 1 rows
    expect(chunked.length).toBe(7);
    for (let r = 0; r < 7; r++) expect(chunked[r]).toBeCloseTo(whole[r], 3);
    expect(whole.every((v) => v > 0)).toBe(true);
    expect(ctx.routerStats.size).toBe(MODS.length * model.config.numLayers);
    expect(tf.memory().numTensors - ctx.routerStats.size).toBe(before); // nothing else kept
    tf.dispose([...ctx.routerStats.values()]);
  });

  it("holds one chunk's tensors at its peak, not the batch's", async () => {
    const T = 64;
    const peak = async (rows: number, chunkTokens: number) => {
      const b = batch(model.config.vocabSize, rows, T);
      const start = tf.memory().numBytes;
      const info = await tf.profile(async () => void (await rowNll(model, b, undefined, chunkTokens)));
      return info.peakBytes - start;
    };
    const oneChunk = await peak(2, 2 * T);
    const chunked = await peak(16, 2 * T);
    const whole = await peak(16, Infinity);
    expect(chunked).toBeLessThanOrEqual(oneChunk * 1.05);
    expect(whole).toBeGreaterThan(3 * chunked); // what the chunks save
  });
});

/**
 * Text generation and scoring on a CausalLM. Generation runs the prompt once, then one token
 * per step against a KV cache (useCache: false recomputes the whole prefix instead).
 */
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { mulberry32 } from '../rng.ts';
import { familyOf } from './families.ts';
import { createKvCache, disposeKvCache } from './causal-lm.ts';
import { argmax, checkSampling, sampleIndex, type Sampling } from './sampling.ts';
import type { CausalLM, KvCache } from './types.ts';

export interface GenerateOptions extends Sampling {
  maxNewTokens?: number; // default 32
  seed?: number; // for sampling; default 0
  /** Stop after emitting one of these; default the config's eos_token_id(s). */
  stopIds?: number[];
  /** Keep each layer's keys/values between steps instead of recomputing the prefix (default true). */
  useCache?: boolean;
}

export interface GenerateResult {
  /** The new ids only (a stop id that ended generation is included). */
  ids: number[];
  stoppedBy: 'stop-id' | 'max-new-tokens' | 'max-positions';
}

export function defaultStopIds(model: CausalLM): number[] {
  const eos = model.config.eosTokenId;
  return eos === null ? [] : Array.isArray(eos) ? eos : [eos];
}

/** Logits [V] of the last position for one sequence of ids (the new ones only, with a cache). */
async function lastLogits(model: CausalLM, ids: number[], cache?: KvCache): Promise<Float32Array> {
  const last = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'), { cache }); // [1, T, V]
    return logits.slice([0, ids.length - 1, 0], [1, 1, -1]).reshape([-1]); // [V]
  });
  const data = (await last.data()) as Float32Array;
  last.dispose();
  return data;
}

/** Continue `promptIds` (BOS included if the model wants one). */
export async function generate(model: CausalLM, promptIds: number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
  if (promptIds.length === 0) throw new HiloError('generate: the prompt has no tokens (give text or at least a BOS id)');
  const maxNew = opts.maxNewTokens ?? 32;
  checkSampling(opts);
  const temperature = opts.temperature ?? 0;
  const cut = { topK: opts.topK, topP: opts.topP };
  const stop = new Set(opts.stopIds ?? defaultStopIds(model));
  const uniform = mulberry32(opts.seed ?? 0);
  // learned position tables end at max_position_embeddings; RoPE models may go past it
  const limit = familyOf(model.config).positions === 'learned' ? model.config.maxPositions : Infinity;
  const cache = opts.useCache === false ? undefined : createKvCache();
  const ids = [...promptIds];
  const out: number[] = [];
  try {
    let input = ids.slice();
    while (out.length < maxNew) {
      if (ids.length >= limit) return { ids: out, stoppedBy: 'max-positions' };
      const row = await lastLogits(model, input, cache);
      const next = temperature === 0 ? argmax(row) : sampleIndex(row, temperature, uniform(), cut);
      ids.push(next);
      out.push(next);
      if (stop.has(next)) return { ids: out, stoppedBy: 'stop-id' };
      input = cache ? [next] : ids.slice(); // with a cache only the new token goes through the model
    }
    return { ids: out, stoppedBy: 'max-new-tokens' };
  } finally {
    if (cache) disposeKvCache(cache);
  }
}

export interface ScoreResult {
  ids: number[];
  /** logprobs[t] = log p(ids[t] | ids[<t]); null at t = 0 (nothing predicts the first token). */
  logprobs: Array<number | null>;
  /** With `logits`: row t is the logits at position t (predicting ids[t+1]). */
  logits?: number[][];
}

/** Per-position log-probabilities of `ids` under the model (one forward pass). */
export async function scoreIds(model: CausalLM, ids: number[], opts: { logits?: boolean } = {}): Promise<ScoreResult> {
  if (ids.length === 0) throw new HiloError('score: no token ids to score');
  const T = ids.length;
  const [logits, picked] = tf.tidy(() => {
    const l = model.forward(tf.tensor2d([ids], [1, T], 'int32')).reshape([T, -1]) as tf.Tensor2D; // [T, V]
    const V = l.shape[1];
    if (T === 1) return [opts.logits ? l : null, tf.zeros([0])];
    const logp = tf.logSoftmax(l.slice([0, 0], [T - 1, V]), -1); // [T-1, V]: row t predicts ids[t+1]
    // gather the observed next ids: flat index t*V + ids[t+1] (no one-hot over the vocabulary)
    const flat = tf.tensor1d(ids.slice(1).map((id, t) => t * V + id), 'int32');
    return [opts.logits ? l : null, tf.gather(logp.reshape([-1]), flat)];
  });
  const lp: number[] = Array.from((await picked.data()) as Float32Array);
  const rows = logits ? ((await logits.array()) as number[][]) : undefined;
  tf.dispose([picked, logits ?? []]);
  return { ids, logprobs: [null, ...lp], logits: rows };
}

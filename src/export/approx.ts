/**
 * How far a folded export is from the mixture it replaces: the relative logit error
 * ||logits_folded − logits_moe|| / ||logits_moe|| (Frobenius, over every real token's logits
 * row) on held-out batches the folding never saw.
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { evalBatches, padIdOf, type Batch } from '../data/batch.ts';
import { encodeDataset, loadDataset } from '../data/dataset.ts';
import { HiloError } from '../errors.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import type { Recipe } from '../recipe/schema.ts';

/** Logits [B, T, V] of a batch under one model (or one module setting). */
export type Forward = (ids: tf.Tensor2D, mask: tf.Tensor2D) => tf.Tensor3D;

export interface LogitError {
  /** ||candidate − reference|| / ||reference|| over the real tokens. */
  relative: number;
  /** Largest |candidate − reference| of any real token's logit. */
  maxAbs: number;
  tokens: number;
}

export function relativeLogitError(batches: readonly Batch[], reference: Forward, candidate: Forward): LogitError {
  let diff2 = 0;
  let ref2 = 0;
  let maxAbs = 0;
  let tokens = 0;
  for (const b of batches) {
    const parts = tf.tidy(() => {
      const ids = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32');
      const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen]);
      const ref = reference(ids, mask);
      const diff = tf.sub(candidate(ids, mask), ref); // [B, T, V]
      const m = tf.expandDims(mask, 2); // [B, T, 1]
      return [tf.sum(tf.mul(tf.square(diff), m)), tf.sum(tf.mul(tf.square(ref), m)), tf.max(tf.mul(tf.abs(diff), m))];
    });
    const [d, r, mx] = parts.map((t) => t.dataSync()[0]);
    tf.dispose(parts);
    diff2 += d;
    ref2 += r;
    maxAbs = Math.max(maxAbs, mx);
    for (const v of b.attentionMask) tokens += v;
  }
  if (tokens === 0) throw new HiloError('export: no held-out tokens to measure the approximation error on');
  return { relative: Math.sqrt(diff2) / Math.sqrt(ref2), maxAbs, tokens };
}

/** At most this many held-out sequences are scored: enough for a stable ratio, cheap on big models. */
export const MAX_HELD_OUT = 64;

/** Bytes of the float32 logits of one held-out batch at most (each scored batch holds a few such tensors). */
export const HELD_OUT_LOGIT_BYTES = 256 * 2 ** 20;

/**
 * The recipe's eval split (its test split when there is none), in order, as eval batches: of
 * train.eval_batch_size sequences, fewer where a batch's [B, T, vocabSize] logits would pass
 * HELD_OUT_LOGIT_BYTES (at 151,936 words, 16 x 128 tokens of them are 1.2 GB: several such
 * tensors would not fit the wasm heap).
 */
export function heldOutBatches(recipe: Recipe, vocabSize = 0): { batches: Batch[]; split: 'eval' | 'test'; sequences: number } {
  const tok = loadTokenizer(recipe.model.path);
  const enc = encodeDataset(loadDataset(recipe.data, path.resolve(recipe.output_dir), recipe.seed), tok, recipe.data);
  const split = enc.eval.length > 0 ? 'eval' : 'test';
  const seqs = (split === 'eval' ? enc.eval : enc.test).slice(0, MAX_HELD_OUT);
  if (seqs.length === 0) throw new HiloError("export: the recipe's data has no eval or test split to measure the approximation error on");
  const longest = seqs.reduce((m, s) => Math.max(m, s.inputIds.length), 1);
  const fits = Math.max(1, Math.floor(HELD_OUT_LOGIT_BYTES / (4 * longest * Math.max(1, vocabSize))));
  return { batches: [...evalBatches(seqs, Math.min(recipe.train.eval_batch_size, fits), padIdOf(tok))], split, sequences: seqs.length };
}

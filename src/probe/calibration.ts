/**
 * What the data-driven probes share: the calibration loss of one batch and a digest of the
 * batches, so a saved probe.json is reused only for the same tokens.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { CausalLM, ForwardContext } from '../model/types.ts';
import { shiftedLabels } from '../ops/causal-loss.ts';
import { IGNORE_INDEX } from '../ops/cross-entropy.ts';

/**
 * Mean next-token cross-entropy of `batch` (labels -100 ignored), as training computes it; the
 * logits are made a chunk of rows at a time (CausalLM.tokenNll), never [B·T, vocab] at once.
 * `ctx`: a training context (e.g. gradient checkpointing), passed to the forward.
 */
export function batchLoss(model: CausalLM, batch: Batch, ctx?: ForwardContext): tf.Scalar {
  const { batchSize: B, seqLen: T } = batch;
  const targets = shiftedLabels(batch.labels, B, T);
  let count = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) count++;
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, [B, T], 'int32');
    const mask = tf.tensor2d(batch.attentionMask, [B, T], 'float32');
    return model.tokenNll(ids, targets, { attentionMask: mask, ctx }).sum().div(Math.max(1, count)) as tf.Scalar;
  });
}

/** Settings entry describing the calibration data: counts plus a sha256 of every id, mask and label. */
export function calibrationDigest(batches: readonly Batch[]): { batches: number; sequences: number; tokens: number; sha256: string } {
  const h = createHash('sha256');
  let sequences = 0;
  let tokens = 0;
  for (const b of batches) {
    h.update(`${b.batchSize}x${b.seqLen};`);
    h.update(new Uint8Array(b.inputIds.buffer, b.inputIds.byteOffset, b.inputIds.byteLength));
    h.update(new Uint8Array(b.attentionMask.buffer, b.attentionMask.byteOffset, b.attentionMask.byteLength));
    h.update(new Uint8Array(b.labels.buffer, b.labels.byteOffset, b.labels.byteLength));
    sequences += b.batchSize;
    for (const m of b.attentionMask) tokens += m;
  }
  return { batches: batches.length, sequences, tokens, sha256: h.digest('hex') };
}

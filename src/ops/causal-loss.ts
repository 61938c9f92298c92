/**
 * The causal-LM loss on logits: HF's shift (position t predicts token t+1) and the mean NLL over
 * counted tokens, without a one-hot over the vocabulary. Training and the calibration probes
 * both score with it.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX, tokenNll } from './cross-entropy.ts';

/**
 * HF-shifted loss: position t predicts labels[t+1]. `labels` is [B*T] row-major (b, t).
 * Returns the mean over counted tokens and the count.
 */
export function shiftedLabels(labels: Int32Array, batch: number, seqLen: number): Int32Array {
  const out = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seqLen; t++) out[b * seqLen + t] = labels[b * seqLen + t + 1];
  }
  return out;
}

/** Mean NLL over counted tokens (0 when none count). */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): { loss: tf.Scalar; count: number } {
  let count = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) count++;
  const loss = tf.tidy(() => tokenNll(logits, targets).sum().div(Math.max(1, count))) as tf.Scalar;
  return { loss, count };
}

/**
 * Causal-LM cross-entropy without a one-hot over the vocabulary: logsumexp(row) minus the
 * label's logit, gathered from the flattened logits. Labels of -100 contribute nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX, tokenNll } from '../ops/cross-entropy.ts';

export { chunkedTokenNll, IGNORE_INDEX, tokenNll } from '../ops/cross-entropy.ts';

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

/**
 * Mean cross-entropy over candidate scores [B, C] (log-likelihoods) with the right candidate's
 * index per row: softmax over the candidates only, as a verbalizer-style classification loss.
 */
export function choiceCrossEntropy(scores: tf.Tensor2D, answers: Int32Array): tf.Scalar {
  const [b, c] = scores.shape;
  const onehot = new Float32Array(b * c);
  answers.forEach((a, i) => (onehot[i * c + a] = 1));
  return tf.tidy(() => tf.logSoftmax(scores).mul(tf.tensor2d(onehot, [b, c])).sum().neg().div(b)) as tf.Scalar;
}

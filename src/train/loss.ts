/**
 * Causal-LM cross-entropy without a one-hot over the vocabulary: logsumexp(row) minus the
 * label's logit, gathered from the flattened logits. Labels of -100 contribute nothing.
 */
import * as tf from '@tensorflow/tfjs';

export const IGNORE_INDEX = -100;

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

/**
 * Per-token negative log-likelihood [N] for logits [N, V] and targets (already shifted) with
 * IGNORE_INDEX for positions that do not count (their value is 0).
 */
export function tokenNll(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const [n, v] = logits.shape;
  const flatIdx = new Int32Array(n);
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const ok = targets[i] !== IGNORE_INDEX;
    flatIdx[i] = i * v + (ok ? targets[i] : 0);
    weight[i] = ok ? 1 : 0;
  }
  return tf.tidy(() => {
    const lse = tf.logSumExp(logits, 1); // [N]
    const picked = tf.gather(logits.reshape([n * v]), tf.tensor1d(flatIdx, 'int32')); // [N]
    return lse.sub(picked).mul(tf.tensor1d(weight));
  });
}

/** Mean NLL over counted tokens (0 when none count). */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): { loss: tf.Scalar; count: number } {
  let count = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) count++;
  const loss = tf.tidy(() => tokenNll(logits, targets).sum().div(Math.max(1, count))) as tf.Scalar;
  return { loss, count };
}

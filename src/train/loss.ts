/**
 * Training losses: the causal-LM cross-entropy (src/ops/, shared with the calibration probes)
 * and the choice loss over candidate scores.
 */
import * as tf from '@tensorflow/tfjs';

export { chunkedTokenNll, IGNORE_INDEX, tokenNll } from '../ops/cross-entropy.ts';
export { crossEntropy, shiftedLabels } from '../ops/causal-loss.ts';

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

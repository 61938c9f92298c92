/**
 * The frozen linear layer every adaptable projection starts as. Its kernel is stored [in, out]
 * so the forward product is a plain matMul (no transposeB on the hot path).
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenLinear } from './types.ts';

export class FrozenLinearLayer implements FrozenLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly name: string,
    readonly kernel: tf.Variable, // [in, out]
    readonly bias: tf.Variable | null, // [out]
    readonly hfLayout: 'linear' | 'conv1d',
  ) {
    [this.inFeatures, this.outFeatures] = kernel.shape as [number, number];
  }

  /** x [N, in] -> [N, out]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => {
      const y: tf.Tensor2D = tf.matMul(x, this.kernel as tf.Tensor2D); // [N, in] x [in, out]
      return this.bias ? tf.add<tf.Tensor2D>(y, this.bias) : y;
    });
  }
}

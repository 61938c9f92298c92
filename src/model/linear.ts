/**
 * The frozen linear layer every adaptable projection starts as. On the engine its kernel is
 * stored [in, out] so the forward product is a plain matMul (no transposeB on the hot path);
 * held outside it, the product is the frozen linear op on the checkpoint's bytes.
 */
import * as tf from '@tensorflow/tfjs';
import { frozenLinear } from '../ops/frozen-linear.ts';
import { decodeAll, linearShape, type StoredMatrix } from '../ops/stored.ts';
import { transposeData } from './transpose.ts';
import type { FrozenLinear } from './types.ts';

export class FrozenLinearLayer implements FrozenLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly name: string,
    readonly kernel: tf.Variable | null, // [in, out]
    readonly bias: tf.Variable | null, // [out]
    readonly hfLayout: 'linear' | 'conv1d',
    readonly stored: StoredMatrix | null = null,
  ) {
    if (!kernel && !stored) throw new Error(`internal: ${name} has neither a kernel nor stored bytes`);
    [this.inFeatures, this.outFeatures] = kernel ? (kernel.shape as [number, number]) : linearShape(stored!);
  }

  /** x [N, in] -> [N, out]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    if (!this.kernel) return frozenLinear(x, this.stored!, this.bias as tf.Tensor1D | null);
    return tf.tidy((): tf.Tensor2D => {
      const y: tf.Tensor2D = tf.matMul(x, this.kernel as tf.Tensor2D); // [N, in] x [in, out]
      return this.bias ? tf.add<tf.Tensor2D>(y, this.bias) : y;
    });
  }

  kernelValues(): Float32Array {
    if (this.kernel) return this.kernel.dataSync() as Float32Array;
    const s = this.stored!;
    const values = decodeAll(s);
    return s.layout === 'out-in' ? transposeData(values, s.rows, s.cols) : values; // [in, out]
  }
}

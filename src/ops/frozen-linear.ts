/**
 * The frozen linear map of a base model, y = x·K (+ b) for rows x [N, in] and a frozen K [in, out]
 * held as a StoredMatrix (src/ops/stored.ts). Its gradient is dx = dy·Kᵀ only: K is frozen, so it
 * gets none (and neither does b).
 *
 * Named once here; each backend may register a faster implementation (the wasm backend with a
 * native BLAS: src/backend/wasm-frozen.ts, which converts K in row blocks into a bounded scratch
 * buffer and never copies it into the heap). The reference, used where none is registered,
 * decodes K into a float32 tensor for each product: correct anywhere, fast nowhere.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';
import { decodeAll, linearShape, type StoredMatrix } from './stored.ts';

/** One backend's products with a stored matrix: y = x·K forward, dx = dy·Kᵀ backward. */
export interface FrozenLinearImpl {
  /** x [N, in] -> [N, out]. */
  forward(x: tf.Tensor2D, w: StoredMatrix): tf.Tensor2D;
  /** dy [N, out] -> dx [N, in]. */
  backward(dy: tf.Tensor2D, w: StoredMatrix): tf.Tensor2D;
}

/** The stored matrix as a float32 tensor in its stored layout ([out, in] or [in, out]). */
function storedTensor(w: StoredMatrix): tf.Tensor2D {
  return tf.tensor2d(decodeAll(w), [w.rows, w.cols]);
}

/** Plain tfjs ops on a decoded copy: the definition every implementation is tested against. */
export const referenceFrozenLinear: FrozenLinearImpl = {
  forward: (x, w) => tf.tidy(() => tf.matMul(x, storedTensor(w), false, w.layout === 'out-in')), // [N, in] x [in, out]
  backward: (dy, w) => tf.tidy(() => tf.matMul(dy, storedTensor(w), false, w.layout === 'in-out')), // [N, out] x [out, in]
};

/** The op: backends register theirs with `frozenLinearOp.register(backend, impl)`. */
export const frozenLinearOp = defineOp<FrozenLinearImpl>('frozen-linear', referenceFrozenLinear);

/** x [N, in] -> x·K + b [N, out], with dx the only gradient. */
export function frozenLinear(x: tf.Tensor2D, w: StoredMatrix, bias: tf.Tensor1D | null = null, impl = frozenLinearOp.impl()): tf.Tensor2D {
  const [inF] = linearShape(w);
  if (x.shape[1] !== inF) throw new Error(`frozenLinear: x has ${x.shape[1]} columns; the weight takes ${inF}`);
  const op = tf.customGrad((...args) => {
    const xs = args[0] as tf.Tensor2D;
    return {
      value: impl.forward(xs, w),
      gradFunc: (dy: tf.Tensor) => impl.backward(dy as tf.Tensor2D, w),
    };
  });
  return tf.tidy(() => {
    const y = op(x) as tf.Tensor2D;
    return bias ? (tf.add(y, bias) as tf.Tensor2D) : y;
  });
}

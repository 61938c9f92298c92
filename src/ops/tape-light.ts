/**
 * Two element-wise ops whose gradient keeps less on the tape than tfjs's own, for the adapters'
 * every-module path (src/adapters/mixture.ts), where what a recomputed layer's tape keeps sets a
 * replica's heap high-water mark:
 *  - tf.dropout builds its mask from four ops on the tape (random draw, add, floor, scale), each
 *    keeping its inputs for a backward that never comes (the mask takes no gradient); here the mask
 *    is made off the tape and is the one tensor kept: one [N, in] instead of five.
 *  - tf.add keeps both inputs, for their shapes alone; a sum of one shape needs neither.
 * The same values as tfjs's ops (the same kernels, the same seed) and the same gradients.
 */
import * as tf from '@tensorflow/tfjs';

/** tf.dropout(x, rate, undefined, seed), keeping only the mask for the backward. */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number): T {
  if (rate === 0) return x.clone();
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xs = args[0] as tf.Tensor;
    const keep = 1 - rate;
    const mask = tf.div(tf.floor(tf.add(tf.randomUniform(xs.shape, 0, 1, 'float32', seed), keep)), keep);
    (args[1] as tf.GradSaveFunc)([mask]);
    return { value: tf.mul(xs, mask), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, saved[0]) };
  });
  return op(x) as T;
}

/** a + b for a and b of one shape, keeping nothing for the backward (dy goes to both). */
export function addSameShape<T extends tf.Tensor>(a: T, b: T): T {
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new Error(`addSameShape: [${a.shape}] and [${b.shape}] differ`);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.add(args[0] as tf.Tensor, args[1] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => [dy.clone(), dy.clone()],
  }));
  return op(a, b) as T;
}

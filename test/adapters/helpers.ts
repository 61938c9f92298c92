/** Test doubles: a frozen linear with a random kernel, and a seeded forward context. */
import * as tf from '@tensorflow/tfjs';
import type { FrozenLinear, ForwardContext } from '../../src/model/types.ts';

export function frozenLinear(name: string, din: number, dout: number, seed: number): FrozenLinear & { kernel: tf.Variable } {
  const kernel = tf.tidy(() => tf.variable(tf.randomNormal([din, dout], 0, 0.3, 'float32', seed), false));
  return {
    name,
    kernel,
    bias: null,
    hfLayout: 'linear',
    inFeatures: din,
    outFeatures: dout,
    forward: (x) => tf.matMul(x, kernel),
    stored: null,
    kernelValues: () => kernel.dataSync() as Float32Array,
  };
}

/** A ForwardContext whose dropout seeds count up from `start`. */
export function seededContext(training: boolean, start = 0, extra: Partial<ForwardContext> = {}): ForwardContext {
  let s = start;
  return { training, auxLosses: [], dropoutSeed: { next: () => s++ }, ...extra };
}

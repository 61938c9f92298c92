/** Kernels hilo adds to tfjs-backend-wasm: UnsortedSegmentSum, i.e. the gradient of gather. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { segmentSum } from '../../src/backend/wasm-fallbacks.ts';

describe('wasm fallbacks', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('sums rows per segment, dropping ids out of range', () => {
    const out = new Float32Array(6);
    segmentSum([1, 2, 3, 4, 5, 6, 7, 8], [2, 0, 2, 9], 2, 3, out);
    expect(Array.from(out)).toEqual([3, 4, 0, 0, 1 + 5, 2 + 6]);
  });

  it('gives gather a gradient on wasm: each table row gets the upstream rows that read it', () => {
    const before = tf.memory().numTensors;
    const grad = tf.tidy(() => {
      const table = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
      const ids = tf.tensor2d([[1, 1], [3, 0]], undefined, 'int32'); // [B, T] token ids
      const upstream = tf.tensor3d([[[1, 10], [2, 20]], [[3, 30], [4, 40]]]); // [B, T, D]
      return tf.grad((t: tf.Tensor) => tf.gather(t, ids).mul(upstream).sum())(table).arraySync();
    });
    expect(grad).toEqual([[4, 40], [3, 30], [0, 0], [3, 30]]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

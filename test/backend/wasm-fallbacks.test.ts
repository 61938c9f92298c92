/**
 * Kernels hilo adds to tfjs-backend-wasm: UnsortedSegmentSum (the gradient of gather), and
 * Identity / same-dtype Cast that share their input's data instead of copying it.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
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

  it('clones and same-dtype casts share data, stay valid after the source goes, and other casts convert', () => {
    const backend = tf.engine().backend as BackendWasm;
    const ids = backend.numDataIds();
    const x = tf.tensor1d([1.5, -2, 3]);
    const copy = tf.clone(x);
    const same = tf.cast(x, 'float32');
    expect(backend.numDataIds()).toBe(ids + 1); // one buffer, three tensors
    x.dispose();
    expect(Array.from(copy.dataSync())).toEqual([1.5, -2, 3]);
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3]);
    const asInt = tf.cast(copy, 'int32');
    expect(asInt.dtype).toBe('int32');
    expect(Array.from(asInt.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([copy, same, asInt]);
    expect(backend.numDataIds()).toBe(ids);
  });

  it('saves tensors for the backward pass without copying them', () => {
    const backend = tf.engine().backend as BackendWasm;
    const a = tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
    const b = tf.tensor2d([[0.5, -1], [2, 1]]);
    let during = 0;
    const ids = backend.numDataIds();
    const { grads } = tf.variableGrads(() => {
      const y = tf.mul(a, b).sum() as tf.Scalar; // Mul saves both operands for its gradient
      during = backend.numDataIds() - ids;
      return y;
    });
    expect(Array.from(grads[a.name].dataSync())).toEqual([0.5, -1, 2, 1]);
    expect(during).toBe(2); // the product and its sum: the saved operands are the same buffers
    tf.dispose([a, b, grads[a.name]]);
  });
});

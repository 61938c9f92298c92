/**
 * Kernels hilo adds to tfjs-backend-wasm: UnsortedSegmentSum (the gradient of gather), and
 * Identity / same-dtype Cast that share their input's data instead of copying it, and Slice
 * that copies only the slice.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../src/backend/index.ts';
import { gatherInto, segmentSum, sliceInto } from '../../src/backend/wasm-fallbacks.ts';

/** Nested arrays gathered the slow obvious way: x.take(ids, axis), ids of any rank. */
const mapIds = (ids: Nested, f: (id: number) => Nested): Nested => (typeof ids === 'number' ? f(ids) : ids.map((i) => mapIds(i, f)));
const take = (x: Nested, ids: Nested, axis: number): Nested =>
  axis === 0 ? mapIds(ids, (id) => (x as Nested[])[id]) : (x as Nested[]).map((row) => take(row, ids, axis - 1));

/** Nested arrays sliced the slow obvious way. */
type Nested = number | Nested[];
const sliceNested = (x: Nested, begin: number[], size: number[]): Nested =>
  begin.length === 0 ? x : (x as Nested[]).slice(begin[0], begin[0] + size[0]).map((row) => sliceNested(row, begin.slice(1), size.slice(1)));

describe('wasm fallbacks', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('slices any box of any rank, copying runs that span whole trailing dimensions', () => {
    const out = new Float32Array(4);
    sliceInto(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], [1, 1, 1], [1, 2, 2], out);
    expect(Array.from(out)).toEqual([17, 18, 21, 22]);
    const CASES: Array<[number[], number[], number[]]> = [
      [[10], [3], [4]],
      [[6, 7], [2, 0], [3, 7]], // whole rows: one run
      [[6, 7], [1, 2], [4, 3]],
      [[1024, 64], [0, 0], [1, 1]], // one corner of a product
      [[3, 4, 5], [1, 0, 2], [2, 4, 3]],
      [[3, 4, 5], [0, 1, 0], [3, 2, 5]],
      [[2, 3, 4, 5], [1, 1, 0, 1], [1, 2, 4, 3]],
      [[2, 3, 4, 5], [0, 0, 0, 0], [2, 3, 4, 5]],
      [[4, 5], [2, 1], [0, 3]], // empty
    ];
    for (const [shape, begin, size] of CASES) {
      for (const dtype of ['float32', 'int32'] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const before = tf.memory().numTensors;
        const [got, want] = tf.tidy(() => {
          const x = tf.reshape(tf.range(0, n, 1, dtype), shape);
          return [tf.slice(x, begin, size).arraySync(), sliceNested(x.arraySync() as Nested, begin, size)];
        });
        expect(got, `${shape} ${begin} ${size} ${dtype}`).toEqual(want);
        expect(tf.memory().numTensors).toBe(before);
      }
    }
  });

  it('slices without reading the whole input out of the heap', () => {
    const backend = tf.engine().backend as BackendWasm;
    const x = tf.ones([1024, 256]);
    const read = vi.spyOn(backend, 'readSync');
    const corner = tf.slice(x, [0, 0], [1, 1]);
    expect(read).not.toHaveBeenCalled();
    read.mockRestore();
    expect(corner.dataSync()[0]).toBe(1);
    tf.dispose([x, corner]);
  });

  it('gathers along any axis, with batch dims, as whole-slice copies', () => {
    const out = new Float32Array(4);
    gatherInto(Float32Array.from([0, 1, 2, 3, 4, 5]), [2, 0], 1, 1, 3, 2, out); // rows 2 and 0 of [3, 2]
    expect(Array.from(out)).toEqual([4, 5, 0, 1]);
    const CASES: Array<[number[], number[], number[], number, number]> = [
      [[10, 4], [7], [3, 3, 0, 9, 1, 2, 5], 0, 0], // an embedding lookup
      [[10, 4], [2, 3], [3, 3, 0, 9, 1, 2], 0, 0], // [B, T] token ids
      [[3, 5, 2], [4], [4, 0, 0, 2], 1, 0],
      [[3, 5, 2], [3], [1, 0, 1], 2, 0],
      [[40], [5], [39, 0, 7, 7, 20], 0, 0], // single elements (a flat label gather)
      [[2, 5, 3], [2, 2], [4, 1, 0, 0], 1, 1], // per-batch indices
    ];
    for (const [shape, idShape, ids, axis, batchDims] of CASES) {
      for (const dtype of ['float32', 'int32'] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const before = tf.memory().numTensors;
        const [got, want] = tf.tidy(() => {
          const x = tf.reshape(tf.range(0, n, 1, dtype), shape);
          const idx = tf.tensor(ids, idShape, 'int32');
          const xs = x.arraySync() as Nested;
          const is = idx.arraySync() as Nested;
          const ref = batchDims === 0 ? take(xs, is, axis) : (xs as Nested[]).map((xb, b) => take(xb, (is as Nested[])[b], axis - 1));
          return [tf.gather(x, idx, axis, batchDims).arraySync(), ref];
        });
        expect(got, `${shape} ${idShape} ${axis} ${batchDims} ${dtype}`).toEqual(want);
        expect(tf.memory().numTensors).toBe(before);
      }
    }
    expect(() => tf.tidy(() => tf.gather(tf.zeros([3, 2]), tf.tensor1d([0, 3], 'int32')))).toThrow(/GatherV2: the index value 3 is not in \[0, 2\]/);
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

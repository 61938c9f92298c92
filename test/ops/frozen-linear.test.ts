/**
 * The frozen linear op (src/ops/frozen-linear.ts): every registered implementation against the
 * reference (a decoded float32 tensor and tf.matMul), forward and gradient, at a bench shape and
 * odd ones, for each stored dtype and layout; and the row-block loop of the wasm kernel with
 * blocks smaller than the matrix. The wasm rows are skipped without OpenBLAS, as
 * test/backend/wasm-experts.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBlas } from '../../src/backend/blas.ts';
import { initBackend } from '../../src/backend/index.ts';
import { heapRowBlocks, storedProduct } from '../../src/backend/wasm-frozen.ts';
import { useSimdKernels } from '../../src/backend/wasm-simd.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { frozenLinearOp, frozenLinear, referenceFrozenLinear, type FrozenLinearImpl } from '../../src/ops/frozen-linear.ts';
import { decodeAll, encodeShared, gatherRows, linearShape, STORED_DTYPES, type StoredDtype, type StoredMatrix } from '../../src/ops/stored.ts';
import { floatToBf16, floatToHalf, halfToFloat } from '../../src/ops/float16.ts';
import { values } from '../backend/matmul-helpers.ts';

const { blas } = loadBlas({});

function matrix(rows: number, cols: number, dtype: StoredDtype, layout: StoredMatrix['layout'], seed = 1): StoredMatrix {
  return { dtype, rows, cols, layout, bytes: encodeShared(values(rows * cols, seed), dtype) };
}

/** [N, in, out]: the bench's stories260K projection, an LM head, and odd sizes (1 row, prime sides). */
const SHAPES: Array<[number, number, number]> = [[512, 64, 172], [64, 48, 1000], [1, 7, 5], [13, 31, 17]];
const CASES = STORED_DTYPES.flatMap((dtype) => (['out-in', 'in-out'] as const).flatMap((layout) => SHAPES.map((s) => [dtype, layout, ...s] as const)));

describe('stored matrices', () => {
  it('hold bf16 and f16 rounded to nearest even, and decode exactly', () => {
    const data = values(257, 3);
    for (const [dtype, round] of [['bfloat16', (x: number) => new Float32Array(new Uint32Array([floatToBf16(x) << 16]).buffer)[0]], ['float16', (x: number) => halfToFloat(floatToHalf(x))]] as const) {
      const m: StoredMatrix = { dtype, rows: 1, cols: data.length, layout: 'in-out', bytes: encodeShared(data, dtype) };
      expect(m.bytes.byteLength).toBe(2 * data.length);
      expect(Array.from(decodeAll(m))).toEqual(Array.from(data, round));
    }
  });

  it('gather embedding rows, and name an id outside the vocabulary', () => {
    const m = matrix(5, 3, 'bfloat16', 'out-in');
    const all = decodeAll(m);
    expect(Array.from(gatherRows(m, [4, 0, 4]))).toEqual([...all.slice(12, 15), ...all.slice(0, 3), ...all.slice(12, 15)]);
    expect(() => gatherRows(m, [5])).toThrow(/token id 5 at position 0 is outside the vocabulary \[0, 5\)/);
  });
});

function check(impl: FrozenLinearImpl, [dtype, layout, N, inF, outF]: readonly [StoredDtype, StoredMatrix['layout'], number, number, number]): void {
  const w = layout === 'out-in' ? matrix(outF, inF, dtype, layout) : matrix(inF, outF, dtype, layout);
  expect(linearShape(w)).toEqual([inF, outF]);
  const x = tf.tensor2d(values(N * inF, 7), [N, inF]);
  const dy = tf.tensor2d(values(N * outF, 9), [N, outF]);
  const run = (i: FrozenLinearImpl) => tf.tidy(() => {
    const f = (xs: tf.Tensor) => frozenLinear(xs as tf.Tensor2D, w, null, i);
    const y = f(x);
    const dx = tf.grad(f)(x, dy);
    return [y.dataSync().slice() as Float32Array, dx.dataSync().slice() as Float32Array];
  });
  const before = tf.memory().numTensors;
  const [y, dx] = run(impl);
  const [yRef, dxRef] = run(referenceFrozenLinear);
  expect(tf.memory().numTensors).toBe(before);
  const tol = (k: number) => 1e-5 * Math.sqrt(k) * 4;
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  expect(maxDiff(y, yRef)).toBeLessThan(tol(inF));
  expect(maxDiff(dx, dxRef)).toBeLessThan(tol(outF));
  tf.dispose([x, dy]);
}

describe('frozenLinear reference (cpu)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('is x·Kᵀ for a [out, in] matrix with dx = dy·K, and adds the bias', () => {
    // K stored [out 2, in 3]
    const w: StoredMatrix = { dtype: 'float32', rows: 2, cols: 3, layout: 'out-in', bytes: encodeShared(Float32Array.from([1, 2, 3, 4, 5, 6]), 'float32') };
    const x = tf.tensor2d([[1, 0, -1]]);
    expect(Array.from(frozenLinear(x, w, tf.tensor1d([10, 20])).dataSync())).toEqual([8, 18]);
    expect(Array.from(tf.grad((xs: tf.Tensor) => frozenLinear(xs as tf.Tensor2D, w))(x, tf.tensor2d([[1, -1]])).dataSync())).toEqual([-3, -3, -3]);
  });
});

describe.skipIf(!blas)('frozenLinear on wasm with a native BLAS, against the reference', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('is registered for wasm', () => {
    expect(frozenLinearOp.registered('wasm')).toBeDefined();
  });

  it.each(CASES)('%s %s N=%i in=%i out=%i: forward and dx', (...c) => {
    check(frozenLinearOp.registered('wasm')!, c);
  });

  it.each(['bfloat16', 'float16'] as const)('%s: row blocks smaller than the matrix give the whole product (both directions, both layouts)', (dtype) => {
    const N = 9;
    const [inF, outF] = [37, 23];
    for (const layout of ['out-in', 'in-out'] as const) {
      const w = layout === 'out-in' ? matrix(outF, inF, dtype, layout, 5) : matrix(inF, outF, dtype, layout, 5);
      for (const back of [false, true]) {
        const [A, C] = back ? [outF, inF] : [inF, outF];
        const a = values(N * A, 11);
        const whole = new Float32Array(N * C);
        const blocks = new Float32Array(N * C).fill(NaN); // every value must be written
        storedProduct(blas!, a, N, w, back, whole);
        storedProduct(blas!, a, N, w, back, blocks, 2 * w.cols + 1); // 2 rows a block, the last one short
        const d = blocks.reduce((m, v, i) => Math.max(m, Math.abs(v - whole[i])), 0);
        expect(d, `${layout} back=${back}`).toBeLessThan(1e-5);
      }
    }
  });

  it('widens bf16 row blocks in the heap exactly as decodeRows does, at any row offset and odd lengths', () => {
    const w = matrix(11, 13, 'bfloat16', 'out-in', 4); // 13 columns: blocks of 1-3 rows end off the 8-value SIMD step
    const all = decodeAll(w);
    const heap = heapRowBlocks(tf.backend() as BackendWasm, w, 3)!;
    expect(heap).not.toBeNull();
    try {
      for (const [r0, r1] of [[0, 3], [1, 2], [5, 8], [10, 11], [2, 4]]) {
        expect(Array.from(heap.rows(r0, r1)), `rows ${r0}..${r1}`).toEqual(Array.from(all.subarray(r0 * 13, r1 * 13)));
      }
      expect(() => heap.rows(0, 4)).toThrow(/4 rows for a scratch of 3/);
    } finally {
      heap.dispose();
    }
    expect(heapRowBlocks(tf.backend() as BackendWasm, matrix(3, 5, 'float16', 'out-in'), 3)).toBeNull(); // f16 stays in JS
  });

  it('gives the same products through heap row blocks as through decodeRows (both directions, both layouts)', () => {
    const N = 5;
    const [inF, outF] = [29, 19];
    for (const layout of ['out-in', 'in-out'] as const) {
      const w = layout === 'out-in' ? matrix(outF, inF, 'bfloat16', layout, 6) : matrix(inF, outF, 'bfloat16', layout, 6);
      for (const back of [false, true]) {
        const [A, C] = back ? [outF, inF] : [inF, outF];
        const a = values(N * A, 12);
        const js = new Float32Array(N * C);
        storedProduct(blas!, a, N, w, back, js, 3 * w.cols);
        const heap = heapRowBlocks(tf.backend() as BackendWasm, w, 3)!;
        try {
          const viaHeap = new Float32Array(N * C).fill(NaN);
          storedProduct(blas!, a, N, w, back, viaHeap, 3 * w.cols, heap.rows);
          expect(Array.from(viaHeap), `${layout} back=${back}`).toEqual(Array.from(js)); // same floats into the same sgemm calls
        } finally {
          heap.dispose();
        }
      }
    }
  });

  it('keeps bf16 in JS when the SIMD module is off, with the same result', () => {
    const w = matrix(7, 9, 'bfloat16', 'out-in', 8);
    useSimdKernels(tf, false);
    try {
      expect(heapRowBlocks(tf.backend() as BackendWasm, w, 7)).toBeNull();
      check(frozenLinearOp.registered('wasm')!, ['bfloat16', 'out-in', 4, 9, 7]);
    } finally {
      useSimdKernels(tf, true);
    }
  });
});

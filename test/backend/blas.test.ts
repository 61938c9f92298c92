/**
 * The native-BLAS products of the wasm backend (src/backend/blas.ts): loading and its errors,
 * the thread choice, and tfjs's own numbers (forward and gradients) on every transpose
 * combination, batched and broadcast shapes, with no leaked tensors or heap buffers.
 * Where OpenBLAS is not installed the product tests skip, except under HILO_REQUIRE_BLAS=1
 * (set by .ci/run after scripts/setup-blas.sh), where a missing BLAS fails.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../src/backend/index.ts';
import { loadBlas, MAX_SMALL_PARTS, SINGLE_THREAD_SIDE, SMALL_MNK, smallParts, tallySgemm, threadsFor, type Blas, type SgemmTally } from '../../src/backend/blas.ts';
import { useFastWasmMatMul } from '../../src/backend/wasm-matmul.ts';
import { expectFastMatchesStock, seeded, type MatMulCase } from './matmul-helpers.ts';

const found = loadBlas({});
const blas: Blas | null = found.blas;

const t = seeded;

describe('loading a BLAS', () => {
  it('loads OpenBLAS where CI installed it', () => {
    if (process.env.HILO_REQUIRE_BLAS !== '1') return; // a developer machine may lack it
    expect(found.blas, 'reason' in found ? found.reason : '').not.toBeNull();
    expect(found.blas!.detail).toMatch(/^libopenblas\.so\.0 \(OpenBLAS \d+\.\d+\.\d+/);
  });

  it('HILO_BLAS=off turns it off, saying so', () => {
    expect(loadBlas({ HILO_BLAS: 'off' })).toEqual({ blas: null, reason: 'HILO_BLAS=off' });
  });

  it('refuses a HILO_BLAS library that does not load, naming the variable, the value and what is allowed', () => {
    expect(() => loadBlas({ HILO_BLAS: '/nonexistent/libblas.so' })).toThrow(
      /^HILO_BLAS=\/nonexistent\/libblas\.so: .*; allowed: a library exporting cblas_sgemm \(e\.g\. libopenblas\.so\.0\), or off$/,
    );
  });

  it('refuses a HILO_BLAS library without cblas_sgemm', () => {
    expect(() => loadBlas({ HILO_BLAS: 'libc.so.6' })).toThrow(/^HILO_BLAS=libc\.so\.6: .*cblas_sgemm.*allowed: a library exporting cblas_sgemm/);
  });

  it('runs skinny products on one thread and large ones on all', () => {
    expect(threadsFor(1024, 4, 256, 2)).toBe(1); // a router's logits
    expect(threadsFor(256, 128, 32, 2)).toBe(1); // one head's Q K^T
    expect(threadsFor(1024, SINGLE_THREAD_SIDE + 1, 256, 2)).toBe(2);
    expect(threadsFor(1024, 688, 256, 2)).toBe(2); // an MLP projection
    expect(threadsFor(1024, 688, 256, 1)).toBe(1);
  });
});

describe('splitting products for OpenBLAS\'s small-matrix kernels', () => {
  it('takes the fewest parts under SMALL_MNK multiply-adds, at most MAX_SMALL_PARTS, never for A·Bᵀ', () => {
    expect(SMALL_MNK).toBe(1e6);
    expect(smallParts(false, 512, 8, 64)).toBe(1); // plain LoRA's: small already
    expect(smallParts(false, 512, 36, 64)).toBe(2); // x·[A | Wr] of a stories260K replica
    expect(smallParts(false, 512, 64, 64)).toBe(3); // its q/o base
    expect(smallParts(false, 172, 36, 512)).toBe(4); // d[A | Wr] = xᵀ·[dh | dl] of its down_proj
    expect(smallParts(false, 512, 172, 64)).toBe(1); // would take 6
    expect(smallParts(false, 1000, 1000, 4)).toBe(MAX_SMALL_PARTS);
    expect(smallParts(false, 1000, 1000, 5)).toBe(1);
    expect(smallParts(true, 512, 36, 64)).toBe(1); // A·Bᵀ: OpenBLAS never takes them
    expect(smallParts(false, 64, 36, 0)).toBe(1); // empty: one call, which still sets C
  });
});

describe.runIf(blas !== null || process.env.HILO_REQUIRE_BLAS === '1')('split products', () => {
  /** Deterministic values in [-1, 1). */
  const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761 + seed * 40503) >>> 0) % 2000) / 1000 - 1);
  /** C (+)= op(A)·op(B) in doubles, on strided row-major matrices. */
  function reference(tA: boolean, tB: boolean, m: number, n: number, k: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, c: Float32Array, ldc: number, beta: number): Float64Array {
    const out = new Float64Array(m * n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = beta ? c[i * ldc + j] : 0;
        for (let p = 0; p < k; p++) acc += (tA ? a[p * lda + i] : a[i * lda + p]) * (tB ? b[j * ldb + p] : b[p * ldb + j]);
        out[i * n + j] = acc;
      }
    }
    return out;
  }

  // [tA, m, n, k, extra leading-dimension columns, beta]: parts of uneven size, strided, adding into C
  const CASES: Array<[boolean, number, number, number, number, 0 | 1]> = [
    [false, 512, 36, 64, 0, 0],
    [false, 509, 37, 65, 3, 1], // 3 parts of 170, 170, 169 rows
    [true, 64, 36, 512, 0, 0],
    [true, 71, 33, 509, 2, 1], // 3 slices of the shared dimension
    [true, 172, 36, 512, 5, 1],
  ];
  it.each(CASES)('tA %s, %i x %i x %i (+%i columns of stride, beta %i) matches the whole product', (tA, m, n, k, pad, beta) => {
    expect(smallParts(false, m, n, k)).toBeGreaterThan(1); // the case really is split
    expect(threadsFor(m, n, k, 2)).toBe(1); // on one thread, where blas.ts splits
    const split = loadBlas({}, { split: true }).blas!;
    const whole = loadBlas({}, { split: false }).blas!;
    const [lda, ldb, ldc] = [(tA ? m : k) + pad, n + pad, n + pad];
    const a = values((tA ? k : m) * lda, 1);
    const b = values(k * ldb, 2);
    const c0 = values(m * ldc, 3);
    const [cs, cw] = [c0.slice(), c0.slice()];
    split.sgemm(tA, false, m, n, k, a, lda, b, ldb, cs, ldc, { beta });
    whole.sgemm(tA, false, m, n, k, a, lda, b, ldb, cw, ldc, { beta });
    whole.limitThreads(null); // the products set the library's threads to 1: back to its own count
    const want = reference(tA, false, m, n, k, a, lda, b, ldb, c0, ldc, beta);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < ldc; j++) {
        const at = i * ldc + j;
        if (j >= n) {
          expect(cs[at]).toBe(c0[at]); // the stride's columns are left alone
          continue;
        }
        expect(Math.abs(cs[at] - want[i * n + j])).toBeLessThan(1e-3 * Math.sqrt(k));
        expect(Math.abs(cs[at] - cw[at])).toBeLessThan(1e-3 * Math.sqrt(k));
      }
    }
  });

  it('still sets C for an empty shared dimension, either way round', () => {
    const split = loadBlas({}, { split: true }).blas!;
    for (const tA of [false, true]) {
      const c = new Float32Array(4 * 3).fill(7);
      split.sgemm(tA, false, 4, 3, 0, new Float32Array(4), 4, new Float32Array(3), 3, c, 3);
      expect(Array.from(c)).toEqual(new Array(12).fill(0));
    }
    split.limitThreads(null); // the products set the library's threads to 1: back to its own count
  });

  it('says so in its description where it splits', () => {
    expect(loadBlas({}, { split: true }).blas!.detail).toMatch(/split for its small kernels/);
    expect(loadBlas({}, { split: false }).blas!.detail).not.toMatch(/split/);
  });
});

describe.runIf(blas !== null || process.env.HILO_REQUIRE_BLAS === '1')('BLAS threads', () => {
  it('limitThreads caps the library\'s threads at once (data-parallel replicas) and null gives them back', async () => {
    const koffi = (await import('koffi')).default;
    const threads = koffi.load('libopenblas.so.0').func('int openblas_get_num_threads()') as () => number;
    const own = loadBlas({}).blas!;
    expect(own.maxThreads).toBe(threads()); // the library's count, read at load
    own.limitThreads(1);
    expect(threads()).toBe(1);
    const later = loadBlas({}).blas!; // a replica's thread binding after the cap still knows the full count
    expect(later.maxThreads).toBe(own.maxThreads);
    const capped = loadBlas({}, { maxThreads: 1 }).blas!;
    expect(threads()).toBe(1);
    capped.limitThreads(null);
    expect(threads()).toBe(own.maxThreads);
  });
});

describe.runIf(blas !== null || process.env.HILO_REQUIRE_BLAS === '1')('the sgemm tally (bench-train --profile)', () => {
  it('counts and times each product by transposes and m x n x k while set, and nothing after', () => {
    const own = loadBlas({}).blas!;
    const tally: SgemmTally = new Map();
    const [a, b, c] = [new Float32Array(6 * 4).fill(1), new Float32Array(4 * 3).fill(2), new Float32Array(6 * 3)];
    tallySgemm(tally);
    own.sgemm(false, false, 6, 3, 4, a, 4, b, 3, c, 3);
    own.sgemm(false, false, 6, 3, 4, a, 4, b, 3, c, 3);
    own.sgemm(true, true, 4, 4, 6, a, 4, a, 6, new Float32Array(16), 4);
    tallySgemm(null);
    own.sgemm(false, false, 6, 3, 4, a, 4, b, 3, c, 3);
    expect(c[0]).toBe(8);
    expect([...tally.keys()].sort()).toEqual(['NN 6x3x4', 'TT 4x4x6']);
    expect(tally.get('NN 6x3x4')!.n).toBe(2);
    expect(tally.get('TT 4x4x6')!.n).toBe(1);
    for (const e of tally.values()) expect(e.ms).toBeGreaterThanOrEqual(0);
  });
});

const CASES: MatMulCase[] = [
  { a: [7, 5], b: [5, 3], tA: false, tB: false },
  { a: [7, 5], b: [3, 5], tA: false, tB: true },
  { a: [5, 7], b: [5, 3], tA: true, tB: false },
  { a: [5, 7], b: [3, 5], tA: true, tB: true },
  { a: [4, 6, 5], b: [4, 3, 5], tA: false, tB: true }, // attention Q K^T
  { a: [4, 5, 6], b: [4, 5, 3], tA: true, tB: false },
  { a: [2, 3, 6, 5], b: [2, 3, 4, 5], tA: false, tB: true }, // rank 4 [B, H, T, d]
  { a: [100, 70], b: [70, 90], tA: false, tB: false }, // large enough for every BLAS thread
  { a: [70, 100], b: [90, 70], tA: true, tB: true },
];


describe.runIf(blas !== null || process.env.HILO_REQUIRE_BLAS === '1')('wasm products in native BLAS', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('computes tfjs-stock results, forward and gradients, for every transpose combination and batch', () => {
    expectFastMatchesStock(CASES, blas);
  });

  it('matches hand-computed products', () => {
    useFastWasmMatMul(tf, true, blas);
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const b = tf.tensor2d([[5, 6], [7, 8]]);
    expect(tf.matMul(a, b).arraySync()).toEqual([[19, 22], [43, 50]]);
    expect(tf.matMul(a, b, true, false).arraySync()).toEqual([[26, 30], [38, 44]]);
    expect(tf.matMul(a, b, false, true).arraySync()).toEqual([[17, 23], [39, 53]]);
    expect(tf.matMul(a, b, true, true).arraySync()).toEqual([[23, 31], [34, 46]]);
    tf.dispose([a, b]);
  });

  it('broadcasts a batch of one operand', () => {
    useFastWasmMatMul(tf, false);
    const run = () => tf.tidy(() => Array.from(tf.matMul(t([1, 5, 6], 1), t([4, 3, 5], 2), true, true).dataSync()));
    const stock = run();
    useFastWasmMatMul(tf, true, blas);
    const fast = run();
    expect(fast.length).toBe(4 * 6 * 3);
    fast.forEach((v, i) => expect(v).toBeCloseTo(stock[i], 4));
  });

  it('gives zeros for an empty inner dimension, whatever the heap held before', () => {
    useFastWasmMatMul(tf, true, blas);
    tf.tidy(() => tf.fill([3, 4], 7).dataSync()); // leave non-zero bytes in freed heap memory
    const y = tf.tidy(() => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])).arraySync());
    expect(y).toEqual([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
  });

  it('takes its heap views after allocating the output, so a product that grows the heap is right', () => {
    useFastWasmMatMul(tf, true, blas);
    const wasm = (tf.engine().backend as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
    const heapBytes = () => wasm.HEAPU8.buffer.byteLength;
    const before = heapBytes();
    const n = Math.ceil(Math.sqrt(before / 4)) + 64; // an [n, n] output larger than the whole heap
    const a = tf.tidy(() => tf.concat([tf.ones([n, 1]), tf.fill([n, 1], 2)], 1)); // rows [1, 2]
    const b = tf.tidy(() => tf.stack([tf.range(0, n), tf.fill([n], 10)])); // [2, n]: rows j, 10
    const y = tf.matMul(a, b); // y[i][j] = j + 20
    expect(heapBytes()).toBeGreaterThan(before);
    const v = y.dataSync();
    for (const [i, j] of [[0, 0], [n - 1, n - 1], [n >> 1, 17], [3, n - 2]]) expect(v[i * n + j]).toBe(j + 20);
    tf.dispose([a, b, y]);
  });
});

/**
 * The wasm matmul replacement must give tfjs's own numbers (forward and gradients) on every
 * transpose combination, batched and broadcast shapes, and fused matmuls, must pick the cheaper
 * rewrite, and must free its temporaries inside the backend (numDataIds), not just tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { keptTransposes, transposeCosts, transposeInto, useFastWasmMatMul } from '../../src/backend/wasm-matmul.ts';
import { expectFastMatchesStock, seeded, type MatMulCase } from './matmul-helpers.ts';

const t = seeded;

const CASES: MatMulCase[] = [
  { a: [7, 5], b: [5, 3], tA: false, tB: false },
  { a: [7, 5], b: [3, 5], tA: false, tB: true },
  { a: [5, 7], b: [5, 3], tA: true, tB: false },
  { a: [5, 7], b: [3, 5], tA: true, tB: true },
  { a: [64, 16], b: [64, 2], tA: true, tB: false }, // LoRA dA shape: C^T rewrite
  { a: [4, 6, 5], b: [4, 3, 5], tA: false, tB: true }, // attention Q K^T
  { a: [4, 5, 6], b: [4, 5, 3], tA: true, tB: false },
  { a: [3, 6, 5], b: [3, 5, 4], tA: false, tB: false }, // plain batch: one 2-D product per matrix
  { a: [2, 3, 6, 5], b: [2, 3, 4, 5], tA: false, tB: true }, // rank 4 [B, H, T, d] attention
  { a: [1, 40, 33], b: [1, 40, 2], tA: true, tB: false }, // batch of one, C^T rewrite
];
/** tfjs's BatchMatMul gradient does not support a broadcast batch, so this one is forward only. */
const BROADCAST = { a: [1, 5, 6], b: [4, 3, 5], tA: true, tB: true };


describe('wasm matmul fast path', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('computes tfjs-stock results, forward and gradients, for every transpose combination', () => {
    expectFastMatchesStock(CASES, null);
  });

  it('computes a broadcast batch like stock', () => {
    const run = () => tf.tidy(() => Array.from(tf.matMul(t(BROADCAST.a, 1), t(BROADCAST.b, 2), true, true).dataSync()));
    useFastWasmMatMul(tf, false);
    const stock = run();
    useFastWasmMatMul(tf, true);
    const fast = run();
    expect(fast.length).toBe(4 * 6 * 3);
    fast.forEach((v, i) => expect(v).toBeCloseTo(stock[i], 4));
  });

  it('matches a hand-computed product', () => {
    useFastWasmMatMul(tf, true);
    // [[1,2],[3,4]]^T [[5,6],[7,8]] = [[1*5+3*7, 1*6+3*8], [2*5+4*7, 2*6+4*8]]
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]]), true, false).arraySync());
    expect(y).toEqual([[26, 30], [38, 44]]);
    const z = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]]), false, true).arraySync());
    expect(z).toEqual([[17, 23], [39, 53]]);
  });

  it('computes fused matmul (bias + relu) with both operands transposed correctly', () => {
    // tfjs-backend-wasm 4.22's own _FusedMatMul is wrong here (row 2 gives 4.9 for 4.2, 12.7
    // for 7.2; the cpu backend agrees with the hand computation below), the fast path is right.
    const a = [[1, -2, 3, 0.5], [0.1, 2, -1, 1], [3, 1, 1, -2], [-1, -1, 2, 0.3], [0.5, 0.2, -0.7, 1], [2, -3, 1, 1]]; // [6,4]
    const b = [[1, 0, -1, 2, 0.5, 1], [0, 1, 1, -1, 2, 0], [1, 1, 1, 1, 1, 1], [-1, 2, 0, 0, 1, -2], [0.3, 0.1, -2, 1, 1, 1]]; // [5,6]
    const bias = [0.1, -0.2, 0.3, -5, 0.5];
    // relu(a^T b^T + bias) [4,5], by hand
    const want = [0, 1, 2, 3].map((i) => [0, 1, 2, 3, 4].map((j) => Math.max(0, a.reduce((acc, row, k) => acc + row[i] * b[j][k], 0) + bias[j])));
    useFastWasmMatMul(tf, true);
    const got = tf.tidy(() => tf.fused.matMul({ a: tf.tensor2d(a), b: tf.tensor2d(b), transposeA: true, transposeB: true, bias: tf.tensor1d(bias), activation: 'relu' }).arraySync() as number[][]);
    got.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], 5)));
    expect(want.flat().filter((v) => v === 0).length).toBeGreaterThan(3); // relu really clips
  });

  it('keeps the transpose of an operand that comes back, and frees it with the operand', () => {
    useFastWasmMatMul(tf, true);
    const backend = tf.engine().backend as BackendWasm;
    const ids = backend.numDataIds();
    const w = t([48, 40], 7); // a frozen weight, used transposed in every backward pass: dY W^T
    const kept = keptTransposes(backend);
    const first = tf.tidy(() => Array.from(tf.matMul(t([30, 40], 8), w, false, true).dataSync()));
    const second = tf.tidy(() => Array.from(tf.matMul(t([30, 40], 8), w, false, true).dataSync()));
    expect(keptTransposes(backend)).toBe(kept + 1);
    expect(second).toEqual(first);
    useFastWasmMatMul(tf, false);
    const stock = tf.tidy(() => Array.from(tf.matMul(t([30, 40], 8), w, false, true).dataSync()));
    useFastWasmMatMul(tf, true);
    second.forEach((v, i) => expect(v).toBeCloseTo(stock[i], 4));
    w.dispose();
    expect(keptTransposes(backend)).toBe(kept);
    expect(backend.numDataIds()).toBe(ids); // the kept copy went with its source
  });

  it('transposes in blocks exactly, on shapes off the block size', () => {
    const [r, c] = [37, 70];
    const src = Float32Array.from({ length: r * c }, (_, i) => i);
    const dst = new Float32Array(r * c);
    transposeInto(src, dst, r, c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) expect(dst[j * r + i]).toBe(i * c + j);
  });

  it('chooses the cheaper transposes', () => {
    // x E^T: transposing E (1M) beats transposing x and the 4M-element output
    expect(transposeCosts(1024 * 256, 4096 * 256, 1024 * 4096, false, true)).toEqual({ operands: 4096 * 256, output: 1024 * 256 + 1024 * 4096 });
    // dA = x^T dY with C [256, 8]: computing C^T needs only dY (8k) and C (2k) transposed
    const c = transposeCosts(1024 * 256, 1024 * 8, 256 * 8, true, false);
    expect(c.output).toBeLessThan(c.operands);
  });
});

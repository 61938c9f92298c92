/** Inputs and a forward-plus-gradient probe shared by the wasm matmul tests (XNNPACK and BLAS paths). */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import type { Blas } from '../../src/backend/blas.ts';
import { useFastWasmMatMul } from '../../src/backend/wasm-matmul.ts';

/** Deterministic values in [-1, 1) so stock and fast runs see identical inputs. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** A tensor of `shape` filled with values(…, seed). */
export const seeded = (shape: number[], seed: number) => tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed), shape);

export interface MatMulCase {
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
}

/** matMul forward plus gradients of sum(C * W) w.r.t. both operands, as plain arrays. */
export function forwardAndGrads(c: MatMulCase): number[][] {
  return tf.tidy(() => {
    const a = seeded(c.a, 1);
    const b = seeded(c.b, 2);
    const y = tf.matMul(a, b, c.tA, c.tB);
    const w = seeded(y.shape, 3);
    const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.matMul(x, z, c.tA, c.tB).mul(w).sum())([a, b]);
    return [y, ga, gb].map((x) => Array.from(x.dataSync()));
  });
}

/**
 * For each case: tfjs's own kernels, then hilo's fast path (with `blas`, or XNNPACK when null),
 * give the same forward and gradients, and the fast path frees every tensor and backend buffer
 * it made (numDataIds: transposed temporaries included).
 */
export function expectFastMatchesStock(cases: MatMulCase[], blas: Blas | null): void {
  for (const c of cases) {
    useFastWasmMatMul(tf, false);
    const stock = forwardAndGrads(c);
    useFastWasmMatMul(tf, true, blas);
    const before = tf.memory().numTensors;
    const ids = tf.engine().backend.numDataIds();
    const fast = forwardAndGrads(c);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.engine().backend.numDataIds()).toBe(ids);
    for (let k = 0; k < 3; k++) {
      expect(fast[k].length).toBe(stock[k].length);
      fast[k].forEach((v, i) => expect(v).toBeCloseTo(stock[k][i], 4));
    }
  }
}

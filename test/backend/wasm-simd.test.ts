/**
 * hilo's wasm SIMD kernels (src/backend/wasm-simd.ts) against the tensor forms they replace,
 * which are pinned to PyTorch elsewhere (test/train/optim.test.ts, test/model): values and
 * gradients on shapes with SIMD tails, ignored rows and extreme logits, no leaked tensors, and a
 * module that writes nothing of its own into tfjs's heap.
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { hasSimdKernel, SOFTMAX_XENT, useSimdKernels } from '../../src/backend/wasm-simd.ts';
import { mulberry32 } from '../../src/data/rng.ts';
import { tokenNll } from '../../src/train/loss.ts';

/** Run `f` with the fused kernels off (the tensor forms), then on; both results as arrays. */
function bothWays<T>(f: () => T): { stock: T; fused: T } {
  useSimdKernels(tf, false);
  const stock = f();
  useSimdKernels(tf, true);
  return { stock, fused: f() };
}

function seededLogits(n: number, v: number, seed: number, scale = 4): tf.Tensor2D {
  const u = mulberry32(seed);
  return tf.tensor2d(Float32Array.from({ length: n * v }, () => (u() - 0.5) * scale), [n, v]);
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  expect(a.length, what).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  expect(worst, `${what}: worst at ${at}: ${a[at]} vs ${b[at]}`).toBeLessThanOrEqual(tol);
}

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => useSimdKernels(tf, true));

describe('the SIMD module', () => {
  it('imports only the memory and has no data segment (it must not write into tfjs\'s heap on its own)', () => {
    const bytes = fs.readFileSync(new URL('../../src/backend/simd/kernels.wasm', import.meta.url));
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    // section ids in order: 11 is Data; sizes are LEB128
    const ids: number[] = [];
    for (let p = 8; p < bytes.length;) {
      ids.push(bytes[p++]);
      let size = 0;
      for (let shift = 0; ; shift += 7) {
        const b = bytes[p++];
        size |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
      p += size;
    }
    expect(ids).toContain(10); // code
    expect(ids).not.toContain(11); // data
  });
});

describe.each([[7, 3], [33, 4099], [64, 4096]])('fused softmax cross-entropy, %i rows x %i', (n, v) => {
  it('is registered on the single-threaded wasm backend', () => {
    expect(hasSimdKernel(tf, SOFTMAX_XENT)).toBe(true);
  });

  it('gives the tensor form\'s loss and gradient, with ignored rows 0', () => {
    const u = mulberry32(n * v);
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 5 === 2 ? -100 : Math.floor(u() * v)));
    const dy = Float32Array.from({ length: n }, () => u() * 2 - 0.5);
    const logits = seededLogits(n, v, 9);
    const before = tf.memory().numTensors;
    const viaGrad = () => {
      const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tokenNll(x as tf.Tensor2D, targets).mul(tf.tensor1d(dy)).sum())(logits));
      const out = Array.from(g.dataSync());
      g.dispose();
      return { nll: tf.tidy(() => Array.from(tokenNll(logits, targets).dataSync())), grad: out };
    };
    const { stock, fused } = bothWays(viaGrad);
    expectClose(fused.nll, stock.nll, 2e-5, 'nll');
    expectClose(fused.grad, stock.grad, 2e-6, 'gradient');
    for (let i = 0; i < n; i++) if (targets[i] < 0) expect(fused.nll[i]).toBe(0);
    logits.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
  });
});

describe('fused softmax cross-entropy at the extremes', () => {
  it('keeps the loss exact where the label probability underflows, and stays finite for huge logits', () => {
    const targets = Int32Array.from([1, 2, 0, 4]);
    const rows = [[50, -50, 0, 1, 2], [0, 0, 80, -80, 3], [1e4, -1e4, 0, 5, 5], [-3e3, -3e3, -3e3, -3e3, -2e3]];
    const { stock, fused } = bothWays(() => tf.tidy(() => {
      const l = tf.tensor2d(rows);
      return { nll: Array.from(tokenNll(l, targets).dataSync()), grad: Array.from(tf.grad((x: tf.Tensor) => tokenNll(x as tf.Tensor2D, targets).sum())(l).dataSync()) };
    }));
    expectClose(fused.nll, stock.nll, 1e-3, 'nll');
    expect(fused.nll[0]).toBeCloseTo(100, 3);
    expectClose(fused.grad, stock.grad, 1e-6, 'gradient');
  });
});

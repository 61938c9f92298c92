/**
 * The norm ops (src/ops/norm.ts): every registered implementation against the reference on the
 * same backend, forward and the input's gradient, at stories260K's bench shape ([8·128, 64]) and
 * odd ones; and the references against the formulas in double precision.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { layerNorm, layerNormOp, referenceRmsNorm, rmsNorm, rmsNormOp } from '../../src/ops/norm.ts';
import { expectClose, host, PARITY_BACKENDS, seeded, useBackend, valueAndGrads, values, worst } from './parity.ts';

/** [N, H]: the bench (8 x 128 tokens, hidden 64), one row, odd sizes. */
const SHAPES: Array<[number, number]> = [[1024, 64], [1, 5], [7, 33]];
const EPS = 1e-5;

/** RMSNorm's y and dx for dy in doubles: r = 1/sqrt(mean x² + eps), dx = r·g − x·r³·mean(g ⊙ x), g = w ⊙ dy. */
function rmsNormJs(x: Float32Array, w: Float32Array, dy: Float32Array, n: number, h: number): [Float64Array, Float64Array] {
  const y = new Float64Array(n * h);
  const dx = new Float64Array(n * h);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    let gx = 0;
    for (let j = 0; j < h; j++) {
      ss += x[i * h + j] ** 2;
      gx += w[j] * dy[i * h + j] * x[i * h + j];
    }
    const r = 1 / Math.sqrt(ss / h + EPS);
    for (let j = 0; j < h; j++) {
      y[i * h + j] = w[j] * x[i * h + j] * r;
      dx[i * h + j] = r * w[j] * dy[i * h + j] - (x[i * h + j] * r ** 3 * gx) / h;
    }
  }
  return [y, dx];
}

/** LayerNorm's y, dx, dw, db for dy in doubles (biased variance). */
function layerNormJs(x: Float32Array, w: Float32Array, b: Float32Array, dy: Float32Array, n: number, h: number): Float64Array[] {
  const [y, dx, dw, db] = [new Float64Array(n * h), new Float64Array(n * h), new Float64Array(h), new Float64Array(h)];
  for (let i = 0; i < n; i++) {
    const row = Array.from(x.subarray(i * h, (i + 1) * h));
    const mean = row.reduce((a, v) => a + v, 0) / h;
    const r = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / h + EPS);
    const xhat = row.map((v) => (v - mean) * r);
    const g = row.map((_, j) => dy[i * h + j] * w[j]);
    const gMean = g.reduce((a, v) => a + v, 0) / h;
    const gxMean = g.reduce((a, v, j) => a + v * xhat[j], 0) / h;
    for (let j = 0; j < h; j++) {
      y[i * h + j] = xhat[j] * w[j] + b[j];
      dx[i * h + j] = r * (g[j] - gMean - xhat[j] * gxMean);
      dw[j] += dy[i * h + j] * xhat[j];
      db[j] += dy[i * h + j];
    }
  }
  return [y, dx, dw, db];
}

describe.each(['cpu', ...PARITY_BACKENDS])('norm ops on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('registers its norms where it has them (wasm: both, the SIMD module; webgpu: RMSNorm, a GPU program each way)', () => {
    expect(rmsNormOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
    expect(layerNormOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
  });

  it.each(SHAPES)('RMSNorm [%i, %i], a frozen weight: every implementation as the reference, the reference as the formula', async (n, h) => {
    const [x, w] = [seeded([n, h], 3, 2), seeded([h], 4)];
    const dy = values(n * h, 99);
    const run = (impl: typeof referenceRmsNorm) => valueAndGrads((a) => rmsNorm(a as tf.Tensor2D, w as tf.Tensor1D, EPS, impl), [x]);
    const want = await run(rmsNormOp.reference);
    const [y, dx] = rmsNormJs(host(n * h, 3, 2), host(h, 4), dy, n, h);
    expectClose(want, [Float32Array.from(y), Float32Array.from(dx)], 2e-6, ['reference y', 'reference dx']);
    const fast = rmsNormOp.registered(backend);
    if (fast) expectClose(await run(fast), want, 2e-6, ['y', 'dx']);
    tf.dispose([x, w]);
  });

  it('RMSNorm with a trainable weight takes autodiff, weight gradient included', async () => {
    const [n, h] = [7, 33];
    const x = seeded([n, h], 5);
    const w = tf.variable(seeded([h], 6) as tf.Tensor1D, true);
    const got = await valueAndGrads((a, b) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, EPS), [x, w]);
    const frozen = await valueAndGrads((a) => rmsNorm(a as tf.Tensor2D, w, EPS, rmsNormOp.reference), [x]);
    expectClose(got.slice(0, 2), frozen, 2e-6, ['y', 'dx']);
    const dy = values(n * h, 99);
    const xs = host(n * h, 5);
    const dw = Array.from({ length: h }, (_, j) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const row = xs.subarray(i * h, (i + 1) * h);
        s += (dy[i * h + j] * row[j]) / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / h + EPS);
      }
      return s;
    });
    expect(worst(got[2], dw)).toBeLessThan(2e-6);
    tf.dispose([x, w]);
  });

  // GPT-2's norms: tiny-gpt2's hidden 32 over the bench's tokens, and GPT-2 small's 768
  it.each([...SHAPES, [1024, 32], [128, 768]] as Array<[number, number]>)('LayerNorm [%i, %i]: every implementation as the reference, the reference as the formula, every gradient', async (n, h) => {
    const [x, w, b] = [seeded([n, h], 7, 2), seeded([h], 8), seeded([h], 9)];
    const run = (impl = layerNormOp.reference) => valueAndGrads((a, c, d) => layerNorm(a as tf.Tensor2D, c as tf.Tensor1D, d as tf.Tensor1D, EPS, impl), [x, w, b]);
    const want = await run();
    const js = layerNormJs(host(n * h, 7, 2), host(h, 8), host(h, 9), values(n * h, 99), n, h);
    expectClose(want, js.map((a) => Float32Array.from(a)), 1e-4, ['reference y', 'reference dx', 'reference dw', 'reference db']);
    const fast = layerNormOp.registered(backend);
    if (fast) {
      const got = await run(fast);
      expectClose(got.slice(0, 2), want.slice(0, 2), 2e-6, ['y', 'dx']);
      // dw, db sum N rows in float32, each in its own order: both sit ~5e-6 from the double sums
      expectClose(got.slice(2), want.slice(2), 2e-5, ['dw', 'db']);
    }
    tf.dispose([x, w, b]);
  });
});

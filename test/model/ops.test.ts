/** The attention mask, by hand: causal over past + new keys, padding keys masked per row; RMSNorm's written-out gradient. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { additiveMask, rmsNorm } from '../../src/model/ops.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('additiveMask', () => {
  it('lets query t at position past+t see keys 0..past+t that are not padding, and nothing else', () => {
    const before = tf.memory().numTensors;
    const got = tf.tidy(() => {
      const attention = tf.tensor2d([[1, 1, 1, 1], [0, 1, 1, 1]]); // row 1's first key is padding
      return additiveMask(2, 3, attention, 1).arraySync(); // [2, 1, 3, 4]
    });
    const ok = (row: number[]) => row.map((v) => (v ? 0 : 'masked'));
    const seen = got.map((b) => b[0].map((row) => row.map((v) => (v === 0 ? 0 : v < -1e8 ? 'masked' : v))));
    expect(seen[0]).toEqual([ok([1, 1, 0, 0]), ok([1, 1, 1, 0]), ok([1, 1, 1, 1])]);
    expect(seen[1]).toEqual([ok([0, 1, 0, 0]), ok([0, 1, 1, 0]), ok([0, 1, 1, 1])]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('without an attention mask is the plain causal mask, broadcast over the batch', () => {
    const got = tf.tidy(() => additiveMask(4, 2).arraySync());
    expect(got.length).toBe(1);
    expect(Math.abs(got[0][0][0][0])).toBe(0); // (1 - 1) · NEG is -0
    expect(got[0][0][0][1]).toBeLessThan(-1e8);
    expect(got[0][0][1].map(Math.abs)).toEqual([0, 0]);
  });
});

describe('rmsNorm', () => {
  const N = 37;
  const H = 24;
  /** value of Σ norm(x)⊙up and its gradients wrt x (and w, when it is a trainable variable). */
  function run(weight: tf.Tensor1D): { value: number; dx: Float32Array; dw: Float32Array | null } {
    const x = tf.tidy(() => tf.variable(tf.randomNormal([N, H], 0, 2, 'float32', 1)));
    const up = tf.randomNormal([N, H], 0, 1, 'float32', 2);
    const vars = weight instanceof tf.Variable && weight.trainable ? [x, weight] : [x];
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(rmsNorm(x as tf.Tensor as tf.Tensor2D, weight, 1e-5), up)) as tf.Scalar, vars);
    const out = { value: value.dataSync()[0], dx: grads[x.name].dataSync() as Float32Array, dw: vars[1] ? (grads[vars[1].name].dataSync() as Float32Array) : null };
    tf.dispose([x, up, value, ...Object.values(grads)]);
    return out;
  }

  it('a frozen weight: the written-out gradient of x equals autodiff through the forward ops', () => {
    const w = tf.randomNormal([H], 1, 0.3, 'float32', 3) as tf.Tensor1D;
    const trainable = tf.variable(w, true) as unknown as tf.Tensor1D; // autodiff, the reference
    const before = tf.memory().numTensors;
    const got = run(w);
    const want = run(trainable);
    expect(tf.memory().numTensors).toBe(before);
    expect(got.value).toBeCloseTo(want.value, 4);
    let scale = 0;
    for (const v of want.dx) scale = Math.max(scale, Math.abs(v));
    expect(scale).toBeGreaterThan(0);
    for (let i = 0; i < got.dx.length; i++) expect(Math.abs(got.dx[i] - want.dx[i]), `dx[${i}]`).toBeLessThan(1e-5 * scale);
    // a trainable weight keeps its gradient (full-parameter training)
    expect(Math.max(...Array.from(want.dw!, Math.abs))).toBeGreaterThan(0);
    tf.dispose([w, trainable]);
  });
});

/** The attention mask, by hand: causal over past + new keys, padding keys masked per row. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { additiveMask } from '../../src/model/ops.ts';

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

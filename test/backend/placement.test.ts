/** The host-memory helpers the data-parallel replicas copy trainables and gradients with (src/backend/placement.ts). */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import { addInto, tensorFrom, valuesOf, writableInPlace } from '../../src/backend/placement.ts';
import { keysByDataId, useFastWasmMatMul } from '../../src/backend/wasm-matmul.ts';

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('wasm');
});

describe.each(['wasm', 'cpu'])('on %s', (backend) => {
  it('tensorFrom keeps its values when the source array is rewritten (a worker\'s shared buffer is, every step)', async () => {
    await tf.setBackend(backend);
    const shared = new Float32Array(new SharedArrayBuffer(4 * 6)).map((_, i) => i + 1);
    const t = tensorFrom(shared.subarray(1, 5), [2, 2]);
    shared.fill(-7);
    expect(Array.from(t.dataSync())).toEqual([2, 3, 4, 5]);
    t.dispose();
  });

  it('valuesOf reads a tensor\'s values, made by a kernel or as a variable', async () => {
    await tf.setBackend(backend);
    const v = tf.variable(tf.tensor2d([[1, -2], [3.5, 4]]));
    const y = tf.mul(v, 2);
    expect(Array.from(valuesOf(v))).toEqual([1, -2, 3.5, 4]);
    expect(Array.from(valuesOf(y))).toEqual([2, -4, 7, 8]);
    tf.dispose([v, y]);
  });

  it('addInto adds in place only where no other tensor shares the data (wasm), and says so', async () => {
    await tf.setBackend(backend);
    const parts = [Float32Array.from([1, 2, 3]), Float32Array.from([10, 20, 30])];
    const own = tf.mul(tf.tensor1d([1, 1, 1]), 2);
    const done = addInto(own, parts);
    expect(done).toBe(backend === 'wasm');
    expect(Array.from(own.dataSync())).toEqual(done ? [13, 24, 35] : [2, 2, 2]);
    // a clone shares the data: adding in place would change it too
    const shared = tf.mul(tf.tensor1d([1, 1, 1]), 2);
    const clone = shared.clone();
    expect(addInto(shared, parts)).toBe(false);
    expect(Array.from(clone.dataSync())).toEqual([2, 2, 2]);
    tf.dispose([own, shared, clone]);
  });

  it('writableInPlace: only on wasm, with products that keep nothing by data id, for data no other tensor shares', async () => {
    await tf.setBackend(backend);
    const own = tf.tidy(() => tf.mul(tf.tensor1d([1, 2, 3]), 2));
    const reshaped = tf.tidy(() => tf.mul(tf.tensor1d([1, 2, 3]), 2));
    const view = reshaped.reshape([3, 1]); // shares reshaped's data
    const ints = tf.tensor1d([1, 2, 3], 'int32');
    const inPlace = backend === 'wasm' && !keysByDataId();
    expect(writableInPlace(own)).toBe(inPlace);
    expect(writableInPlace(reshaped)).toBe(false);
    expect(writableInPlace(ints)).toBe(false);
    if (backend === 'wasm' && inPlace) {
      // products back in XNNPACK keep packed weights and transposes by data id: never in place then
      useFastWasmMatMul(tf, true, null);
      expect(keysByDataId()).toBe(true);
      expect(writableInPlace(own)).toBe(false);
      useFastWasmMatMul(tf, true, loadBlas().blas);
      expect(writableInPlace(own)).toBe(true);
    }
    tf.dispose([own, reshaped, view, ints]);
  });
});

/**
 * The host-values op (src/ops/host-values.ts): what the trainer reads and writes tensors' values
 * with (AdamW's and the clip's host form, the replicas' copies). Each backend whose tensors are
 * host memory registers its version; every one, and the reference, gives the same values, copies
 * what it must, and writes in place only where no other tensor shares the data.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { keysByDataId } from '../../src/backend/wasm-matmul.ts';
import { defaultPlacement, hostValuesOp, referenceHostValues, type HostValuesImpl } from '../../src/ops/host-values.ts';
import { useBackend } from './parity.ts';

beforeAll(async () => {
  await useBackend('cpu');
  await useBackend('wasm'); // both register, each as it starts
});

describe('registrations', () => {
  it('wasm and cpu register theirs, with host set; elsewhere the reference, which is not', () => {
    for (const backend of ['wasm', 'cpu']) expect(hostValuesOp.registered(backend)?.host, backend).toBe(true);
    for (const backend of ['webgpu', 'tensorflow']) expect(hostValuesOp.registered(backend), backend).toBeUndefined();
    expect(referenceHostValues.host).toBe(false);
  });

  it('so the optimizer and the clip run their arithmetic on the host on wasm and cpu, in kernels elsewhere', () => {
    expect(['wasm', 'cpu', 'webgpu', 'tensorflow'].map((b) => defaultPlacement(b))).toEqual(['host', 'host', 'device', 'device']);
  });
});

const ROWS = ['cpu', 'wasm'].flatMap((backend) => [[backend, 'reference'], [backend, 'registered']]);

describe.each(ROWS)('on %s, the %s version', (backend, which) => {
  let impl: HostValuesImpl;
  beforeAll(async () => {
    await tf.setBackend(backend);
    impl = which === 'reference' ? referenceHostValues : hostValuesOp.registered(backend)!;
  });

  it('valuesOf: a kernel\'s output and a variable\'s values; tensorFrom: a copy of its source', () => {
    const before = tf.memory().numTensors;
    const v = tf.tidy(() => tf.variable(tf.tensor2d([[1, -2], [3.5, 4]])));
    const y = tf.mul(v, 2);
    expect(Array.from(impl.valuesOf(v))).toEqual([1, -2, 3.5, 4]);
    expect(Array.from(impl.valuesOf(y))).toEqual([2, -4, 7, 8]);
    const shared = new Float32Array(new SharedArrayBuffer(4 * 6)).map((_, i) => i + 1);
    const t = impl.tensorFrom(shared.subarray(1, 5), [2, 2]);
    shared.fill(-7); // a worker's buffer is rewritten every step
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(t.dataSync())).toEqual([2, 3, 4, 5]);
    tf.dispose([v, y, t]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('addInto: the sum where it says it added, t untouched where not; never into shared data', () => {
    const parts = [Float32Array.from([1, 2, 3]), Float32Array.from([10, 20, 30])];
    const own = tf.mul(tf.tensor1d([1, 1, 1]), 2);
    const done = impl.addInto(own, parts);
    expect(Array.from(own.dataSync())).toEqual(done ? [13, 24, 35] : [2, 2, 2]);
    expect(done).toBe(impl.host && backend === 'wasm');
    const sharedData = tf.mul(tf.tensor1d([1, 1, 1]), 2);
    const clone = sharedData.clone();
    expect(impl.addInto(sharedData, parts)).toBe(false);
    expect(Array.from(clone.dataSync())).toEqual([2, 2, 2]);
    tf.dispose([own, sharedData, clone]);
  });

  it('writableInPlace: never for data a reshape shares or for integers; where it says yes, a write is what every reader sees', () => {
    const reshaped = tf.tidy(() => tf.mul(tf.tensor1d([1, 2, 3]), 2));
    const view = reshaped.reshape([3, 1]);
    const ints = tf.tensor1d([1, 2, 3], 'int32');
    expect(impl.writableInPlace(reshaped)).toBe(false);
    expect(impl.writableInPlace(ints)).toBe(false);
    const own = tf.tidy(() => tf.mul(tf.tensor1d([1, 2, 3]), 2));
    // only wasm's own version writes in place, and not while its products keep data by id (a native BLAS)
    expect(impl.writableInPlace(own)).toBe(which === 'registered' && backend === 'wasm' && !keysByDataId());
    if (impl.writableInPlace(own)) {
      impl.valuesOf(own).set([7, 8, 9]);
      expect(Array.from(own.dataSync())).toEqual([7, 8, 9]);
    }
    tf.dispose([reshaped, view, ints, own]);
  });
});

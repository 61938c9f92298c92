/**
 * The sum-squares op (src/ops/clip.ts), the gradient clip's Σ g²: every registered
 * implementation against the reference on the same backend, per tensor and (where a backend
 * sums many at once) over all, at stories260K's bench gradients and odd sizes; the clip's norm
 * (src/train/clip.ts) as the host sum in doubles through each.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { sumSquaresOp, type SumSquaresImpl } from '../../src/ops/clip.ts';
import { clipByGlobalNorm, clipFactor, globalNorm, globalNormOf } from '../../src/train/clip.ts';
import { host, PARITY_BACKENDS, useBackend } from './parity.ts';

/** Gradient sizes: a bench LoRA factor pair and router (stories260K), a workgroup's edges, one value, a large odd one. */
const SIZES = [64 * 8, 8 * 172, 64 * 4, 255, 256, 257, 1, 10_007];

describe.each(['cpu', ...PARITY_BACKENDS])('sum-squares on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('is registered where the backend has a kernel for it (wasm: the SIMD module; webgpu: one program a tensor)', () => {
    expect(sumSquaresOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
  });

  it.each(SIZES)('%i values: every implementation as the reference and the double sum', async (n) => {
    const a = host(n, 50 + n, 3);
    const x = tf.tensor1d(a);
    const want = a.reduce((s, v) => s + v * v, 0);
    const of = async (impl: SumSquaresImpl) => {
      const t = tf.tidy(() => impl.of(x));
      const v = (await t.data())[0];
      t.dispose();
      return v;
    };
    expect(Math.abs((await of(sumSquaresOp.reference)) - want) / want).toBeLessThan(1e-5);
    const fast = sumSquaresOp.registered(backend);
    if (fast) expect(Math.abs((await of(fast)) - want) / want).toBeLessThan(1e-5);
    x.dispose();
  });

  it('over many gradients: the norm through every implementation as the host sum in doubles, and the clip halves them', async () => {
    const arrays = SIZES.map((n, i) => host(n, 70 + i, 2));
    const grads = new Map(arrays.map((a, i) => [`g${i}`, tf.tensor(a)] as const));
    const want = globalNormOf(arrays);
    for (const impl of [sumSquaresOp.reference, sumSquaresOp.registered(backend)]) {
      if (!impl) continue;
      const t = globalNorm(grads.values(), impl);
      expect(Math.abs((await t.data())[0] - want) / want).toBeLessThan(1e-6);
      t.dispose();
      const now = impl.now?.([...grads.values()]);
      if (now !== undefined && now !== null) expect(Math.abs(Math.sqrt(now) - want) / want).toBeLessThan(1e-12); // summed in double
    }
    if (backend === 'wasm') expect(sumSquaresOp.registered(backend)!.now!([...grads.values()])).not.toBeNull();
    for (const placement of ['host', 'device'] as const) {
      expect(Math.abs((await clipFactor(grads, 1, placement)).norm - want) / want).toBeLessThan(1e-6);
    }
    const norm = await clipByGlobalNorm(grads, want / 2);
    expect(Math.abs(norm - want) / want).toBeLessThan(1e-6);
    const after = await Promise.all([...grads.values()].map((g) => g.data()));
    expect(Math.abs(globalNormOf(after) - want / 2) / want).toBeLessThan(1e-5);
    tf.dispose([...grads.values()]);
  });
});

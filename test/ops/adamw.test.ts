/**
 * The adamw op (src/ops/adamw.ts): every registered implementation against the reference on the
 * same backend after several steps (weight decay, a clip scale on one step, a parameter that
 * misses a step's gradient as the optimizer skips it), parameters and both moments within 1e-6;
 * the reference against adamwUpdate (the host form, in doubles); on wasm the in-place update and
 * the kernel bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { adamwOp, type AdamWHyper, type AdamWImpl } from '../../src/ops/adamw.ts';
import { AdamW, adamwUpdate } from '../../src/train/adamw.ts';
import { host, PARITY_BACKENDS, useBackend, worst } from './parity.ts';

/** Parameter shapes: a bench LoRA factor (stories260K: [64, 8] and [8, 172]), a router, odd sizes. */
const SHAPES = [[64, 8], [8, 172], [64, 4], [7], [1], [3, 5]];
const STEPS = 5;

const hyper = (step: number): AdamWHyper => ({ lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step, gradScale: step === 2 ? 0.25 : 1 });
const sizeOf = (s: number[]) => s.reduce((a, b) => a * b, 1);
const grad = (shape: number[], k: number, step: number) => host(sizeOf(shape), 100 * k + step, 0.5);

/** STEPS updates of each SHAPES parameter by `impl`; the last one skips step 3. `share`: keep a clone of each parameter alive. */
async function trajectory(impl: AdamWImpl, share = false) {
  const vars = SHAPES.map((s, k) => tf.tidy(() => ({
    p: tf.variable(tf.tensor(host(sizeOf(s), 10 + k), s), true),
    m: tf.variable(tf.zeros(s), false),
    v: tf.variable(tf.zeros(s), false),
  })));
  const before = tf.memory().numTensors;
  const kernels: string[][] = [];
  for (let step = 1; step <= STEPS; step++) {
    const clones = share ? vars.map(({ p }) => tf.clone(p)) : [];
    const info = await tf.profile(() => tf.tidy(() => {
      vars.forEach(({ p, m, v }, k) => {
        if (k === SHAPES.length - 1 && step === 3) return;
        impl(p, tf.tensor(grad(SHAPES[k], k, step), SHAPES[k]), m, v, hyper(step));
      });
    }));
    kernels.push(info.kernels.map((x) => x.name));
    tf.dispose(clones);
  }
  expect(tf.memory().numTensors).toBe(before);
  const out = await Promise.all(vars.map(async ({ p, m, v }) => Promise.all([p, m, v].map(async (t) => (await t.data()) as Float32Array))));
  tf.dispose(vars.flatMap(({ p, m, v }) => [p, m, v]));
  return { out, kernels };
}

describe.each(['cpu', ...PARITY_BACKENDS])('adamw on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('is registered where the backend has a fused kernel, and the optimizer then runs on the device', () => {
    expect(adamwOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
    expect(new AdamW(new Map()).placement).toBe(backend === 'cpu' ? 'host' : 'device');
  });

  it(`after ${STEPS} steps: the reference as adamwUpdate in doubles, every implementation as the reference (p, m, v within 1e-6)`, async () => {
    const ref = await trajectory(adamwOp.reference);
    SHAPES.forEach((s, k) => {
      const [p, m, v] = [host(sizeOf(s), 10 + k), new Float32Array(sizeOf(s)), new Float32Array(sizeOf(s))];
      for (let step = 1; step <= STEPS; step++) if (!(k === SHAPES.length - 1 && step === 3)) adamwUpdate(p, grad(s, k, step), m, v, hyper(step));
      [p, m, v].forEach((want, j) => expect(worst(ref.out[k][j], want), `${['p', 'm', 'v'][j]} of [${s}]`).toBeLessThan(1e-6));
    });
    const fast = adamwOp.registered(backend);
    if (!fast) return;
    const got = await trajectory(fast);
    SHAPES.forEach((s, k) => [0, 1, 2].forEach((j) => expect(worst(got.out[k][j], ref.out[k][j]), `${['p', 'm', 'v'][j]} of [${s}]`).toBeLessThan(1e-6)));
    expect(got.kernels[0].length).toBeLessThan(ref.kernels[0].length / 5); // one kernel a parameter (or none) against ~14
  });

  it.skipIf(backend !== 'wasm')('wasm: written in place with no kernel, and bit for bit as the kernel where a parameter is shared', async () => {
    const fast = adamwOp.registered(backend)!;
    const inPlace = await trajectory(fast);
    const shared = await trajectory(fast, true);
    expect(inPlace.kernels.flat()).toEqual([]);
    expect(shared.kernels[0]).toEqual(SHAPES.map(() => 'HiloAdamW'));
    expect(inPlace.out).toEqual(shared.out);
  });
});

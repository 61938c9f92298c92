/**
 * The router-losses op (src/ops/router-losses.ts): every registered implementation (the host
 * loops on cpu and wasm, webgpu's programs) against the tfjs reference: the weighted balance and
 * z losses, the selection fractions it hands out, and the gradient to the logits, with and
 * without a token mask, at the bench's shape and odd ones (E = 3, top-1 and top-2).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { referenceRouterGates } from '../../src/ops/router-gates.ts';
import { referenceRouterLosses, routerLossesOp, type RouterLossesImpl } from '../../src/ops/router-losses.ts';
import { seeded } from '../backend/matmul-helpers.ts';
import { BACKENDS, expectClose, read, registrations, SHAPES } from './router-helpers.ts';

/** [name, balance coefficient, z-loss coefficient, padded rows, top-k]. */
const WEIGHTS: Array<[string, number, number, boolean, number]> = [
  ['balance and z-loss, padded rows, top-2', 0.5, 0.1, true, 2],
  ['balance only, top-1', 0.5, 0, false, 1],
  ['z-loss only, padded rows, top-2', 0, 0.3, true, 2],
];
const CASES = SHAPES.flatMap((s) => WEIGHTS.map(([name, cb, cz, padded, k]) => [`${s.name}, ${name}`, s, cb, cz, padded, k] as const));

async function run(impl: RouterLossesImpl, s: (typeof SHAPES)[number], cb: number, cz: number, padded: boolean, k: number) {
  return read(tf.tidy(() => {
    const logits = tf.mul(seeded([s.N, s.E], 1), 3) as tf.Tensor2D;
    const mask = referenceRouterGates.select(logits, { strategy: 'topk', topK: k, topP: 0 });
    const tokenMask = padded ? tf.tensor1d(Array.from({ length: s.N }, (_, n) => (n % 5 === 3 ? 0 : 1))) : undefined;
    const fractions: tf.Tensor1D[] = [];
    const { value, grad } = tf.valueAndGrad((l: tf.Tensor) => tf.mul(impl(l as tf.Tensor2D, mask, { balanceCoef: cb, zLossCoef: cz, tokenMask, fractionsOut: fractions }), s.N) as tf.Scalar)(logits); // dy = N: per-token gradients of order 1, not 1/N
    return { value, dl: grad, fractions: fractions[0] };
  }));
}

describe.each(BACKENDS)('router-losses on %s', (backend) => {
  afterAll(shutdownBackend);

  it.each(CASES)('%s: every registration matches the reference', async (_name, s, cb, cz, padded, k) => {
    const impls = await registrations(backend, routerLossesOp, true);
    const before = tf.memory().numTensors;
    const want = await run(referenceRouterLosses, s, cb, cz, padded, k);
    for (const [, impl] of impls) expectClose(await run(impl, s, cb, cz, padded, k), want, 2e-5);
    expect(Math.max(...Array.from(want.dl, Math.abs))).toBeGreaterThan(1e-3); // a gradient worth comparing
    expect(want.fractions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

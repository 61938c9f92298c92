/**
 * The router-logits op (src/ops/router-logits.ts): every registered implementation (wasm: the
 * SIMD module's narrow products) against the reference tf.matMul, forward and both gradients,
 * at the bench's shape and odd ones.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { referenceRouterLogits, routerLogitsOp, type RouterLogitsImpl } from '../../src/ops/router-logits.ts';
import { seeded } from '../backend/matmul-helpers.ts';
import { BACKENDS, expectClose, read, registrations, SHAPES } from './router-helpers.ts';

/** Which backends must have registered one (the rest run the reference). */
const EXPECTED: Record<string, boolean> = { cpu: false, wasm: true, webgpu: false };

async function run(impl: RouterLogitsImpl, s: (typeof SHAPES)[number]) {
  return read(tf.tidy(() => {
    const x = seeded([s.N, s.inF], 1) as tf.Tensor2D;
    const w = seeded([s.inF, s.E], 2) as tf.Tensor2D;
    const dl = seeded([s.N, s.E], 3);
    const f = (xs: tf.Tensor, ws: tf.Tensor) => impl(xs as tf.Tensor2D, ws as tf.Tensor2D);
    const [dx, dw] = tf.grads(f)([x, w], dl);
    return { logits: f(x, w), dx, dw };
  }));
}

describe.each(BACKENDS)('router-logits on %s', (backend) => {
  afterAll(shutdownBackend);

  it.each(SHAPES)('$name: every registration matches the reference, forward and gradients', async (s) => {
    const impls = await registrations(backend, routerLogitsOp, EXPECTED[backend]);
    const before = tf.memory().numTensors;
    const want = await run(referenceRouterLogits, s);
    for (const [, impl] of impls) expectClose(await run(impl, s), want, 1e-5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

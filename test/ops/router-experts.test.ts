/**
 * The routed-experts op (src/ops/routed-experts.ts): every registered implementation (wasm with
 * a native BLAS: the fused kernels, the SIMD routing in them) and the reference composed of the
 * registered finer ops (the host routing on cpu and wasm, webgpu's programs) against plain tfjs
 * (plainRoutedExperts): the delta (with the frozen base's product where an implementation fuses
 * it), the router losses and usage, and the gradients to x, xd, A, B and the router. Plain LoRA
 * (one expert) too. At the bench's shape (top-2 of 4, rank 8: the SIMD module's one-pass routing)
 * and odd ones (E = 3, top-1 / top-2 / top-p).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import { plainRoutedExperts, referenceRoutedExperts, routedExpertsOp, type RoutedExpertsImpl, type RouterLossSpec } from '../../src/ops/routed-experts.ts';
import type { RoutingOptions } from '../../src/ops/router-gates.ts';
import { seeded } from '../backend/matmul-helpers.ts';
import { BACKENDS, expectClose, read, registrations, SHAPES } from './router-helpers.ts';

const { blas } = loadBlas({});
/** Which backends must have registered one: wasm, where a native BLAS loads. */
const EXPECTED: Record<string, boolean> = { cpu: false, wasm: blas !== null, webgpu: false };

/** [name, experts (1: plain LoRA) or the shape's, routing, losses, experts on other rows than the router (dropout), a frozen base]. */
type Case = [string, (typeof SHAPES)[number], RoutingOptions, boolean, boolean, boolean];
const TOP1: RoutingOptions = { strategy: 'topk', topK: 1, topP: 0 };
const TOP2: RoutingOptions = { strategy: 'topk', topK: 2, topP: 0 };
const TOPP: RoutingOptions = { strategy: 'topp', topK: 0, topP: 0.6 };
const [bench, odd, tiny] = SHAPES;
const CASES: Case[] = [
  ['bench, top-2, losses, frozen base (a training step)', bench, TOP2, true, false, true],
  ['bench, top-2, no losses (evaluation)', bench, TOP2, false, false, false],
  ['bench, top-2, losses, dropout rows', bench, TOP2, true, true, true],
  ['odd E=3, top-1, losses, frozen base', odd, TOP1, true, false, true],
  ['odd E=3, top-2, losses, dropout rows', odd, TOP2, true, true, false],
  ['odd E=3, top-p, losses, frozen base', odd, TOPP, true, false, true],
  ['tiny E=3 r=1, top-2, no losses, frozen base', tiny, TOP2, false, false, true],
  ['plain LoRA, frozen base', { ...odd, E: 1 }, TOP1, true, false, true],
  ['plain LoRA, dropout rows', { ...odd, E: 1 }, TOP1, false, true, false],
];

async function run(impl: RoutedExpertsImpl, [, s, routing, withLosses, dropout, frozen]: Case) {
  return read(tf.tidy(() => {
    const x = seeded([s.N, s.inF], 1) as tf.Tensor2D;
    const A = tf.mul(seeded([s.inF, s.E * s.r], 2), 0.5) as tf.Tensor2D;
    const B = tf.mul(seeded([s.E * s.r, s.out], 3), 0.5) as tf.Tensor2D;
    const R = s.E > 1 ? (tf.mul(seeded([s.inF, s.E], 4), 2) as tf.Tensor2D) : null;
    const W = frozen ? (seeded([s.inF, s.out], 5) as tf.Tensor2D) : null;
    const target = seeded([s.N, s.out], 6);
    const tokenMask = tf.tensor1d(Array.from({ length: s.N }, (_, n) => (n % 7 === 6 ? 0 : 1)));
    const losses: RouterLossSpec | null = withLosses ? { balanceCoef: 0.5, zLossCoef: 0.1, tokenMask, usage: true } : null;
    const spec = { experts: s.E, rank: s.r, scale: 2, routing };
    const got: Record<string, tf.Tensor> = {};
    const f = (...ts: tf.Tensor[]) => {
      const [xs, a, b, r] = ts as tf.Tensor2D[];
      const xd = dropout ? (tf.mul(xs, tf.linspace(0.5, 1.5, s.inF)) as tf.Tensor2D) : xs;
      const out = impl(xs, xd, { loraA: a, loraB: b, router: r ?? null }, spec, W, losses);
      // the layer's output either way: the base's product added where the implementation left it out
      const y = out.withBase || !W ? out.delta : tf.add(tf.matMul(xs, W), out.delta);
      got.y = tf.keep(y);
      if (out.aux) got.aux = tf.keep(out.aux);
      if (out.usage) got.usage = tf.keep(out.usage);
      if (out.mask) got.mask = tf.keep(out.mask);
      return (out.aux ? tf.add(tf.sum(tf.mul(y, target)), out.aux) : tf.sum(tf.mul(y, target))) as tf.Scalar;
    };
    const grads = tf.grads(f)([x, A, B, ...(R ? [R] : [])]);
    return { ...got, dx: grads[0], dA: grads[1], dB: grads[2], ...(R ? { dR: grads[3] } : {}) };
  }));
}

describe.each(BACKENDS)('routed-experts on %s', (backend) => {
  afterAll(shutdownBackend);

  it.each(CASES)('%s: every registration and the composed reference match plain tfjs', async (...c) => {
    const impls = await registrations(backend, routedExpertsOp, EXPECTED[backend]);
    const before = tf.memory().numTensors;
    const want = await run(plainRoutedExperts, c);
    const s = c[1];
    if (s.E > 1 && c[3]) expect(Object.keys(want)).toEqual(expect.arrayContaining(['aux', 'usage']));
    for (const [, impl] of [...impls, ['composed', referenceRoutedExperts] as const]) {
      const got = await run(impl, c);
      if (want.mask) expect(Array.from(got.mask ?? want.mask)).toEqual(Array.from(want.mask)); // the fused training step hands out no mask
      const { mask: _m, ...gotRest } = got;
      const { mask: _w, ...wantRest } = want;
      expectClose(gotRest, wantRest, 5e-5);
    }
    if (s.E > 1) expect(Math.max(...Array.from(want.dR, Math.abs))).toBeGreaterThan(1e-4); // the router gets a gradient
    expect(tf.memory().numTensors).toBe(before);
  });
});

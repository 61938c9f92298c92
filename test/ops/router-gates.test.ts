/**
 * The router-gates op (src/ops/router-gates.ts): every registered implementation (the host
 * loops on cpu and wasm, webgpu's programs) against the tfjs reference, for top-k (1 and 2),
 * top-p and dense routing at the bench's shape and odd ones: the same selection mask, the same
 * spread gates G [N, E·r], and the same gradient to the logits for an upstream dG.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { referenceRouterGates, routerGatesOp, type RouterGatesImpl, type RoutingOptions } from '../../src/ops/router-gates.ts';
import { seeded } from '../backend/matmul-helpers.ts';
import { BACKENDS, expectClose, read, registrations, SHAPES } from './router-helpers.ts';

const ROUTINGS: Array<[string, RoutingOptions]> = [
  ['top-1', { strategy: 'topk', topK: 1, topP: 0 }],
  ['top-2', { strategy: 'topk', topK: 2, topP: 0 }],
  ['top-p 0.6', { strategy: 'topp', topK: 0, topP: 0.6 }],
  ['dense', { strategy: 'dense', topK: 0, topP: 0 }],
];
const CASES = SHAPES.flatMap((s) => ROUTINGS.map(([name, routing]) => [`${s.name}, ${name}`, s, routing] as const));

async function run(impl: RouterGatesImpl, s: (typeof SHAPES)[number], routing: RoutingOptions) {
  return read(tf.tidy(() => {
    const logits = tf.mul(seeded([s.N, s.E], 1), 3) as tf.Tensor2D;
    const dG = seeded([s.N, s.E * s.r], 2) as tf.Tensor2D;
    const select = impl.select(logits, routing);
    let mask: tf.Tensor = tf.zeros([0]);
    const f = (l: tf.Tensor) => {
      const out = impl.spread(l as tf.Tensor2D, routing, s.r, 1.5);
      mask = tf.keep(out.mask); // past valueAndGrad's own scope
      return out.gates;
    };
    const { value: gates, grad: dl } = tf.valueAndGrad(f)(logits, dG);
    return { select, mask, gates, dl };
  }));
}

describe.each(BACKENDS)('router-gates on %s', (backend) => {
  afterAll(shutdownBackend);

  it.each(CASES)('%s: every registration matches the reference', async (_name, s, routing) => {
    const impls = await registrations(backend, routerGatesOp, true);
    const before = tf.memory().numTensors;
    const want = await run(referenceRouterGates, s, routing);
    if (routing.strategy === 'topk') expect(want.select.reduce((a, b) => a + b, 0)).toBe(s.N * routing.topK);
    for (const [, impl] of impls) {
      const got = await run(impl, s, routing);
      expect(Array.from(got.select)).toEqual(Array.from(want.select));
      expect(Array.from(got.mask)).toEqual(Array.from(want.select));
      expectClose({ gates: got.gates, dl: got.dl }, { gates: want.gates, dl: want.dl }, 1e-5);
    }
    // a gradient worth comparing, where some row keeps several experts (one kept expert's gate is 1 whatever the logits)
    const several = Array.from({ length: s.N }, (_, n) => want.select.slice(n * s.E, (n + 1) * s.E).reduce((a, b) => a + b, 0)).some((k) => k > 1);
    if (several) expect(Math.max(...Array.from(want.dl, Math.abs))).toBeGreaterThan(1e-3);
    else expect(Math.max(...Array.from(want.dl, Math.abs))).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

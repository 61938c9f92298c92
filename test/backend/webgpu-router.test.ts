/**
 * The webgpu router kernels (src/backend/webgpu-router.ts) must give what the tfjs-op forms give
 * on wasm (themselves pinned to PyTorch in test/adapters): selection masks, spread gates, the
 * balance and z losses, the usage fractions, and every gradient through them, for top-k, top-p
 * and dense routing, with and without a token mask. Skipped without a WebGPU adapter.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { mixtureDelta, type MixtureSpec } from '../../src/adapters/mixture.ts';
import { routerAuxLoss, selectExperts, type RoutingOptions } from '../../src/adapters/routing.ts';
import { initBackend, shutdownBackend } from '../../src/backend/index.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import { ROUTE_GATES, ROUTE_GATES_GRAD, ROUTE_MASK, ROUTER_AUX, ROUTER_AUX_GRAD } from '../../src/backend/webgpu-router.ts';
import { plainRoutedExperts, routedExpertsOp } from '../../src/ops/routed-experts.ts';
import { referenceRouterGates, routerGatesOp } from '../../src/ops/router-gates.ts';
import { referenceRouterLosses, routerLossesOp } from '../../src/ops/router-losses.ts';
import { seeded } from './matmul-helpers.ts';

const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING webgpu router tests: ${noAdapter}\n`);

const N = 37; // rows: not a multiple of the 64-thread workgroup
const IN = 16;
const OUT = 12;

interface Case {
  name: string;
  experts: number;
  rank: number;
  routing: RoutingOptions;
  tokenMask: boolean;
}
const CASES: Case[] = [
  { name: 'top-2 of 4, r 8', experts: 4, rank: 8, routing: { strategy: 'topk', topK: 2, topP: 0 }, tokenMask: false },
  { name: 'top-2 of 4, r 8, padded rows', experts: 4, rank: 8, routing: { strategy: 'topk', topK: 2, topP: 0 }, tokenMask: true },
  { name: 'top-p 0.6 of 6, r 3', experts: 6, rank: 3, routing: { strategy: 'topp', topK: 0, topP: 0.6 }, tokenMask: true },
  { name: 'dense 3, r 2', experts: 3, rank: 2, routing: { strategy: 'dense', topK: 0, topP: 0 }, tokenMask: false },
];

/** One MoE module's delta and router losses, forward and gradients: the ops' references (`plain`) or the active backend's. */
async function probe(c: Case, plain: boolean): Promise<Record<string, number[]>> {
  const experts = plain ? plainRoutedExperts : routedExpertsOp.impl();
  const gates = plain ? referenceRouterGates : routerGatesOp.impl();
  const losses = plain ? referenceRouterLosses : routerLossesOp.impl();
  const out = tf.tidy(() => {
    const x = seeded([N, IN], 1).mul(2) as tf.Tensor2D;
    const A = seeded([IN, c.experts * c.rank], 2) as tf.Tensor2D;
    const B = seeded([c.experts * c.rank, OUT], 3) as tf.Tensor2D;
    const R = seeded([IN, c.experts], 4) as tf.Tensor2D;
    const target = seeded([N, OUT], 5);
    const tokenMask = c.tokenMask ? tf.tensor1d(Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 1))) : undefined;
    const spec: MixtureSpec = { experts: c.experts, rank: c.rank, scale: 2, routing: c.routing };
    const fractions: tf.Tensor1D[] = [];
    const f = (xs: tf.Tensor, a: tf.Tensor, b: tf.Tensor, r: tf.Tensor) => {
      const w = { loraA: a as tf.Tensor2D, loraB: b as tf.Tensor2D, router: r as tf.Tensor2D };
      const out = mixtureDelta(xs as tf.Tensor2D, xs as tf.Tensor2D, w, spec, experts);
      const aux = routerAuxLoss(out.logits!, out.mask!, { balanceCoef: 0.5, zLossCoef: 0.1, tokenMask, fractionsOut: fractions }, losses);
      return tf.add(tf.sum(tf.mul(out.delta, target)), aux) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(f)([x, A, B, R]);
    const mask = selectExperts(tf.matMul(x, R) as tf.Tensor2D, c.routing, gates);
    const w = { loraA: A, loraB: B, router: R };
    const delta = mixtureDelta(x, x, w, spec, experts).delta;
    const aux = routerAuxLoss(tf.matMul(x, R) as tf.Tensor2D, mask, { balanceCoef: 0.5, zLossCoef: 0.1, tokenMask }, losses);
    return { value, mask, delta, aux, fractions: fractions[0], dx: grads[0], dA: grads[1], dB: grads[2], dRouter: grads[3] } as Record<string, tf.Tensor>;
  });
  const read = await Promise.all(Object.entries(out).map(async ([k, t]) => [k, Array.from(await t.data())] as const));
  tf.dispose(Object.values(out));
  return Object.fromEntries(read);
}

describe.skipIf(!!noAdapter)(`webgpu router kernels (skipped when no adapter: ${noAdapter || 'adapter found'})`, () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  for (const c of CASES) {
    it(`match the tfjs-op forms on wasm: ${c.name}`, async () => {
      await initBackend('wasm');
      const want = await probe(c, true);
      await initBackend('webgpu');
      tf.env().set('WEBGPU_CPU_FORWARD', false);
      const before = tf.memory().numTensors;
      let got: Record<string, number[]> = {};
      const info = await tf.profile(async () => {
        got = await probe(c, false);
      });
      expect(tf.memory().numTensors).toBe(before);
      const names = new Set(info.kernels.map((k) => k.name));
      // the fused kernels ran (top-k/top-p masks; dense needs none)
      for (const k of [ROUTE_GATES, ROUTE_GATES_GRAD, ROUTER_AUX, ROUTER_AUX_GRAD]) expect(names.has(k), k).toBe(true);
      expect(names.has(ROUTE_MASK)).toBe(c.routing.strategy !== 'dense');
      expect(names.has('TopK')).toBe(false);
      expect(got.mask).toEqual(want.mask);
      for (const key of ['value', 'delta', 'aux', 'fractions', 'dx', 'dA', 'dB', 'dRouter']) {
        expect(got[key].length, key).toBe(want[key].length);
        const worst = Math.max(...want[key].map((v, i) => Math.abs(got[key][i] - v) / Math.max(1, Math.abs(v))));
        expect(worst, key).toBeLessThan(2e-5);
      }
      expect(Math.max(...want.dRouter.map(Math.abs))).toBeGreaterThan(1e-3); // the router does get a gradient
    });
  }
});


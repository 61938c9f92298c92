/**
 * The mixture layer against the PyTorch reference (test/fixtures/moe/layer.json, written by
 * scripts/make-moe-fixtures.py from shared/bench/ref_moe.py in float64): outputs, balance and
 * z-losses with padding masked, expert usage, and the gradients wrt x, every A, B and the router.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MixtureLinear } from '../../src/adapters/mixture.ts';
import { balanceLoss, routeTokens } from '../../src/adapters/routing.ts';
import { plainRoutedExperts, referenceRoutedExperts, routedExpertsOp } from '../../src/ops/routed-experts.ts';
import { referenceRouterGates, routerGatesOp } from '../../src/ops/router-gates.ts';
import { initBackend } from '../../src/backend/index.ts';
import { FrozenLinearLayer } from '../../src/model/linear.ts';
import type { ForwardContext, LinearModule } from '../../src/model/types.ts';

type M = number[][];
interface Case {
  name: string; strategy: 'topk' | 'topp' | 'dense'; experts: number; rank: number; top_k: number; top_p: number; scale: number;
  x: M; W0: M; A: M; B: M; router: M | null; G: M; token_mask: number[]; y: M; loss: number;
  aux?: number; aux_masked?: number; zloss?: number; mask?: M;
  grad_x: M; grad_A: M; grad_B: M; grad_router: M | null;
}
const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '../fixtures/moe/layer.json'), 'utf8')) as { cases: Case[] };

beforeAll(async () => {
  await initBackend('wasm');
});

/** HF per-expert tensors -> the layer's packed kernels (the layout io.ts converts to and from). */
function packedVariables(c: Case) {
  const { experts: E, rank: r } = c;
  const out = c.W0.length;
  const v = (make: () => tf.Tensor) => tf.tidy(() => tf.variable(make() as tf.Tensor2D));
  return {
    loraA: v(() => tf.transpose(tf.tensor2d(c.A))), // [E·r, in] -> [in, E·r]
    loraB: v(() => tf.reshape(tf.transpose(tf.reshape(tf.tensor2d(c.B), [E, out, r]), [0, 2, 1]), [E * r, out])), // [E,out,r] -> [E,r,out] -> [E·r, out]
    router: c.router ? v(() => tf.transpose(tf.tensor2d(c.router!))) : null, // [E, in] -> [in, E]
  };
}

/** Max |got - want| relative to max(1, |want|). */
function worst(got: ArrayLike<number>, want: M): number {
  const flat = want.flat();
  expect(got.length).toBe(flat.length);
  let w = 0;
  for (let i = 0; i < flat.length; i++) w = Math.max(w, Math.abs(got[i] - flat[i]) / Math.max(1, Math.abs(flat[i])));
  return w;
}

/**
 * The routed-experts op as wasm registered it (with a native BLAS: fused kernels, a frozen base's
 * product inside them), its reference composed of the finer ops as registered (the routing's
 * host form), and plain tfjs ops throughout; with the gates op to match.
 */
const FORMS = {
  registered: () => [routedExpertsOp.impl(), routerGatesOp.impl()] as const,
  composed: () => [referenceRoutedExperts, routerGatesOp.impl()] as const,
  plain: () => [plainRoutedExperts, referenceRouterGates] as const,
};

// The base as the model's frozen layer (its product may go into fused kernels) and as any other
// module (added to the experts' delta).
describe.each([
  ['registered', 'frozen'], ['registered', 'module'], ['composed', 'module'], ['plain', 'module'],
] as const)('mixture layer vs PyTorch reference (ref_moe.py), routed experts %s, %s base', (form, baseKind) => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const before = tf.memory().numTensors;
    const { loraA, loraB, router } = packedVariables(c);
    const xv = tf.tidy(() => tf.variable(tf.tensor2d(c.x)));
    const kernel = tf.tidy(() => tf.variable(tf.transpose(tf.tensor2d(c.W0)), false)); // [out, in] -> [in, out]
    const base: LinearModule = baseKind === 'frozen'
      ? new FrozenLinearLayer('m', kernel, null, 'linear')
      : { inFeatures: c.x[0].length, outFeatures: c.W0.length, forward: (x) => tf.matMul(x, kernel) };
    const spec = { experts: c.experts, rank: c.rank, scale: c.scale, routing: { strategy: c.strategy, topK: c.top_k, topP: c.top_p } };
    const [experts, gates] = FORMS[form]();
    const layer = new MixtureLinear('m', base, spec, { loraA, loraB, router }, { dropout: 0, balanceCoef: 0.5, zLossCoef: 0.1, experts });
    const ctx: ForwardContext = { training: true, auxLosses: [], tokenMask: tf.tensor1d(c.token_mask), routerStats: new Map() };
    const G = tf.tensor2d(c.G);
    let y: Float32Array = new Float32Array();
    const vars = [xv, loraA, loraB, ...(router ? [router] : [])];
    const { value, grads } = tf.variableGrads(() => {
      const out = layer.forward(xv, ctx);
      y = out.dataSync() as Float32Array;
      const fit = tf.sum(tf.mul(out, G));
      return (ctx.auxLosses.length ? tf.add(fit, tf.addN(ctx.auxLosses)) : fit) as tf.Scalar;
    }, vars);

    expect(worst(y, c.y)).toBeLessThan(1e-5);
    expect(Math.abs(value.dataSync()[0] - c.loss) / Math.max(1, Math.abs(c.loss))).toBeLessThan(1e-5);
    expect(worst(grads[xv.name].dataSync(), c.grad_x)).toBeLessThan(1e-5);
    // grad of the packed A [in, E·r] is the transpose of the stacked HF grads [E·r, in]
    expect(worst(tf.tidy(() => tf.transpose(grads[loraA.name]).dataSync()), c.grad_A)).toBeLessThan(1e-5);
    const out = c.W0.length;
    const gB = tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(grads[loraB.name], [c.experts, c.rank, out]), [0, 2, 1]), [c.experts * out, c.rank]).dataSync());
    expect(worst(gB, c.grad_B)).toBeLessThan(1e-5);
    if (router) {
      expect(ctx.auxLosses.length).toBe(1);
      expect(worst(tf.tidy(() => tf.transpose(grads[router.name]).dataSync()), c.grad_router!)).toBeLessThan(1e-5);
      // the weighted loss the layer pushed, and the unmasked balance loss as ref_moe computes it
      expect(ctx.auxLosses[0].dataSync()[0]).toBeCloseTo(0.5 * c.aux_masked! + 0.1 * c.zloss!, 5);
      const [aux, mask] = tf.tidy(() => {
        const r = routeTokens(tf.matMul(xv, router) as tf.Tensor2D, spec.routing, gates);
        return [balanceLoss(r.probs, r.mask).dataSync()[0], r.mask.arraySync()];
      });
      expect(aux).toBeCloseTo(c.aux!, 5);
      expect(mask).toEqual(c.mask);
      // usage: selection shares over the real tokens
      const real = c.mask!.filter((_, n) => c.token_mask[n] === 1);
      const counts = real[0].map((_, e) => real.reduce((s, row) => s + row[e], 0));
      const total = counts.reduce((a, b) => a + b, 0);
      Array.from(ctx.routerStats!.get('m')!.dataSync()).forEach((f, e) => expect(f).toBeCloseTo(counts[e] / total, 6));
    }
    tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses, ...ctx.routerStats!.values(), ctx.tokenMask!, G, kernel, ...vars]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the top-p case really varies the number of experts per token', () => {
    const c = fixture.cases.find((k) => k.strategy === 'topp')!;
    expect(new Set(c.mask!.map((row) => row.reduce((a, b) => a + b, 0))).size).toBeGreaterThan(1);
  });
});

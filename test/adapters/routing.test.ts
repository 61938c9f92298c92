import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { balanceLoss, routerAuxLoss, routerZLoss, routeTokens, selectExperts, selectionFractions } from '../../src/adapters/routing.ts';
import { initBackend } from '../../src/backend/index.ts';
import { hostRouterGates, hostRouterLosses } from '../../src/backend/host-router.ts';
import { referenceRouterGates, type RouterGatesImpl } from '../../src/ops/router-gates.ts';
import { referenceRouterLosses, type RouterLossesImpl } from '../../src/ops/router-losses.ts';

/** Every op runs in both forms: tfjs ops (the references) and JS loops over the arrays (the host form). */
const FORMS: Array<[string, RouterGatesImpl, RouterLossesImpl]> = [['host', hostRouterGates, hostRouterLosses], ['reference', referenceRouterGates, referenceRouterLosses]];

beforeAll(async () => {
  await initBackend('wasm');
});

// probabilities chosen so every case's selection is unambiguous; logits = log(p) gives softmax = p exactly
const P = [
  [0.5, 0.3, 0.15, 0.05],
  [0.1, 0.2, 0.3, 0.4],
  [0.7, 0.1, 0.1, 0.1],
];
const logits = () => tf.log(tf.tensor2d(P));

function gates(strategy: 'topk' | 'topp' | 'dense', topK: number, topP: number, impl: RouterGatesImpl) {
  return tf.tidy(() => {
    const r = routeTokens(logits() as tf.Tensor2D, { strategy, topK, topP }, impl);
    return { mask: r.mask.arraySync(), gates: r.gates.arraySync() };
  });
}

describe.each(FORMS)('routeTokens (%s)', (_form, impl) => {
  it.each([
    ['topk k=1', 'topk', 1, 0, [[1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], [[1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]]],
    ['topk k=2', 'topk', 2, 0, [[1, 1, 0, 0], [0, 0, 1, 1], null], [[0.5 / 0.8, 0.3 / 0.8, 0, 0], [0, 0, 3 / 7, 4 / 7], null]],
    // p=0.6: row 0 keeps 0.5 (mass before 0.5 is 0) and 0.3 (mass before 0.5 < 0.6), stops at 0.15 (0.8 >= 0.6)
    ['topp p=0.6', 'topp', 0, 0.6, [[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]], [[0.625, 0.375, 0, 0], [0, 0, 3 / 7, 4 / 7], [1, 0, 0, 0]]],
    ['topp p=0.85', 'topp', 0, 0.85, [[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0]], [[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], [0, 2 / 9, 3 / 9, 4 / 9], [0.7 / 0.9, 0.1 / 0.9, 0.1 / 0.9, 0]]],
    ['dense', 'dense', 0, 0, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]], P],
  ] as const)('%s', (_name, strategy, k, p, wantMask, wantGates) => {
    const before = tf.memory().numTensors;
    const got = gates(strategy, k, p, impl);
    wantMask.forEach((row, n) => {
      if (row) expect(got.mask[n]).toEqual(row);
    });
    wantGates.forEach((row, n) => {
      if (!row) return;
      row.forEach((v, e) => expect(got.gates[n][e]).toBeCloseTo(v, 6));
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('top-k with ties in the third row still picks exactly k experts', () => {
    const got = gates('topk', 2, 0, impl);
    expect(got.mask[2].reduce((a, b) => a + b, 0)).toBe(2);
    expect(got.mask[2][0]).toBe(1);
  });
});

describe('balance and z losses', () => {
  it('balance loss is E·Σ f·P with f over selections and P over real tokens', () => {
    const before = tf.memory().numTensors;
    const [aux, auxMasked, frac] = tf.tidy(() => {
      const r = routeTokens(logits() as tf.Tensor2D, { strategy: 'topk', topK: 1, topP: 0 });
      const tok = tf.tensor1d([1, 1, 0]); // third token is padding
      return [balanceLoss(r.probs, r.mask).arraySync(), balanceLoss(r.probs, r.mask, tok).arraySync(), selectionFractions(r.mask, tok).arraySync()];
    });
    // all tokens: picks e0, e3, e0 -> f = [2/3, 0, 0, 1/3]; P = column means
    const Pm = [0, 1, 2, 3].map((e) => (P[0][e] + P[1][e] + P[2][e]) / 3);
    expect(aux).toBeCloseTo(4 * ((2 / 3) * Pm[0] + (1 / 3) * Pm[3]), 6);
    // padding masked: picks e0, e3 -> f = [1/2, 0, 0, 1/2]; P over the first two rows
    expect(frac).toEqual([0.5, 0, 0, 0.5]);
    expect(auxMasked).toBeCloseTo(4 * (0.5 * (0.5 + 0.1) / 2 + 0.5 * (0.05 + 0.4) / 2), 6);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a uniform router scores exactly 1', () => {
    const v = tf.tidy(() => {
      const r = routeTokens(tf.zeros([8, 4]) as tf.Tensor2D, { strategy: 'dense', topK: 0, topP: 0 });
      return balanceLoss(r.probs, r.mask).arraySync();
    });
    expect(v).toBeCloseTo(1, 6);
  });

  it('z-loss is the masked mean of logsumexp² ', () => {
    const z = tf.tidy(() => routerZLoss(tf.tensor2d([[0, 0], [1, 2], [5, 5]]), tf.tensor1d([1, 1, 0])).arraySync());
    const lse = [Math.log(2), Math.log(Math.E + Math.E ** 2)];
    expect(z).toBeCloseTo((lse[0] ** 2 + lse[1] ** 2) / 2, 5);
  });
});

describe.each(FORMS)('routerAuxLoss (the layer\'s fused router losses, %s)', (_form, gatesImpl, lossesImpl) => {
  // random logits, a top-2 mask and a token mask with padding: value and gradient must equal
  // cb·balanceLoss + cz·routerZLoss composed from their definitions, through autodiff
  const N = 7;
  const E = 4;
  const logitVals = Float32Array.from({ length: N * E }, (_, i) => Math.sin(i * 1.7) * 2);
  const tokens = tf.tensor1d([1, 1, 0, 1, 1, 1, 0]);
  const cases: Array<[string, number, number, tf.Tensor1D | undefined]> = [
    ['balance and z-loss, masked tokens', 0.5, 0.1, tokens],
    ['balance only, every token', 0.01, 0, undefined],
    ['z-loss only', 0, 0.3, tokens],
  ];
  it.each(cases)('%s', (_name, cb, cz, tokenMask) => {
    const before = tf.memory().numTensors;
    type Result = readonly [number, number[]];
    let fused: Result = [NaN, []];
    let composed: Result = [NaN, []];
    let fractions: number[][] = [];
    tf.tidy(() => {
      const l = tf.tensor2d(logitVals, [N, E]);
      const mask = selectExperts(l, { strategy: 'topk', topK: 2, topP: 0 }, gatesImpl);
      const run = (f: (x: tf.Tensor2D) => tf.Scalar): Result => {
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => f(x as tf.Tensor2D))(l);
        return [value.dataSync()[0], Array.from(grad.dataSync())];
      };
      const out: tf.Tensor1D[] = [];
      fused = run((x) => routerAuxLoss(x, mask, { balanceCoef: cb, zLossCoef: cz, tokenMask, fractionsOut: out }, lossesImpl));
      fractions = [Array.from(out[0].dataSync()), Array.from(selectionFractions(mask, tokenMask).dataSync())];
      tf.dispose(out);
      composed = run((x) => tf.add(tf.mul(cb, balanceLoss(tf.softmax(x) as tf.Tensor2D, mask, tokenMask)), tf.mul(cz, routerZLoss(x, tokenMask))) as tf.Scalar);
    });
    expect(fused[0]).toBeCloseTo(composed[0], 6);
    fractions[0].forEach((f, e) => expect(f).toBeCloseTo(fractions[1][e], 6)); // the usage log
    expect(composed[1].some((v) => Math.abs(v) > 1e-4)).toBe(true); // a gradient worth comparing
    fused[1].forEach((v, i) => expect(v).toBeCloseTo(composed[1][i], 6));
    expect(tf.memory().numTensors).toBe(before);
  });
});

/**
 * Gradients of the mixture layer (x, every A, B and the router) against central finite
 * differences in float32, for every routing strategy. The loss includes the balance loss and
 * z-loss so their router gradients are checked too. Each perturbed evaluation must keep the
 * base point's selection mask: an FD step that flips a top-k/top-p choice would test nothing.
 * `separate` cases give the experts other rows than the router, as dropout does.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { mixtureDelta, type MixtureSpec } from '../../src/adapters/mixture.ts';
import { balanceLoss, routerZLoss } from '../../src/adapters/routing.ts';
import { initBackend } from '../../src/backend/index.ts';
import { plainRoutedExperts, referenceRoutedExperts, routedExpertsOp, type RoutedExpertsImpl } from '../../src/ops/routed-experts.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

const N = 6;
const IN = 5;
const OUT = 4;
const E = 3;
const R = 2;

function randArray(n: number, seed: number, scale: number): Float32Array {
  return tf.tidy(() => tf.randomNormal([n], 0, scale, 'float32', seed).dataSync() as Float32Array).slice();
}

type Params = { x: Float32Array; A: Float32Array; B: Float32Array; W: Float32Array };
const SHAPES: Record<keyof Params, [number, number]> = { x: [N, IN], A: [IN, E * R], B: [E * R, OUT], W: [IN, E] };
const KEYS = Object.keys(SHAPES) as Array<keyof Params>;

/** The experts' rows: x itself, or (`separate`) a different tensor made from x. */
let separate = false;
/** Which implementation of the routed-experts op runs (each form is checked). */
let experts: RoutedExpertsImpl = plainRoutedExperts;

function loss(t: Record<keyof Params, tf.Tensor2D>, G: tf.Tensor2D, spec: MixtureSpec) {
  const xd = separate ? (tf.mul(t.x, tf.linspace(0.5, 1.5, IN)) as tf.Tensor2D) : t.x;
  const { delta, logits, mask } = mixtureDelta(t.x, xd, { loraA: t.A, loraB: t.B, router: t.W }, spec, experts);
  const aux = tf.add(tf.mul(0.7, balanceLoss(tf.softmax(logits!) as tf.Tensor2D, mask!)), tf.mul(0.3, routerZLoss(logits!)));
  return { value: tf.add(tf.sum(tf.mul(delta, G)), aux) as tf.Scalar, mask: mask! };
}

function evaluate(p: Params, G: Float32Array, spec: MixtureSpec): { value: number; mask: number[] } {
  return tf.tidy(() => {
    const t = Object.fromEntries(KEYS.map((k) => [k, tf.tensor2d(p[k], SHAPES[k])])) as Record<keyof Params, tf.Tensor2D>;
    const out = loss(t, tf.tensor2d(G, [N, OUT]), spec);
    return { value: out.value.dataSync()[0], mask: Array.from(out.mask.dataSync()) };
  });
}

function analytic(p: Params, G: Float32Array, spec: MixtureSpec): Record<keyof Params, Float32Array> {
  return tf.tidy(() => {
    const inputs = KEYS.map((k) => tf.tensor2d(p[k], SHAPES[k]));
    const f = (...ts: tf.Tensor[]) => loss(Object.fromEntries(KEYS.map((k, i) => [k, ts[i]])) as Record<keyof Params, tf.Tensor2D>, tf.tensor2d(G, [N, OUT]), spec).value;
    const grads = tf.grads(f)(inputs);
    return Object.fromEntries(KEYS.map((k, i) => [k, grads[i].dataSync() as Float32Array])) as Record<keyof Params, Float32Array>;
  });
}

const CASES: Array<[string, MixtureSpec['routing'], number, boolean]> = [
  ['topk k=1', { strategy: 'topk', topK: 1, topP: 0 }, 11, false],
  ['topk k=2', { strategy: 'topk', topK: 2, topP: 0 }, 12, false],
  ['topp p=0.7', { strategy: 'topp', topK: 0, topP: 0.7 }, 13, false],
  ['dense', { strategy: 'dense', topK: 0, topP: 0 }, 14, false],
  ['topk k=2, experts see other rows than the router', { strategy: 'topk', topK: 2, topP: 0 }, 15, true],
  ['topp p=0.7, experts see other rows than the router', { strategy: 'topp', topK: 0, topP: 0.7 }, 16, true],
];

/** The active backend's registration, the reference composed of the registered finer ops, and plain tfjs. */
const FORMS: Array<[string, () => RoutedExpertsImpl]> = [['registered', () => routedExpertsOp.impl()], ['composed', () => referenceRoutedExperts], ['plain', () => plainRoutedExperts]];

describe.each(FORMS)('mixture layer gradients vs central finite differences (float32), routed experts %s', (_form, form) => {
  it.each(CASES)('%s', (_name, routing, seed, otherRows) => {
    separate = otherRows;
    experts = form();
    const before = tf.memory().numTensors;
    const spec: MixtureSpec = { experts: E, rank: R, scale: 1.5, routing };
    const p: Params = { x: randArray(N * IN, seed, 1), A: randArray(IN * E * R, seed + 100, 0.5), B: randArray(E * R * OUT, seed + 200, 0.5), W: randArray(IN * E, seed + 300, 1) };
    const G = randArray(N * OUT, seed + 400, 1);
    const base = evaluate(p, G, spec);
    if (routing.strategy === 'topp') {
      // the point of top-p: the number of active experts differs between tokens
      const counts = new Set(Array.from({ length: N }, (_, n) => base.mask.slice(n * E, n * E + E).reduce((a, b) => a + b, 0)));
      expect(counts.size).toBeGreaterThan(1);
    }
    const grad = analytic(p, G, spec);
    const eps = 1e-2;
    let worst = 0;
    for (const k of KEYS) {
      for (let i = 0; i < p[k].length; i++) {
        const v = p[k][i];
        const hi = Math.fround(v + eps);
        const lo = Math.fround(v - eps);
        p[k][i] = hi;
        const up = evaluate(p, G, spec);
        p[k][i] = lo;
        const down = evaluate(p, G, spec);
        p[k][i] = v;
        expect(up.mask, `${k}[${i}] + eps flips the selection`).toEqual(base.mask);
        expect(down.mask, `${k}[${i}] - eps flips the selection`).toEqual(base.mask);
        const fd = (up.value - down.value) / (hi - lo);
        const err = Math.abs(fd - grad[k][i]) / (1e-3 + 1e-2 * Math.abs(fd));
        worst = Math.max(worst, err);
        expect(err, `${k}[${i}]: fd ${fd} vs analytic ${grad[k][i]}`).toBeLessThan(1);
      }
    }
    // the router really gets gradient (through the gates and the losses), not zeros
    expect(Math.max(...Array.from(grad.W, Math.abs))).toBeGreaterThan(1e-2);
    expect(tf.memory().numTensors).toBe(before);
  });
});

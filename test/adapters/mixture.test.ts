/** MixtureLinear as a layer: dropout seeding, eval behaviour, what it leaves on the context, leaks. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MixtureLinear, mixtureDelta, type MixtureSpec } from '../../src/adapters/mixture.ts';
import { initBackend } from '../../src/backend/index.ts';
import type { ForwardContext } from '../../src/model/types.ts';
import { frozenLinear, seededContext } from './helpers.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

const N = 12;
const IN = 16;
const OUT = 24;

function makeLayer(strategy: MixtureSpec['routing']['strategy'], dropout: number, E = 4, r = 4): MixtureLinear {
  const v = (shape: [number, number], seed: number) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 0.3, 'float32', seed) as tf.Tensor2D));
  const spec: MixtureSpec = { experts: E, rank: r, scale: 2, routing: { strategy, topK: 2, topP: 0.7 } };
  return new MixtureLinear('layer', frozenLinear('base', IN, OUT, 1), spec,
    { loraA: v([IN, E * r], 2), loraB: v([E * r, OUT], 3), router: E > 1 ? v([IN, E], 4) : null },
    { dropout, balanceCoef: 0.01, zLossCoef: 0.001 });
}

function dispose(layer: MixtureLinear): void {
  tf.dispose(layer.variables());
  (layer.base as ReturnType<typeof frozenLinear>).kernel.dispose();
}

const x = () => tf.randomNormal([N, IN], 0, 1, 'float32', 7) as tf.Tensor2D;
const run = (layer: MixtureLinear, ctx?: ForwardContext) => tf.tidy(() => layer.forward(x(), ctx).dataSync() as Float32Array);

describe('mixtureDelta', () => {
  it('routes on x and runs the experts on xd (dropout\'s rows)', () => {
    const E = 3, r = 2, scale = 1.5;
    const rows = (n: number, cols: number, seed: number) => tf.tidy(() => tf.randomNormal([n, cols], 0, 1, 'float32', seed).arraySync() as number[][]);
    const [xs, xds, A, B, W] = [rows(N, IN, 1), rows(N, IN, 2), rows(IN, E * r, 3), rows(E * r, OUT, 4), rows(IN, E, 5)];
    const dot = (u: number[], M: number[][], j: number) => u.reduce((acc, v, i) => acc + v * M[i][j], 0);
    // top-2 of softmax(x W), renormalised; delta = Σ_e g_e · scale · (xd A_e) B_e, written out per row
    const want = (xr: number[], xdr: number[]) => {
      const l = Array.from({ length: E }, (_, e) => dot(xr, W, e));
      const p = l.map((v) => Math.exp(v - Math.max(...l)));
      const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 2);
      const z = top.reduce((acc, e) => acc + p[e], 0);
      const h = Array.from({ length: E * r }, (_, c) => dot(xdr, A, c));
      return Array.from({ length: OUT }, (_, o) => top.reduce((acc, e) => acc + (p[e] / z) * scale * h.slice(e * r, e * r + r).reduce((s2, v, k) => s2 + v * B[e * r + k][o], 0), 0));
    };
    const spec: MixtureSpec = { experts: E, rank: r, scale, routing: { strategy: 'topk', topK: 2, topP: 0 } };
    const got = (sameRows: boolean) => tf.tidy(() => {
      const x = tf.tensor2d(xs);
      const w = { loraA: tf.tensor2d(A), loraB: tf.tensor2d(B), router: tf.tensor2d(W) };
      return mixtureDelta(x, sameRows ? x : tf.tensor2d(xds), w, spec).delta.arraySync();
    });
    const other = got(false);
    const same = got(true);
    xs.forEach((xr, n) => {
      want(xr, xds[n]).forEach((v, o) => expect(other[n][o]).toBeCloseTo(v, 4));
      want(xr, xr).forEach((v, o) => expect(same[n][o]).toBeCloseTo(v, 4));
    });
  });
});

describe('MixtureLinear', () => {
  it('dropout follows ctx.dropoutSeed while training and is off in eval', () => {
    const layer = makeLayer('topk', 0.3);
    const plain = run(layer);
    expect(run(layer, { training: false, auxLosses: [] })).toEqual(plain);
    const a = seededContext(true, 100);
    const b = seededContext(true, 100);
    const c = seededContext(true, 200);
    const ya = run(layer, a);
    expect(run(layer, b)).toEqual(ya);
    expect(run(layer, c)).not.toEqual(ya);
    expect(ya).not.toEqual(plain);
    tf.dispose([...a.auxLosses, ...b.auxLosses, ...c.auxLosses]);
    dispose(layer);
  });

  it('pushes one weighted router loss per forward in training only, and records usage', () => {
    const layer = makeLayer('topp', 0);
    const before = tf.memory().numTensors;
    const ev: ForwardContext = { training: false, auxLosses: [], routerStats: new Map() };
    run(layer, ev);
    expect(ev.auxLosses.length).toBe(0);
    const usage = Array.from(ev.routerStats!.get('layer')!.dataSync());
    expect(usage.reduce((s, f) => s + f, 0)).toBeCloseTo(1, 6);
    run(layer, ev); // overwriting an entry frees the previous one
    tf.dispose([...ev.routerStats!.values()]);
    const tr = seededContext(true);
    run(layer, tr);
    run(layer, tr);
    expect(tr.auxLosses.length).toBe(2);
    expect(tr.auxLosses[0].dataSync()[0]).toBeGreaterThan(0.01 * 0.99); // balance >= ~1 plus a z-loss term
    tf.dispose(tr.auxLosses);
    expect(tf.memory().numTensors).toBe(before);
    dispose(layer);
  });

  it.each(['topk', 'topp', 'dense'] as const)('no tensor leaks across 100 forward/backward passes (%s)', (strategy) => {
    const layer = makeLayer(strategy, 0.1);
    const tokenMask = tf.tensor1d(Array.from({ length: N }, (_, n) => (n < N - 3 ? 1 : 0)));
    const opt = tf.train.sgd(1e-3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const ctx = seededContext(true, i, { tokenMask, routerStats: new Map() });
      const { value, grads } = tf.variableGrads(() => {
        const y = layer.forward(x(), ctx);
        return tf.add(tf.mean(tf.square(y)), tf.addN(ctx.auxLosses)) as tf.Scalar;
      }, layer.variables());
      opt.applyGradients(grads);
      tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses, ...ctx.routerStats!.values()]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([tokenMask]);
    opt.dispose();
    dispose(layer);
  });
});

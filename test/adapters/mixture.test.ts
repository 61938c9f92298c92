/** MixtureLinear as a layer: dropout seeding, eval behaviour, what it leaves on the context, leaks. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MixtureLinear, type MixtureSpec } from '../../src/adapters/mixture.ts';
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

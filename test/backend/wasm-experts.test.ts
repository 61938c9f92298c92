/**
 * The fused experts kernels of the wasm backend with a native BLAS (src/backend/wasm-experts.ts):
 * the gating loop on a hand-worked case, then the mixture layer's output and every gradient
 * (x, A, B, router) through the kernels against the tensor form they replace, which
 * test/adapters/mixture-parity.test.ts pins to PyTorch. Skipped without OpenBLAS, except under
 * HILO_REQUIRE_BLAS=1 (.ci/run), where test/backend/blas.test.ts fails instead.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MixtureLinear, mixtureDelta, type MixtureSpec } from '../../src/adapters/mixture.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import {
  EXPERTS_BACKWARD, EXPERTS_FORWARD, gateColumns, hasFusedExperts, ROUTED_BACKWARD, ROUTED_GATE_GRAD, ROUTED_IN, ROUTED_OUT, ROUTED_TOPK_BACKWARD, ROUTED_TOPK_FORWARD,
  useWasmExperts,
} from '../../src/backend/wasm-experts.ts';
import { NARROW_MATMUL, NARROW_MATMUL_GRAD_W, NARROW_MATMUL_GRAD_X, useSimdKernels } from '../../src/backend/wasm-simd.ts';
import { FrozenLinearLayer } from '../../src/model/linear.ts';
import type { ForwardContext } from '../../src/model/types.ts';
import { seeded } from './matmul-helpers.ts';

const { blas } = loadBlas({});

describe('gateColumns', () => {
  // N = 2 rows, E = 2 experts of r = 2 columns, scale 3
  const src = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const gates = Float32Array.from([0.25, 0.75, 1, 0]);

  it('multiplies each expert\'s r columns by scale times its gate', () => {
    const out = new Float32Array(8);
    gateColumns(src, out, gates, 2, 4, 2, 3);
    expect(Array.from(out)).toEqual([0.75, 1.5, 6.75, 9, 15, 18, 0, 0]);
  });

  it('without gates is one expert scaled, and in place with dg = scale · Σ src⊙h per expert', () => {
    const plain = new Float32Array(8);
    gateColumns(src, plain, null, 2, 4, 4, 0.5);
    expect(Array.from(plain)).toEqual([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]);
    const h = Float32Array.from([1, -1, 2, 0, 0, 1, 1, 1]);
    const dg = new Float32Array(4);
    const inPlace = src.slice();
    gateColumns(inPlace, inPlace, gates, 2, 4, 2, 3, h, dg);
    expect(Array.from(dg)).toEqual([3 * (1 - 2), 3 * (6 + 0), 3 * (0 + 6), 3 * (7 + 8)]);
    expect(Array.from(inPlace)).toEqual([0.75, 1.5, 6.75, 9, 15, 18, 0, 0]);
  });
});

describe.skipIf(!blas)('fused experts kernels against the tensor form', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => useWasmExperts(tf, true, blas));

  const N = 37; // not a multiple of anything the kernels block by
  const IN = 24;
  const OUT = 20;
  type Case = [string, number, number, MixtureSpec['routing'], boolean];
  const CASES: Case[] = [
    ['top-2 of 4, rank 3', 4, 3, { strategy: 'topk', topK: 2, topP: 0 }, false],
    ['top-p 0.6 of 3, rank 2', 3, 2, { strategy: 'topp', topK: 0, topP: 0.6 }, false],
    ['dense 3, rank 4, experts on other rows than the router', 3, 4, { strategy: 'dense', topK: 0, topP: 0 }, true],
    ['one expert (plain LoRA), rank 5', 1, 5, { strategy: 'topk', topK: 1, topP: 0 }, true],
  ];

  /** delta and d(Σ delta⊙G)/d(x, A, B, router) with the kernels on or off. */
  function run(fused: boolean, E: number, r: number, routing: MixtureSpec['routing'], otherRows: boolean) {
    useWasmExperts(tf, fused, blas);
    expect(hasFusedExperts(tf)).toBe(fused);
    const spec: MixtureSpec = { experts: E, rank: r, scale: 1.7, routing };
    return tf.tidy(() => {
      const x = seeded([N, IN], 1);
      const A = seeded([IN, E * r], 2);
      const B = seeded([E * r, OUT], 3);
      const W = seeded([IN, E], 4);
      const G = seeded([N, OUT], 5);
      const f = (xs: tf.Tensor, As: tf.Tensor, Bs: tf.Tensor, Ws?: tf.Tensor) => {
        const xd = otherRows ? (tf.mul(xs, tf.linspace(0.5, 1.5, IN)) as tf.Tensor2D) : (xs as tf.Tensor2D);
        const w = { loraA: As as tf.Tensor2D, loraB: Bs as tf.Tensor2D, router: Ws ? (Ws as tf.Tensor2D) : null };
        return tf.sum(tf.mul(mixtureDelta(xs as tf.Tensor2D, xd, w, spec).delta, G));
      };
      // one expert has no router: nothing to differentiate it by
      const { value, grads } = tf.valueAndGrads(f)(E > 1 ? [x, A, B, W] : [x, A, B]);
      const names = ['x', 'A', 'B', 'router'];
      return { value: value.dataSync()[0], grads: Object.fromEntries(grads.map((g, i) => [names[i], g.dataSync() as Float32Array])) };
    });
  }

  it.each(CASES)('%s: the same output and gradients', (_name, E, r, routing, otherRows) => {
    const before = tf.memory().numTensors;
    const want = run(false, E, r, routing, otherRows);
    const got = run(true, E, r, routing, otherRows);
    expect(tf.memory().numTensors).toBe(before);
    expect(got.value).toBeCloseTo(want.value, 4);
    for (const k of E > 1 ? ['x', 'A', 'B', 'router'] : ['x', 'A', 'B']) {
      const g = got.grads[k];
      const w = want.grads[k];
      expect(g.length).toBe(w.length);
      let scale = 0;
      for (const v of w) scale = Math.max(scale, Math.abs(v));
      expect(scale, `${k} gradient is all zero`).toBeGreaterThan(0);
      for (let i = 0; i < w.length; i++) expect(Math.abs(g[i] - w[i]), `${k}[${i}]`).toBeLessThan(1e-5 * Math.max(1, scale));
    }
  });

  it('differentiates weights made in the forward (experts concatenated), which are gone by the backward', () => {
    // tfjs disposes a forward's intermediates before the backward runs, so the op must save them
    const spec: MixtureSpec = { experts: 4, rank: 2, scale: 2, routing: { strategy: 'topk', topK: 2, topP: 0 } };
    const grads = (fused: boolean) => {
      useWasmExperts(tf, fused, blas);
      return tf.tidy(() => {
        const x = seeded([N, IN], 1) as tf.Tensor2D;
        const parts = [seeded([IN, 4], 2), seeded([IN, 4], 3), seeded([4, OUT], 4), seeded([4, OUT], 5), seeded([IN, 4], 6)];
        const f = (A1: tf.Tensor, A2: tf.Tensor, B1: tf.Tensor, B2: tf.Tensor, W: tf.Tensor) => {
          const w = { loraA: tf.concat([A1, A2], 1) as tf.Tensor2D, loraB: tf.concat([B1, B2], 0) as tf.Tensor2D, router: tf.mul(W, 1) as tf.Tensor2D };
          return tf.sum(tf.square(mixtureDelta(x, x, w, spec).delta));
        };
        return tf.grads(f)(parts).map((g) => g.dataSync() as Float32Array);
      });
    };
    const want = grads(false);
    const got = grads(true);
    expect(got).toHaveLength(5);
    got.forEach((g, i) => {
      let scale = 0;
      for (const v of want[i]) scale = Math.max(scale, Math.abs(v));
      expect(scale, `gradient ${i} is all zero`).toBeGreaterThan(0);
      for (let j = 0; j < g.length; j++) expect(Math.abs(g[j] - want[i][j]), `gradient ${i}[${j}]`).toBeLessThan(1e-5 * Math.max(1, scale));
    });
  });

  it('runs as the routed kernels: no expert or router products are left to tfjs', async () => {
    useWasmExperts(tf, true, blas);
    const spec: MixtureSpec = { experts: 4, rank: 2, scale: 2, routing: { strategy: 'topk', topK: 2, topP: 0 } };
    const info = await tf.profile(() => {
      tf.tidy(() => {
        const x = seeded([N, IN], 1) as tf.Tensor2D;
        const vars = [seeded([IN, 8], 2), seeded([8, OUT], 3), seeded([IN, 4], 4)];
        const f = (A: tf.Tensor, B: tf.Tensor, W: tf.Tensor) =>
          tf.sum(mixtureDelta(x, x, { loraA: A as tf.Tensor2D, loraB: B as tf.Tensor2D, router: W as tf.Tensor2D }, spec).delta);
        tf.grads(f)(vars).forEach((g) => g.dataSync());
      });
    });
    const names = info.kernels.map((k) => k.name);
    for (const k of [ROUTED_IN, ROUTED_OUT, ROUTED_GATE_GRAD, ROUTED_BACKWARD]) expect(names.filter((n) => n === k), k).toHaveLength(1);
    // the router's logits ride in A's product and its gradients in the experts' backward: no
    // BatchMatMul, no narrow products, and no Add of two gradients of x
    expect(names.filter((n) => n === 'BatchMatMul' || n === NARROW_MATMUL || n === NARROW_MATMUL_GRAD_W || n === NARROW_MATMUL_GRAD_X || n === 'Add')).toEqual([]);
  });

  it('runs plain LoRA as one kernel each way', async () => {
    useWasmExperts(tf, true, blas);
    const spec: MixtureSpec = { experts: 1, rank: 2, scale: 2, routing: { strategy: 'topk', topK: 1, topP: 0 } };
    const info = await tf.profile(() => {
      tf.tidy(() => {
        const x = seeded([N, IN], 1) as tf.Tensor2D;
        const f = (A: tf.Tensor, B: tf.Tensor) => tf.sum(mixtureDelta(x, x, { loraA: A as tf.Tensor2D, loraB: B as tf.Tensor2D, router: null }, spec).delta);
        tf.grads(f)([seeded([IN, 2], 2), seeded([2, OUT], 3)]).forEach((g) => g.dataSync());
      });
    });
    const names = info.kernels.map((k) => k.name);
    expect([EXPERTS_FORWARD, EXPERTS_BACKWARD].map((k) => names.filter((n) => n === k).length)).toEqual([1, 1]);
    expect(names.filter((n) => n === 'BatchMatMul')).toEqual([]);
  });
});

describe.skipIf(!blas)('a frozen base\'s product inside the fused kernels', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(() => useWasmExperts(tf, true, blas));

  const N = 29;
  const IN = 24;
  const OUT = 20;

  /** MixtureLinear's output and gradients (x, A, B, router) in training, kernels on or off. */
  function layerRun(fused: boolean, E: number, dropout: number) {
    useWasmExperts(tf, fused, blas);
    const variable = (shape: number[], seed: number, trainable = true) => tf.tidy(() => tf.variable(seeded(shape, seed), trainable));
    const kernel = variable([IN, OUT], 6, false);
    const vars = [variable([IN, E * 3], 2), variable([E * 3, OUT], 3), ...(E > 1 ? [variable([IN, E], 4)] : [])];
    const layer = new MixtureLinear('m', new FrozenLinearLayer('m', kernel, null, 'linear'),
      { experts: E, rank: 3, scale: 1.3, routing: { strategy: 'topk', topK: 2, topP: 0 } },
      { loraA: vars[0] as tf.Variable<tf.Rank.R2>, loraB: vars[1] as tf.Variable<tf.Rank.R2>, router: (vars[2] ?? null) as tf.Variable<tf.Rank.R2> | null },
      { dropout, balanceCoef: 0.1, zLossCoef: 0 });
    const x = variable([N, IN], 1);
    const G = seeded([N, OUT], 5);
    const ctx: ForwardContext = { training: true, auxLosses: [], dropoutSeed: { next: () => 77 } };
    const { value, grads } = tf.variableGrads(() => {
      const fit = tf.sum(tf.mul(layer.forward(x as tf.Tensor as tf.Tensor2D, ctx), G));
      return (ctx.auxLosses.length ? tf.add(fit, tf.addN(ctx.auxLosses)) : fit) as tf.Scalar;
    }, [x, ...vars]);
    const out = { value: value.dataSync()[0], grads: [x, ...vars].map((v) => grads[v.name].dataSync() as Float32Array) };
    tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses, kernel, x, G, ...vars]);
    return out;
  }

  it.each([
    ['MoE, no dropout (one dx for base and experts)', 4, 0, true],
    ['MoE, dropout (experts on other rows than the base)', 4, 0.3, true],
    ['LoRA, dropout', 1, 0.3, true],
    // the kernels' copies and gating as JS loops (the threaded build's shared memory takes no SIMD module)
    ['MoE, no dropout, without the SIMD module', 4, 0, false],
    ['MoE, dropout, without the SIMD module', 4, 0.3, false],
  ] as const)('%s: the numbers of the base added outside', (_name, E, dropout, simd) => {
    const before = tf.memory().numTensors;
    const want = layerRun(false, E, dropout);
    useSimdKernels(tf, simd);
    const got = layerRun(true, E, dropout);
    useSimdKernels(tf, true);
    expect(tf.memory().numTensors).toBe(before);
    expect(got.value).toBeCloseTo(want.value, 3);
    got.grads.forEach((g, i) => {
      let scale = 0;
      for (const v of want.grads[i]) scale = Math.max(scale, Math.abs(v));
      expect(scale).toBeGreaterThan(0);
      for (let j = 0; j < g.length; j++) expect(Math.abs(g[j] - want.grads[i][j]), `input ${i} [${j}]`).toBeLessThan(1e-5 * Math.max(1, scale));
    });
  });

  it('runs a training forward with top-k routing and router losses as one kernel each way', async () => {
    useSimdKernels(tf, true);
    const info = await tf.profile(() => {
      layerRun(true, 4, 0.3);
    });
    const names = info.kernels.map((k) => k.name);
    expect([ROUTED_TOPK_FORWARD, ROUTED_TOPK_BACKWARD].map((k) => names.filter((n) => n === k).length)).toEqual([1, 1]);
    expect(names.filter((n) => [ROUTED_IN, ROUTED_OUT, ROUTED_GATE_GRAD, ROUTED_BACKWARD, 'BatchMatMul'].includes(n))).toEqual([]);
  });
});

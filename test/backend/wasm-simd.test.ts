/**
 * hilo's wasm SIMD kernels (src/backend/wasm-simd.ts) against the tensor forms they replace,
 * which are pinned to PyTorch elsewhere (test/train/optim.test.ts, test/model): values and
 * gradients on shapes with SIMD tails, ignored rows, padding masks and extreme values, no leaked
 * tensors, and a module that writes nothing of its own into tfjs's heap.
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { gateColumns } from '../../src/backend/wasm-experts.ts';
import {
  ATTN_SOFTMAX, hasSimdKernel, NARROW_MATMUL, NARROW_MATMUL_GRAD_W, NARROW_MATMUL_GRAD_X, offset, RMS_NORM_SIMD, ROPE, ROUTE_GATES_GRAD_SIMD, ROUTE_TOPK, simdOrNull,
  SOFTMAX_XENT, SWIGLU, heapSumSquares, useSimdKernels,
} from '../../src/backend/wasm-simd.ts';
import { addRouterAuxGrad, gatesGradRows, gatesRows, routerAuxStats, selectRows, softmaxRows } from '../../src/backend/host-router.ts';
import { mulberry32 } from '../../src/rng.ts';
import { halfSwap, ropeInvFreq, ropeTables } from '../../src/model/llama.ts';
import { additiveMask, attentionProbs, gatedActivation, rmsNorm, rotary } from '../../src/model/ops.ts';
import { tokenNll } from '../../src/train/loss.ts';
import { adamwUpdate, stepConstants } from '../../src/train/adamw.ts';
import { clipFactor, globalNormOf } from '../../src/train/clip.ts';
import { ADAMW_KERNEL, SUM_SQUARES_KERNEL } from '../../src/backend/webgpu-adamw.ts';

/** Run `f` with the fused kernels off (the tensor forms), then on; both results as arrays. */
function bothWays<T>(f: () => T): { stock: T; fused: T } {
  useSimdKernels(tf, false);
  const stock = f();
  useSimdKernels(tf, true);
  return { stock, fused: f() };
}

function seededLogits(n: number, v: number, seed: number, scale = 4): tf.Tensor2D {
  const u = mulberry32(seed);
  return tf.tensor2d(Float32Array.from({ length: n * v }, () => (u() - 0.5) * scale), [n, v]);
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  expect(a.length, what).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  expect(worst, `${what}: worst at ${at}: ${a[at]} vs ${b[at]}`).toBeLessThanOrEqual(tol);
}

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => useSimdKernels(tf, true));

describe('the SIMD module', () => {
  it('imports only the memory and has no data segment (it must not write into tfjs\'s heap on its own)', () => {
    const bytes = fs.readFileSync(new URL('../../src/backend/simd/kernels.wasm', import.meta.url));
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    // section ids in order: 11 is Data; sizes are LEB128
    const ids: number[] = [];
    for (let p = 8; p < bytes.length;) {
      ids.push(bytes[p++]);
      let size = 0;
      for (let shift = 0; ; shift += 7) {
        const b = bytes[p++];
        size |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
      p += size;
    }
    expect(ids).toContain(10); // code
    expect(ids).not.toContain(11); // data
  });
});

describe.each([[7, 3], [33, 4099], [64, 4096]])('fused softmax cross-entropy, %i rows x %i', (n, v) => {
  it('is registered on the single-threaded wasm backend', () => {
    expect(hasSimdKernel(tf, SOFTMAX_XENT)).toBe(true);
  });

  it('gives the tensor form\'s loss and gradient, with ignored rows 0', () => {
    const u = mulberry32(n * v);
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 5 === 2 ? -100 : Math.floor(u() * v)));
    const dy = Float32Array.from({ length: n }, () => u() * 2 - 0.5);
    const logits = seededLogits(n, v, 9);
    const before = tf.memory().numTensors;
    const viaGrad = () => {
      const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tokenNll(x as tf.Tensor2D, targets).mul(tf.tensor1d(dy)).sum())(logits));
      const out = Array.from(g.dataSync());
      g.dispose();
      return { nll: tf.tidy(() => Array.from(tokenNll(logits, targets).dataSync())), grad: out };
    };
    const { stock, fused } = bothWays(viaGrad);
    expectClose(fused.nll, stock.nll, 2e-5, 'nll');
    expectClose(fused.grad, stock.grad, 2e-6, 'gradient');
    for (let i = 0; i < n; i++) if (targets[i] < 0) expect(fused.nll[i]).toBe(0);
    logits.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
  });
});

describe('fused softmax cross-entropy at the extremes', () => {
  it('keeps the loss exact where the label probability underflows, and stays finite for huge logits', () => {
    const targets = Int32Array.from([1, 2, 0, 4]);
    const rows = [[50, -50, 0, 1, 2], [0, 0, 80, -80, 3], [1e4, -1e4, 0, 5, 5], [-3e3, -3e3, -3e3, -3e3, -2e3]];
    const { stock, fused } = bothWays(() => tf.tidy(() => {
      const l = tf.tensor2d(rows);
      return { nll: Array.from(tokenNll(l, targets).dataSync()), grad: Array.from(tf.grad((x: tf.Tensor) => tokenNll(x as tf.Tensor2D, targets).sum())(l).dataSync()) };
    }));
    expectClose(fused.nll, stock.nll, 1e-3, 'nll');
    expect(fused.nll[0]).toBeCloseTo(100, 3);
    expectClose(fused.grad, stock.grad, 1e-6, 'gradient');
  });
});

function seeded(shape: number[], seed: number, scale = 2): tf.Tensor {
  const u = mulberry32(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (u() - 0.5) * scale), shape);
}

/**
 * f's value and the gradients of Σ f(xs)·dy with respect to each x, with the kernels off and on;
 * everything made is freed.
 */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], seed: number) {
  return bothWays(() => tf.tidy(() => {
    const y = f(...xs);
    const dy = seeded(y.shape, seed);
    const grads = tf.grads((...a: tf.Tensor[]) => f(...a).mul(dy).sum())(xs);
    return { value: Array.from(y.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
  }));
}

function expectSame(r: ReturnType<typeof valueAndGrads>, tol: number): void {
  expectClose(r.fused.value, r.stock.value, tol, 'value');
  r.fused.grads.forEach((g, i) => expectClose(g, r.stock.grads[i], tol, `gradient ${i}`));
}

describe('fused SwiGLU (silu(gate) * up)', () => {
  it.each([[3, 5], [16, 688]])('matches the tensor form on [%i, %i], gradients to gate and up', (n, i) => {
    expect(hasSimdKernel(tf, SWIGLU)).toBe(true);
    const [g, u] = [seeded([n, i], 1, 12), seeded([n, i], 2)];
    const before = tf.memory().numTensors;
    expectSame(valueAndGrads((a, b) => gatedActivation('silu', a as tf.Tensor2D, b as tf.Tensor2D), [g, u], 3), 2e-6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([g, u]);
  });
});

describe('fused attention probabilities (softmax(scale·s + mask))', () => {
  // left padding masks every key of the first queries' rows: the kernel's masked-tail skip must
  // fall back to the whole row there, as the tensor form's softmax does
  const PADDING: Record<string, number[][] | null> = {
    'a padding mask per batch row': [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]],
    'left padding (rows with every key masked)': [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]],
    'one causal mask for the batch': null,
  };
  it.each(Object.keys(PADDING))('match the tensor form with %s', (name) => {
    const padded = PADDING[name] !== null;
    expect(hasSimdKernel(tf, ATTN_SOFTMAX)).toBe(true);
    const [B, H, T] = [2, 3, 7];
    const s = seeded([B, H, T, T], 4, 6);
    const mask = tf.tidy(() => additiveMask(B, T, padded ? tf.tensor2d(PADDING[name]!) : undefined));
    expect(mask.shape[0]).toBe(padded ? B : 1);
    const before = tf.memory().numTensors;
    expectSame(valueAndGrads((x) => attentionProbs(x as tf.Tensor4D, mask, 0.35), [s], 5), 2e-6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([s, mask]);
  });

  it('give exactly 0 where masked and never a denormal (Intel cores slow ~40x on products with them)', () => {
    // 128 keys, most far below the row's max: e^-87 over a sum > 1 is a denormal unless flushed.
    const T = 128;
    const s = tf.tidy(() => tf.mul(seeded([1, 2, T, T], 9, 1), 60)) as tf.Tensor4D;
    const mask = additiveMask(1, T);
    const p = tf.tidy(() => attentionProbs(s, mask, 1));
    const v = p.dataSync();
    const m = mask.dataSync();
    let tiny = 0;
    let maskedNonZero = 0;
    for (let i = 0; i < v.length; i++) {
      if (v[i] !== 0 && Math.abs(v[i]) < 1.1754944e-38) tiny++;
      if (m[i % (T * T)] < 0 && v[i] !== 0) maskedNonZero++;
    }
    expect({ tiny, maskedNonZero }).toEqual({ tiny: 0, maskedNonZero: 0 });
    // every row still sums to 1
    const sums = tf.tidy(() => tf.sum(p, -1).dataSync());
    for (const x of sums) expect(x).toBeCloseTo(1, 5);
    tf.dispose([s, mask, p]);
  });
});

describe('fused RMSNorm with a frozen weight', () => {
  it.each([[5, 7], [32, 256]])('matches the tensor form on [%i, %i], gradient to x', (n, h) => {
    expect(hasSimdKernel(tf, RMS_NORM_SIMD)).toBe(true);
    const x = seeded([n, h], 6, 3);
    const w = seeded([h], 7) as tf.Tensor1D;
    const before = tf.memory().numTensors;
    expectSame(valueAndGrads((a) => rmsNorm(a as tf.Tensor2D, w, 1e-5), [x], 8), 5e-6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
  });
});

describe('fused rotary embedding', () => {
  it.each([['positions shared by the batch', 1, 8], ['a table row per (batch, position)', 2, 8], ['a head size with a SIMD tail', 1, 6]] as const)('matches the tensor form with %s', (_, tableBatch, d) => {
    expect(hasSimdKernel(tf, ROPE)).toBe(true);
    const [B, T, heads] = [2, 5, 3];
    const { cos, sinRot } = ropeTables(ropeInvFreq({ headDim: d, ropeTheta: 1e4, ropeScaling: null }), 2 * T);
    // per-batch tables: batch row 1 at positions 3.., as explicit position ids give
    const rows = (start: number) => [cos, sinRot].map((tab) => tab.slice(start * d, (start + T) * d));
    const tabs = tableBatch === 1 ? rows(0) : [0, 1].map((i) => { const [a, b] = [rows(0), rows(3)]; return Float32Array.from([...a[i], ...b[i]]); });
    const [c, sn] = tabs.map((t) => tf.tensor4d(t, [tableBatch, T, 1, d]));
    const swap = tf.tensor2d(halfSwap(d), [d, d]);
    const x = seeded([B, T, heads, d], 9);
    const before = tf.memory().numTensors;
    expectSame(valueAndGrads((a) => rotary(a as tf.Tensor4D, c, sn, swap), [x], 10), 2e-6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([c, sn, swap, x]);
  });
});

describe('narrow products (router logits and their gradients)', () => {
  it.each([[37, 24, 4], [16, 688, 3], [5, 9, 8], [3, 6, 1]])('match tfjs\'s matMul for [%i, %i] x [%i experts]', (n, k, e) => {
    const x = seeded([n, k], 11);
    const w = seeded([k, e], 12);
    const before = tf.memory().numTensors;
    const fused = tf.tidy(() => {
      const d = seeded([n, e], 13);
      const y = tf.engine().runKernel(NARROW_MATMUL, { x, w }) as tf.Tensor;
      const dx = tf.engine().runKernel(NARROW_MATMUL_GRAD_X, { d, w }) as tf.Tensor;
      const dw = tf.engine().runKernel(NARROW_MATMUL_GRAD_W, { x, d }) as tf.Tensor;
      return [y, dx, dw].map((t) => Array.from(t.dataSync()));
    });
    const stock = tf.tidy(() => {
      const d = seeded([n, e], 13);
      return [tf.matMul(x, w), tf.matMul(d, w, false, true), tf.matMul(x, d, true, false)].map((t) => Array.from(t.dataSync()));
    });
    ['x·w', 'd·wᵀ', 'xᵀ·d'].forEach((what, i) => expectClose(fused[i], stock[i], 2e-5, what));
    expect(tf.memory().numTensors).toBe(before); // the transposed scratch is freed too
    tf.dispose([x, w]);
  });
});

describe('the SIMD gating (gate_columns) against wasm-experts\' JS gateColumns', () => {
  // pad: src and h as the first E·r columns of wider rows, out of rows of its own width (the
  // fused routed kernels gate [h | l] in place)
  it.each([[9, 4, 3, true, 0], [16, 2, 8, true, 0], [7, 3, 5, false, 0], [9, 4, 8, true, 4], [5, 3, 5, true, 3]] as const)('%i rows, %i experts of rank %i, gates %s, rows padded by %i', (N, E, r, withGates, pad) => {
    const backend = tf.backend() as unknown as BackendWasm;
    const simd = simdOrNull(backend)!;
    const ER = E * r;
    const [src, h] = [seeded([N, ER + pad], 14), seeded([N, ER + pad], 15)];
    const block = (t: tf.Tensor) => tf.tidy(() => tf.slice(t, [0, 0], [N, ER]).dataSync() as Float32Array);
    const gates = withGates ? tf.softmax(seeded([N, E], 16)) : null;
    const out = tf.fill([N, ER + 2 * pad], 7);
    const dg = tf.zeros([N, E]);
    const at = (t: tf.Tensor) => offset(backend, t as unknown as tf.TensorInfo);
    const scale = 16 / 6; // not a float32: the gate's scale is rounded as the JS loop rounds it
    simd.gate_columns(at(src), ER + pad, at(out), ER + 2 * pad, gates ? at(gates) : 0, N, ER, r, scale, at(h), at(dg));
    const want = new Float32Array(N * ER);
    const wantDg = new Float32Array(N * E);
    gateColumns(block(src), want, gates ? (gates.dataSync() as Float32Array) : null, N, ER, r, scale, block(h), wantDg);
    expect(Array.from(block(out))).toEqual(Array.from(want));
    // the padding is left alone
    const o = out.dataSync();
    for (let n = 0; n < N; n++) for (let j = ER; j < ER + 2 * pad; j++) expect(o[n * (ER + 2 * pad) + j]).toBe(7);
    expectClose(dg.dataSync(), wantDg, 1e-5, 'dg');
    simd.gate_columns(at(src), ER + pad, at(out), ER + 2 * pad, gates ? at(gates) : 0, N, ER, r, scale, 0, 0); // forward: no dg
    expect(Array.from(block(out))).toEqual(Array.from(want));
    tf.dispose([src, h, out, dg, ...(gates ? [gates] : [])]);
  });
});

describe('the SIMD routing (route_topk, gates_grad) against routing.ts\'s JS rows', () => {
  it.each([[1, 4], [2, 4], [3, 4], [4, 4], [3, 5], [1, 1]] as const)('top-%i of %i experts, with tied logits', (k, E) => {
    const N = 23;
    const u = mulberry32(21);
    // ties go to the lower index, as torch.topk: rows tie their first two experts, all of them,
    // or the second and the last (4 experts run a vector path of their own)
    const lv = Float32Array.from({ length: N * E }, (_, i) => (i % (4 * E) === 1 ? 0 : (u() - 0.5) * 6));
    for (let n = 0; n < N; n += 4) lv[n * E + 1] = lv[n * E];
    for (let n = 1; n < N; n += 4) lv.fill(lv[n * E], n * E, (n + 1) * E);
    for (let n = 2; n < N; n += 4) lv[n * E + E - 1] = lv[n * E + Math.min(1, E - 1)];
    const l = tf.tensor2d(lv, [N, E]);
    const [p, m, g, total] = tf.engine().runKernel(ROUTE_TOPK, { logits: l }, { k }) as tf.Tensor[];
    const want = { m: selectRows(lv, E, { strategy: 'topk', topK: k, topP: 0 }), p: softmaxRows(lv, E) };
    const { gates, total: wantTotal } = gatesRows(want.p, want.m, E);
    expect(Array.from(m.dataSync())).toEqual(Array.from(want.m));
    expectClose(p.dataSync(), want.p, 1e-6, 'p');
    expectClose(g.dataSync(), gates, 1e-6, 'gates');
    expectClose(total.dataSync(), wantTotal, 1e-6, 'total');
    const dg = seeded([N, E], 22);
    const extra = seeded([N, E], 23);
    const dl = tf.engine().runKernel(ROUTE_GATES_GRAD_SIMD, { dg, p, gates: g, m, total, extra }) as tf.Tensor;
    const wantDl = gatesGradRows(dg.dataSync(), want.p, gates, want.m, wantTotal, E).map((v, i) => v + extra.dataSync()[i]);
    expectClose(dl.dataSync(), wantDl, 1e-5, 'dl');
    tf.dispose([l, p, m, g, total, dg, extra, dl]);
  });
});

describe('the SIMD router losses (router_aux_stats, router_aux_grad) against routing.ts\'s JS', () => {
  type Case = [string, number, number, number, boolean];
  const CASES: Case[] = [
    ['balance, 4 experts', 4, 0.3, 0, false],
    ['balance and z-loss, token weights, 4 experts', 4, 0.5, 0.1, true],
    ['z-loss alone, 3 experts', 3, 0, 0.2, true],
    ['balance, 5 experts', 5, 0.01, 0, false],
  ];
  it.each(CASES)('%s', (_name, E, cb, cz, weighted) => {
    const backend = tf.backend() as unknown as BackendWasm;
    const simd = simdOrNull(backend)!;
    const at = (t: tf.Tensor) => offset(backend, t as unknown as tf.TensorInfo);
    const N = 29;
    const pad = 3; // the logits as the last E columns of wider rows, as [h | l] holds them
    const hl = seeded([N, pad + E], 61);
    const lv = tf.tidy(() => tf.slice(hl, [0, pad], [N, E]).dataSync() as Float32Array);
    const m = selectRows(lv, E, { strategy: 'topk', topK: 2, topP: 0 });
    const p = softmaxRows(lv, E);
    const u = mulberry32(62);
    const w = weighted ? Float32Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 0.5 + u())) : undefined;
    const [mt, pt, wt] = [tf.tensor(m), tf.tensor(p), tf.tensor(w ?? [0])];
    const work = tf.zeros([4 * E]);
    const stats = tf.zeros([E + 2]);
    simd.router_aux_stats(at(hl) + 4 * pad, pad + E, at(mt), at(pt), w ? at(wt) : 0, N, E, cb, cz, at(work), at(stats));
    const want = routerAuxStats(lv, m, p, E, cb, cz, w);
    const got = stats.dataSync();
    expectClose(got.slice(0, E), want.fractions, 1e-7, 'fractions');
    expect(Math.abs(got[E] - want.value)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want.value)));
    expect(want.value).toBeGreaterThan(0);
    expect(got[E + 1]).toBeCloseTo(want.W, 5);
    // the gradient for dy = 0.7, added into the dl block of [dh | dl] rows
    const dhl = seeded([N, pad + E], 63);
    const before = dhl.dataSync().slice();
    simd.router_aux_grad(at(dhl) + 4 * pad, pad + E, at(hl) + 4 * pad, pad + E, at(pt), w ? at(wt) : 0, at(stats), N, E, cb, cz, 0.7);
    const wantDl = new Float32Array(N * E);
    addRouterAuxGrad(wantDl, p, want, 0.7, w);
    const after = dhl.dataSync();
    const largest = wantDl.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    expect(largest).toBeGreaterThan(1e-5);
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < pad; j++) expect(after[n * (pad + E) + j]).toBe(before[n * (pad + E) + j]); // dh untouched
      for (let e = 0; e < E; e++) {
        const i = n * (pad + E) + pad + e;
        // the added gradient, read back as a difference of floats near 1: their rounding
        expect(Math.abs(after[i] - before[i] - wantDl[n * E + e]), `dl[${n}, ${e}]`).toBeLessThan(1e-5 * largest + 2e-7);
      }
    }
    tf.dispose([hl, mt, pt, wt, work, stats, dhl]);
  });
});

describe('the 4-expert routed passes (routed_forward4, routed_backward4) against the passes they fuse', () => {
  // [name, top-k, rank, balance, z-loss, token weights, dy]; rows of [h | l] padded past the logits
  type Case = [string, number, number, number, number, boolean, number];
  const CASES: Case[] = [
    ['top-2, rank 8, balance', 2, 8, 0.01, 0, false, 1],
    ['top-1, rank 4, balance and z-loss, token weights', 1, 4, 0.3, 0.1, true, 0.7],
    ['top-3, rank 12, z-loss alone, no losses\' gradient', 3, 12, 0, 0.2, false, 0],
  ];
  it.each(CASES)('%s: the same bits', (_name, k, r, cb, cz, weighted, dy) => {
    const backend = tf.backend() as unknown as BackendWasm;
    const simd = simdOrNull(backend)!;
    const at = (t: tf.Tensor) => offset(backend, t as unknown as tf.TensorInfo);
    const [N, E, pad] = [37, 4, 3];
    const ER = E * r;
    const C = ER + E + pad;
    const scale = 16 / r;
    const hl = seeded([N, C], 71);
    const u = mulberry32(72);
    const w = weighted ? tf.tensor1d(Float32Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 0.5 + u()))) : null;
    const dH = seeded([N, C], 73); // dD·Bᵀ in the first E·r columns; the rest is overwritten
    /** p, m, gates, total, gated, stats, then [dh | dl] */
    const run = (fused: boolean) => {
      const [p, m, g, total] = [tf.zeros([N, E]), tf.zeros([N, E]), tf.zeros([N, E]), tf.zeros([N])];
      const [gated, work, stats, dg] = [tf.zeros([N, ER]), tf.zeros([4 * E]), tf.zeros([E + 2]), tf.zeros([N, E])];
      const own = tf.tidy(() => tf.add(dH, 0)); // a heap buffer of its own, written in place below
      const l = at(hl) + 4 * ER;
      if (fused) {
        simd.routed_forward4(at(hl), C, N, r, k, scale, at(gated), at(p), at(m), at(g), at(total), w ? at(w) : 0, cb, cz, at(work), at(stats));
        simd.routed_backward4(at(own), C, at(hl), N, r, scale, at(p), at(m), at(g), at(total), w ? at(w) : 0, at(stats), cb, cz, dy);
      } else {
        simd.route_topk(l, C, N, E, k, at(p), at(m), at(g), at(total));
        simd.router_aux_stats(l, C, at(m), at(p), w ? at(w) : 0, N, E, cb, cz, at(work), at(stats));
        simd.gate_columns(at(hl), C, at(gated), ER, at(g), N, ER, r, scale, 0, 0);
        simd.gate_columns(at(own), C, at(own), C, at(g), N, ER, r, scale, at(hl), at(dg));
        simd.gates_grad(at(dg), at(p), at(g), at(m), at(total), 0, N, E, at(own) + 4 * ER, C);
        if (dy) simd.router_aux_grad(at(own) + 4 * ER, C, l, C, at(p), w ? at(w) : 0, at(stats), N, E, cb, cz, dy);
      }
      const out = [p, m, g, total, gated, stats, own].map((t) => Array.from(t.dataSync()));
      tf.dispose([p, m, g, total, gated, work, stats, dg, own]);
      return out;
    };
    const fused = run(true);
    const separate = run(false);
    ['p', 'm', 'gates', 'total', 'gated', 'stats', '[dh | dl]'].forEach((what, i) => expect(fused[i], what).toEqual(separate[i]));
    // and they did something: k experts a row, a loss, a gradient in dl
    expect(fused[1].reduce((a, b) => a + b, 0)).toBe(N * k);
    expect(fused[5][E]).toBeGreaterThan(0);
    const dl = fused[6].filter((_, i) => i % C >= ER && i % C < ER + E);
    expect(dl.some((v) => v !== 0)).toBe(true);
    tf.dispose([hl, dH, ...(w ? [w] : [])]);
  });
});

describe('the optimizer\'s kernels (HiloAdamW, HiloSumSquares) against adamw.ts\'s and clip.ts\'s JS', () => {
  it.each([1, 7, 4099])('AdamW on %i values, 3 steps with a clip scale, as adamwUpdate (in doubles)', (n) => {
    const [p0, m0, v0] = [seeded([n], 31), tf.zeros([n]), tf.zeros([n])];
    const want = { p: Float32Array.from(p0.dataSync()), m: new Float32Array(n), v: new Float32Array(n) };
    let [p, m, v] = [p0, m0, v0];
    for (let step = 1; step <= 3; step++) {
      const g = seeded([n], 40 + step);
      const h = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step, gradScale: step === 2 ? 0.25 : 1 };
      const attrs = { beta1: h.beta1, beta2: h.beta2, eps: h.eps, gradScale: h.gradScale, ...stepConstants(h) };
      const out = tf.engine().runKernel(ADAMW_KERNEL, { p, g, m, v }, attrs) as tf.Tensor[];
      adamwUpdate(want.p, g.dataSync() as Float32Array, want.m, want.v, h);
      tf.dispose([p, m, v, g]);
      [p, m, v] = out;
    }
    expectClose(m.dataSync(), want.m, 1e-6, 'm');
    expectClose(v.dataSync(), want.v, 1e-7, 'v');
    expectClose(p.dataSync(), want.p, 2e-6, 'p');
    tf.dispose([p, m, v]);
  });

  it('heapSumSquares sums many tensors where they lie, with no kernel, as globalNormOf does; null off the SIMD module or for int32', async () => {
    const xs = [seeded([7], 51), seeded([33, 5], 52), seeded([4099], 53)];
    const want = globalNormOf(xs.map((x) => x.dataSync())) ** 2;
    const info = await tf.profile(() => {
      const got = heapSumSquares(tf, xs)!;
      expect(Math.abs(got - want) / want).toBeLessThan(1e-12);
    });
    expect(info.kernels).toEqual([]);
    const ints = tf.tensor1d([1, 2], 'int32');
    expect(heapSumSquares(tf, [xs[0], ints])).toBeNull();
    useSimdKernels(tf, false);
    expect(heapSumSquares(tf, xs)).toBeNull();
    useSimdKernels(tf, true);
    // the clip's norm takes it: clipFactor runs no Σ g² kernel on wasm
    const grads = new Map(xs.map((x, i) => [`g${i}`, x] as const));
    const clip = await tf.profile(async () => {
      const { norm } = await clipFactor(grads, 1);
      expect(norm).toBeCloseTo(Math.sqrt(want), 5);
    });
    expect(clip.kernels.map((k) => k.name)).not.toContain(SUM_SQUARES_KERNEL);
    tf.dispose([...xs, ints]);
  });

  it.each([1, 7, 4099])('Σ x² of %i values, summed in double as globalNormOf', (n) => {
    const x = seeded([n], 50);
    const got = tf.engine().runKernel(SUM_SQUARES_KERNEL, { x }) as tf.Scalar;
    const want = globalNormOf([x.dataSync()]) ** 2;
    expect(Math.abs(got.dataSync()[0] - want) / want).toBeLessThan(1e-6);
    tf.dispose([x, got]);
  });
});

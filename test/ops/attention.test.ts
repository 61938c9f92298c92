/**
 * The attention ops (src/ops/attention.ts): the grouped attention core, its probabilities alone,
 * and the rotary embedding. Every registered implementation against the reference on the same
 * backend, forward and every input's gradient, at stories260K's bench shape (8 x 128 tokens,
 * 8 heads on 4 kv heads of 8) and odd ones (padding on either side, a past, one token, odd T,
 * Qwen2.5-0.5B's 7 query heads a kv head of 64); and the reference core against attention
 * written out per head in doubles.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { halfSwap, ropeTables } from '../../src/model/llama.ts';
import { additiveMask } from '../../src/model/ops.ts';
import { attentionOp, attentionProbs, groupedAttention, rotary, rotaryOp } from '../../src/ops/attention.ts';
import { expectClose, host, PARITY_BACKENDS, seeded, useBackend, valueAndGrads, worst } from './parity.ts';

/** [B, T, heads, kv heads, d, past, padded keys of row 0: its last n, or with -n its first n]. */
type Case = [number, number, number, number, number, number, number];
const CASES: Case[] = [
  [8, 128, 8, 4, 8, 0, 0], // the bench
  [3, 7, 6, 2, 5, 0, 2], // grouped, odd sizes, right padding
  [2, 1, 4, 4, 4, 5, 1], // one new token over a past of 5, one padded key
  [1, 9, 3, 3, 6, 2, 0],
  [1, 1, 2, 1, 8, 0, 0], // one query, one key
  [2, 37, 4, 2, 16, 0, -5], // odd T, left padding: row 0's first 5 queries see no key at all
  [2, 37, 14, 2, 64, 0, 3], // Qwen2.5-0.5B's heads: 7 query heads a kv head of 64
  [1, 70, 2, 2, 128, 0, -2], // Llama-2-7B's head dim, more keys than a tile and rows than a workgroup
];

/** Whether key s of batch row r is padding. */
const padded = (r: number, s: number, keys: number, pad: number) => r === 0 && (pad >= 0 ? s >= keys - pad : s < -pad);

/** q, k, v and the additive mask of a case (the mask as the model makes it). */
function inputs([b, t, h, kv, d, past, pad]: Case) {
  const keys = past + t;
  const q = tf.tensor4d(host(b * t * h * d, 11, 2), [b, t, h, d]);
  const k = tf.tensor4d(host(b * keys * kv * d, 12, 2), [b, keys, kv, d]);
  const v = tf.tensor4d(host(b * keys * kv * d, 13), [b, keys, kv, d]);
  const allowed = Array.from({ length: b * keys }, (_, i) => (padded(Math.floor(i / keys), i % keys, keys, pad) ? 0 : 1));
  const mask = tf.tidy(() => additiveMask(b, t, tf.tensor2d(allowed, [b, keys]), past));
  return { q, k, v, mask };
}

/**
 * Attention per batch row, head and query in doubles: softmax over allowed keys of scale·q·k, then
 * Σ p·v; a query that may see no key gets the mean of every v, as the model's −1e9 mask makes
 * all its scores equal in float32.
 */
function attentionJs([b, t, h, kv, d, past, pad]: Case, scale: number): Float64Array {
  const keys = past + t;
  const [q, k, v] = [host(b * t * h * d, 11, 2), host(b * keys * kv * d, 12, 2), host(b * keys * kv * d, 13)];
  const out = new Float64Array(b * t * h * d);
  for (let r = 0; r < b; r++) {
    for (let hh = 0; hh < h; hh++) {
      const g = Math.floor(hh / (h / kv));
      for (let i = 0; i < t; i++) {
        const allowed = Array.from({ length: keys }, (_, s) => s <= past + i && !padded(r, s, keys, pad));
        const none = !allowed.some((ok) => ok);
        const logits = allowed.map((ok, s) => {
          if (none) return 0;
          if (!ok) return -Infinity;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[((r * t + i) * h + hh) * d + c] * k[((r * keys + s) * kv + g) * d + c];
          return scale * dot;
        });
        const m = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let s = 0; s < keys; s++) acc += (e[s] / z) * v[((r * keys + s) * kv + g) * d + c];
          out[((r * t + i) * h + hh) * d + c] = acc;
        }
      }
    }
  }
  return out;
}

describe.each(['cpu', ...PARITY_BACKENDS])('attention ops on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('registers its versions where it has them (wasm: the SIMD softmax and rotation; webgpu: the tiled core)', () => {
    expect(attentionOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
    expect(rotaryOp.registered(backend) !== undefined).toBe(backend === 'wasm');
  });

  it.each(CASES)('core B=%i T=%i heads %i on %i kv of %i, past %i, %i padded: every implementation as the reference, dq dk dv too', async (...c) => {
    const { q, k, v, mask } = inputs(c);
    const scale = c[4] ** -0.5;
    const run = (impl = attentionOp.reference) =>
      valueAndGrads((a, b, d) => groupedAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D, mask, scale, impl), [q, k, v]);
    const want = await run();
    if (backend === 'cpu') expectClose(want.slice(0, 1), [Float32Array.from(attentionJs(c, scale))], 1e-5, ['reference output']);
    const fast = attentionOp.registered(backend);
    if (fast) expectClose(await run(fast), want, 1e-5, ['out', 'dq', 'dk', 'dv']);
    tf.dispose([q, k, v, mask]);
  });

  it.skipIf(backend !== 'webgpu')('core with queries whose every key is −inf: zeros and zero gradients there (the reference gives NaN), the other rows as the reference', async () => {
    const q = seeded([1, 3, 2, 4], 21) as tf.Tensor4D;
    const [k, v] = [seeded([1, 3, 1, 4], 22) as tf.Tensor4D, seeded([1, 3, 1, 4], 23) as tf.Tensor4D];
    const mask = tf.tensor4d([-Infinity, -Infinity, -Infinity, 0, -Infinity, -Infinity, 0, 0, -Infinity], [1, 1, 3, 3]); // query 0 sees nothing
    const run = (impl = attentionOp.reference) =>
      valueAndGrads((a, b, d) => groupedAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D, mask, 0.5, impl), [q, k, v]);
    const [want, got] = [await run(), await run(attentionOp.registered(backend))];
    expect(want[0].subarray(0, 8).every(Number.isNaN)).toBe(true);
    expect(got[0].subarray(0, 8).every((x) => x === 0)).toBe(true); // query 0, both heads
    expect(got[1].subarray(0, 8).every((x) => x === 0)).toBe(true); // its dq
    expect(worst(got[0].subarray(8), want[0].subarray(8))).toBeLessThan(1e-5);
    for (const g of got.slice(1)) expect(g.every(Number.isFinite)).toBe(true);
    tf.dispose([q, k, v, mask]);
  });

  it.each(CASES)('probabilities B=%i T=%i heads %i on %i kv of %i, past %i, %i padded: as the reference, and their gradient', async (...c) => {
    const [b, t, h, , , past] = c;
    const { q, k, v, mask } = inputs(c);
    const s = tf.tensor4d(host(b * h * t * (past + t), 14, 4), [b, h, t, past + t]);
    const run = (impl = attentionOp.reference) => valueAndGrads((x) => attentionProbs(x as tf.Tensor4D, mask, 0.35, impl), [s]);
    const want = await run();
    const rows = want[0].length / (past + t);
    for (let r = 0; r < rows; r += Math.max(1, Math.floor(rows / 17))) {
      const sum = want[0].subarray(r * (past + t), (r + 1) * (past + t)).reduce((a, x) => a + x, 0);
      expect(Math.abs(sum - 1)).toBeLessThan(1e-5); // each query's probabilities sum to 1
    }
    const fast = attentionOp.registered(backend);
    if (fast) expectClose(await run(fast), want, 2e-6, ['p', 'ds']);
    tf.dispose([q, k, v, mask, s]);
  });

  it.each([[8, 128, 8, 8, false], [8, 128, 4, 8, false], [2, 5, 3, 6, true], [1, 1, 2, 4, false]] as const)(
    'rotary x [%i, %i, %i heads, %i], per-batch tables %s: every implementation as the reference, dx too', async (b, t, h, d, perBatch) => {
      const invFreq = Float32Array.from({ length: d / 2 }, (_, i) => 10000 ** (-(2 * i) / d));
      const { cos, sinRot } = ropeTables(invFreq, t + 3);
      // tables for positions 0..t-1, or per batch row from offset r (left padding shifts them)
      const rows = perBatch ? b : 1;
      const pick = (table: Float32Array) => {
        const out = new Float32Array(rows * t * d);
        for (let r = 0; r < rows; r++) out.set(table.subarray(r * d, (r + t) * d), r * t * d); // row r: positions r..r+t-1
        return tf.tensor4d(out, [rows, t, 1, d]);
      };
      const [c, sn] = [pick(cos), pick(sinRot)];
      const swap = tf.tensor2d(halfSwap(d), [d, d]);
      const x = tf.tensor4d(host(b * t * h * d, 15, 2), [b, t, h, d]);
      const run = (impl = rotaryOp.reference) => valueAndGrads((a) => rotary(a as tf.Tensor4D, c, sn, swap, impl), [x]);
      const want = await run();
      // rotation keeps each pair's length: |(x_i, x_{i+d/2})| before and after
      const xs = host(b * t * h * d, 15, 2);
      let stretch = 0;
      for (let i = 0; i < xs.length; i += d) {
        for (let j = 0; j < d / 2; j++) stretch = Math.max(stretch, Math.abs(Math.hypot(want[0][i + j], want[0][i + j + d / 2]) - Math.hypot(xs[i + j], xs[i + j + d / 2])));
      }
      expect(stretch).toBeLessThan(1e-5);
      if (perBatch) expect(worst(want[0].subarray(0, h * d), xs.subarray(0, h * d))).toBe(0); // row 0, position 0: angle 0
      const fast = rotaryOp.registered(backend);
      if (fast) expectClose(await run(fast), want, 2e-6, ['y', 'dx']);
      tf.dispose([c, sn, swap, x]);
    });
});

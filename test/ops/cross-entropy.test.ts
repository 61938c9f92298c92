/**
 * The token-nll op (src/ops/cross-entropy.ts): every registered implementation against the
 * reference on the same backend, the per-token NLL (outside a tape and under one) and the
 * logits' gradient, at stories260K's bench shape (8·128 tokens, vocabulary 512) and odd ones
 * with ignored labels; the reference against logsumexp − label logit in doubles. The stored-head
 * op (head product and token-nll as one) likewise: every registration against the reference
 * (chunked rows through frozenLinear) for each stored dtype, with blocks of the vocabulary that
 * do not divide it, and with the label in the first, a middle and the last block.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import { wasmStoredHeadNll } from '../../src/backend/wasm-head-nll.ts';
import { CHUNK_LOGIT_BYTES, chunkedTokenNll, chunkRows, IGNORE_INDEX, referenceStoredHeadNll, storedHeadNll, storedHeadNllOp, tokenNll, tokenNllOp } from '../../src/ops/cross-entropy.ts';
import { encodeShared, STORED_DTYPES, type StoredMatrix } from '../../src/ops/stored.ts';
import { expectClose, host, PARITY_BACKENDS, useBackend, valueAndGrads, values } from './parity.ts';

/**
 * [N, V, every k-th label ignored (0: none), logits' spread, their offset]: the bench, odd and
 * tiny vocabularies, one row; logits near 1000 (a softmax that skips its max shift overflows) and
 * spread ±200 (most exps underflow to 0).
 */
const CASES: Array<[number, number, number, number, number]> = [
  [1024, 512, 0, 6, 0], [7, 33, 3, 6, 0], [1, 4099, 0, 6, 0], [5, 2, 2, 6, 0], [3, 37, 2, 6, 0], [6, 1031, 4, 6, 1000], [4, 37, 3, 200, 0],
];

/**
 * Float32 implementations sit within 2e-6 of the doubles, or, at large logits, of one ulp of
 * their magnitude: an NLL taken as lse − l[t] carries lse's rounding.
 */
const tolerance = (scale: number, offset: number) => Math.max(2e-6, 2 ** -22 * (scale + Math.abs(offset)));

const targetsOf = (n: number, v: number, skip: number) =>
  Int32Array.from({ length: n }, (_, i) => (skip && i % skip === 1 ? IGNORE_INDEX : (i * 7919 + 3) % v));

/** NLL and d(Σ dy·NLL)/dlogits in doubles. */
function nllJs(l: Float32Array, y: Int32Array, n: number, v: number, dy: Float32Array): [Float64Array, Float64Array] {
  const nll = new Float64Array(n);
  const d = new Float64Array(n * v);
  for (let i = 0; i < n; i++) {
    if (y[i] === IGNORE_INDEX) continue;
    const row = l.subarray(i * v, (i + 1) * v);
    const m = Math.max(...row);
    const z = row.reduce((a, x) => a + Math.exp(x - m), 0);
    nll[i] = m + Math.log(z) - row[y[i]];
    for (let j = 0; j < v; j++) d[i * v + j] = dy[i] * (Math.exp(row[j] - m) / z - (j === y[i] ? 1 : 0));
  }
  return [nll, d];
}

describe.each(['cpu', ...PARITY_BACKENDS])('token-nll on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('is registered where the backend has a fused kernel (wasm: the SIMD module; webgpu: a GPU program each way)', () => {
    expect(tokenNllOp.registered(backend) !== undefined).toBe(backend !== 'cpu');
  });

  it.each(CASES)('N=%i V=%i, every %i-th label ignored (0: none), logits ±%i around %i: every implementation as the reference, the reference as the formula, dlogits', async (n, v, skip, scale, offset) => {
    const la = host(n * v, 31, scale).map((x) => x + offset);
    const logits = tf.tensor2d(la, [n, v]);
    const y = targetsOf(n, v, skip);
    const run = (impl = tokenNllOp.reference) => valueAndGrads((l) => tokenNll(l as tf.Tensor2D, y, impl), [logits]);
    const want = await run();
    const tol = tolerance(scale, offset);
    expectClose(want, nllJs(la, y, n, v, values(n, 99)).map((a) => Float32Array.from(a)), tol, ['reference nll', 'reference dlogits']);
    if (skip) expect(want[0][1]).toBe(0);
    const fast = tokenNllOp.registered(backend);
    if (fast) {
      const got = await run(fast);
      expectClose(got, want, tol, ['nll', 'dlogits']);
      // an ignored row: no loss and no gradient, exactly
      if (skip) expect([got[0][1], ...got[1].subarray(v, 2 * v)].every((x) => x === 0)).toBe(true);
    }
    tf.dispose(logits);
  });

  it('chunked over rows (a head applied a chunk at a time) gives the op\'s numbers and dh', async () => {
    const [n, hid, v] = [37, 16, 300];
    const h = tf.tensor2d(host(n * hid, 41), [n, hid]);
    const w = tf.tensor2d(host(hid * v, 42, 0.5), [hid, v]);
    const y = targetsOf(n, v, 5);
    const head = (rows: tf.Tensor2D) => tf.matMul(rows, w) as tf.Tensor2D;
    const whole = await valueAndGrads((a) => tokenNll(head(a as tf.Tensor2D), y), [h]);
    const chunked = await valueAndGrads((a) => chunkedTokenNll(a as tf.Tensor2D, head, y, v, 10 * v * 4), [h]); // 10 rows a chunk
    expectClose(chunked, whole, 2e-6, ['nll', 'dh']);
    tf.dispose([h, w]);
  });
});

describe('the chunk of logits', () => {
  it('binds whole on any WebGPU device: at most 128 MiB, the least maxStorageBufferBindingSize an adapter may offer', () => {
    expect(CHUNK_LOGIT_BYTES).toBeLessThanOrEqual(128 * 2 ** 20);
    for (const vocab of [37, 512, 32000, 151936]) expect(chunkRows(vocab, 64 * 2048) * vocab * 4, `vocab ${vocab}`).toBeLessThanOrEqual(CHUNK_LOGIT_BYTES);
  });
});

/** [N, H, V, vocabulary rows per block of the wasm kernel, every k-th label ignored]. */
const HEAD_CASES: Array<[number, number, number, number, number]> = [[64, 32, 1000, 96, 0], [13, 17, 301, 7, 4], [1, 8, 50, 50, 0], [9, 5, 11, 1, 2]];

describe.each(['cpu', ...PARITY_BACKENDS])('stored-head-nll on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('is registered where the backend takes the head in vocabulary blocks (wasm with a native BLAS)', () => {
    expect(storedHeadNllOp.registered(backend) !== undefined).toBe(backend === 'wasm' && loadBlas({}).blas !== null);
  });

  it.each(STORED_DTYPES.flatMap((d) => HEAD_CASES.map((c) => [d, ...c] as const)))(
    '%s N=%i H=%i V=%i, %i vocabulary rows a block, every %i-th label ignored: nll and dh as the reference',
    async (dtype, n, hid, v, block, skip) => {
      const head: StoredMatrix = { dtype, rows: v, cols: hid, layout: 'out-in', bytes: encodeShared(host(v * hid, 42, 0.5), dtype) };
      const h = tf.tensor2d(host(n * hid, 41), [n, hid]);
      const y = targetsOf(n, v, skip);
      if (n > 2) [y[0], y[n - 1]] = [0, v - 1]; // labels in the first and the last block
      const run = (impl: Parameters<typeof storedHeadNll>[3]) => valueAndGrads((a) => storedHeadNll(a as tf.Tensor2D, head, y, impl), [h]);
      const want = await run(referenceStoredHeadNll);
      if (skip) expect(want[0][1]).toBe(0);
      const impls = backend === 'wasm' && storedHeadNllOp.registered('wasm') ? [storedHeadNllOp.registered('wasm')!, wasmStoredHeadNll(tf, block)] : [];
      for (const impl of impls) expectClose(await run(impl), want, 2e-5, ['nll', 'dh']);
      tf.dispose(h);
    },
  );
});

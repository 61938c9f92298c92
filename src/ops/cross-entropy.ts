/**
 * Causal-LM cross-entropy without a one-hot over the vocabulary: logsumexp(row) minus the
 * label's logit, gathered from the flattened logits. Labels of IGNORE_INDEX contribute nothing.
 * chunkedTokenNll adds the LM head to it, a chunk of rows at a time, for vocabularies whose
 * [tokens, vocab] logits (and their gradient) are too large to hold at once.
 *
 * tokenNll is an op: the reference here in tfjs ops, a fused kernel each way where a backend
 * registers one (wasm: src/backend/wasm-ops.ts; webgpu: src/backend/webgpu-token-nll.ts).
 * storedHeadNll is the frozen LM head and the cross-entropy as one op, so a backend can take the
 * head a block of vocabulary rows at a time and read (and convert) each block once for all rows
 * (wasm: src/backend/wasm-head-nll.ts; elsewhere the reference, whose tokenNll is the backend's).
 */
import * as tf from '@tensorflow/tfjs';
import { CHUNK_LOGIT_BYTES, chunkRows } from './chunk-rows.ts';
import { frozenLinear } from './frozen-linear.ts';
import { recomputeGrads } from './recompute.ts';
import { defineOp } from './registry.ts';
import { linearShape, type StoredMatrix } from './stored.ts';

export { CHUNK_LOGIT_BYTES, chunkRows } from './chunk-rows.ts';

export const IGNORE_INDEX = -100;

/** logits [N, V], targets [N] (IGNORE_INDEX: not counted) -> NLL [N]; differentiable in the logits. */
export type TokenNllImpl = (logits: tf.Tensor2D, targets: Int32Array) => tf.Tensor1D;

/**
 * The reference: the gradient is the fused softmax-minus-one-hot, so no Gather gradient (a
 * scatter wasm lacks) is ever needed.
 */
export const referenceTokenNll: TokenNllImpl = (logits, targets) => {
  const [n, v] = logits.shape;
  const flatIdx = new Int32Array(n);
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const ok = targets[i] !== IGNORE_INDEX;
    flatIdx[i] = i * v + (ok ? targets[i] : 0); // row i's label in the flattened [N·V] logits
    weight[i] = ok ? 1 : 0;
  }
  const nll = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const w = tf.tensor1d(weight);
    // One softmax serves both passes (the backward needs the probabilities, not a second exp
    // over [N, V]); logsumexp comes from it exactly: the row's largest logit m has probability
    // exp(0)/Σ = 1/Σ, so lse = m + log Σ = m - log(max p), and max p >= 1/V never underflows.
    const probs = tf.softmax(l); // [N, V]
    const lse = tf.sub(tf.max(l, 1), tf.log(tf.max(probs, 1))); // [N]
    const picked = tf.gather(l.reshape([n * v]), tf.tensor1d(flatIdx, 'int32')); // [N]: each row's label logit
    save([probs, w]);
    return {
      value: lse.sub(picked).mul(w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [probs, wS] = saved;
        const g = dy.mul(wS); // [N]: each row's weight in the loss
        // minus g at each row's label, scattered: tfjs-wasm's OneHot is slow (and wrong for
        // float32 output), and a broadcast Equal over [N, V] took half a LoRA step there
        const atLabel = tf.scatterND(tf.tensor2d(flatIdx, [n, 1], 'int32'), g, [n * v]).reshape([n, v]); // [N, V]
        return probs.mul(g.reshape([n, 1])).sub(atLabel);
      },
    };
  });
  return tf.tidy(() => nll(logits) as tf.Tensor1D);
};

export const tokenNllOp = defineOp<TokenNllImpl>('token-nll', referenceTokenNll);

/**
 * Per-token negative log-likelihood [N] for logits [N, V] and targets (already shifted) with
 * IGNORE_INDEX for positions that do not count (their value is 0), by the active backend's
 * implementation.
 */
export function tokenNll(logits: tf.Tensor2D, targets: Int32Array, impl = tokenNllOp.impl()): tf.Tensor1D {
  return impl(logits, targets);
}

/**
 * tokenNll(head(h), targets) [N] for hidden rows h [N, H] and a frozen `head` (rows -> logits
 * [rows, V]), a chunk of rows at a time: forward, each chunk's logits are made, reduced to its
 * NLL and dropped; backward, each chunk's are made again and give dh for that chunk. At most
 * one chunk's logits (and their gradient) exist at once, for one more head product per chunk.
 * One chunk (a small vocabulary) is exactly tokenNll(head(h), targets).
 */
export function chunkedTokenNll(h: tf.Tensor2D, head: (rows: tf.Tensor2D) => tf.Tensor2D, targets: Int32Array, vocab: number, bytes = CHUNK_LOGIT_BYTES): tf.Tensor1D {
  const [N, H] = h.shape;
  const rows = chunkRows(vocab, N, bytes);
  if (rows >= N) return tokenNll(head(h), targets);
  const chunks: Array<[number, number]> = [];
  for (let r0 = 0; r0 < N; r0 += rows) chunks.push([r0, Math.min(N, r0 + rows)]);
  const slice = (x: tf.Tensor, [r0, r1]: [number, number]) => (x.rank === 2 ? x.slice([r0, 0], [r1 - r0, H]) : x.slice([r0], [r1 - r0]));
  const op = tf.customGrad((...args) => {
    const hs = args[0] as tf.Tensor2D;
    (args[1] as tf.GradSaveFunc)([hs]);
    const parts = chunks.map((c) => tf.tidy(() => tokenNll(head(slice(hs, c) as tf.Tensor2D), targets.subarray(c[0], c[1]))));
    const value = tf.concat(parts) as tf.Tensor1D;
    tf.dispose(parts);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dh = chunks.map((c) => tf.tidy(() => {
          const hc = slice(saved[0], c);
          return recomputeGrads(() => tokenNll(head(hc as tf.Tensor2D), targets.subarray(c[0], c[1])), [hc], slice(dy, c))[0];
        }));
        const all = tf.concat(dh);
        tf.dispose(dh);
        return all;
      },
    };
  });
  return tf.tidy(() => op(h) as tf.Tensor1D);
}

/** hidden rows h [N, H], a frozen head held as a StoredMatrix (K [H, V]), targets [N] -> NLL [N]; differentiable in h. */
export type StoredHeadNllImpl = (h: tf.Tensor2D, head: StoredMatrix, targets: Int32Array) => tf.Tensor1D;

/** The definition: the head's product and tokenNll, a chunk of rows at a time (chunkedTokenNll). */
export const referenceStoredHeadNll: StoredHeadNllImpl = (h, head, targets) =>
  chunkedTokenNll(h, (rows) => frozenLinear(rows, head), targets, linearShape(head)[1]);

export const storedHeadNllOp = defineOp<StoredHeadNllImpl>('stored-head-nll', referenceStoredHeadNll);

/** tokenNll(h·K, targets) [N] for a frozen head K held as a StoredMatrix, by the active backend's implementation. */
export function storedHeadNll(h: tf.Tensor2D, head: StoredMatrix, targets: Int32Array, impl = storedHeadNllOp.impl()): tf.Tensor1D {
  const [inF] = linearShape(head);
  if (h.shape[1] !== inF) throw new Error(`storedHeadNll: h has ${h.shape[1]} columns; the head takes ${inF}`);
  return impl(h, head, targets);
}

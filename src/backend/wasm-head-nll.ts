/**
 * The stored-head cross-entropy op (src/ops/cross-entropy.ts's storedHeadNll) on the wasm
 * backend with a native BLAS and hilo's SIMD module: the LM head [V, H] is taken a block of
 * vocabulary rows at a time, each block converted once as the frozen linear converts its blocks
 * (src/backend/wasm-frozen.ts) and multiplied by all N hidden rows. The reference instead takes
 * a chunk of rows at a time through the whole head, so it converts every block of a 2-byte head
 * once per chunk, and each product has a few hundred rows where this one has all of them.
 *
 *   HiloHeadNll      h [N, H], targets [N] (int32, < 0: not counted), {w, block} -> nll [N], lse [N]
 *                    per block: logits = h·blockᵀ, the SIMD module's row max and Σ exp, merged
 *                    into a running logsumexp per row; the label's logit read where it lies
 *   HiloHeadNllGrad  dy [N], h, lse, targets, {w, block} -> dh [N, H] = Σ_blocks dlogits·block,
 *                    dlogits = dy·(softmax - onehot) from each block's logits made again
 *
 * At most one block's logits ([N, block]) and its converted rows exist at a time.
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { CHUNK_LOGIT_BYTES } from '../ops/chunk-rows.ts';
import { referenceStoredHeadNll, storedHeadNllOp, type StoredHeadNllImpl } from '../ops/cross-entropy.ts';
import type { StoredMatrix } from '../ops/stored.ts';
import type { Blas } from './blas.ts';
import { heapRowBlocks, jsRows, SCRATCH_FLOATS, type RowSource } from './wasm-frozen.ts';
import { offset, simdFor, simdOrNull } from './wasm-simd.ts';
import { fromAttrs, toAttrs } from './kernel-attrs.ts';

export const HEAD_NLL = 'HiloHeadNll';
export const HEAD_NLL_GRAD = 'HiloHeadNllGrad';

interface HeadAttrs {
  w: StoredMatrix;
  /** Vocabulary rows per block. */
  block: number;
}

/** Vocabulary rows per block for N hidden rows of width H: the scratch buffer's and the logits' bounds. */
export function headBlockRows(V: number, H: number, N: number): number {
  return Math.max(1, Math.min(V, Math.floor(SCRATCH_FLOATS / H), Math.floor(CHUNK_LOGIT_BYTES / (4 * Math.max(1, N)))));
}

/**
 * Rows v0..v1 of the stored head as float32 [v1-v0, H]: a view of a float32 head, else converted
 * (in the heap where heapRowBlocks applies, made before any heap view is taken). dispose() after.
 */
function headRows(wasm: BackendWasm, w: StoredMatrix, block: number): { rows: RowSource; dispose(): void } {
  if (w.dtype === 'float32') return { rows: (v0, v1) => new Float32Array(w.bytes, 4 * v0 * w.cols, (v1 - v0) * w.cols), dispose: () => {} };
  return heapRowBlocks(wasm, w, Math.min(block, w.rows)) ?? { rows: jsRows(w), dispose: () => {} };
}

type Info = TF.TensorInfo;

function forwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: HEAD_NLL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { h, targets } = inputs as { h: Info; targets: Info };
      const { w, block } = fromAttrs<HeadAttrs>(attrs);
      const [N, H] = h.shape;
      const V = w.rows;
      const nll = wasm.makeOutput([N], 'float32');
      const lse = wasm.makeOutput([N], 'float32');
      const logits = wasm.makeOutput([N, Math.min(block, V)], 'float32'); // scratch, freed below
      const stats = wasm.makeOutput([2, N], 'float32'); // each block's row max, then Σ exp
      const head = headRows(wasm, w, block);
      try {
        // views after the allocations: malloc may grow the heap and detach older views
        const hv = wasm.typedArrayFromHeap(h) as Float32Array;
        const lv = wasm.typedArrayFromHeap(logits) as Float32Array;
        const sv = wasm.typedArrayFromHeap(stats) as Float32Array;
        const y = wasm.typedArrayFromHeap(targets) as Int32Array;
        const simd = simdFor(wasm);
        const M = new Float64Array(N).fill(-Infinity); // running row max
        const S = new Float64Array(N); // Σ exp(l - M) so far
        const picked = new Float64Array(N);
        for (let v0 = 0; v0 < V; v0 += block) {
          const v1 = Math.min(V, v0 + block);
          const vb = v1 - v0;
          blas.sgemm(false, true, N, vb, H, hv, H, head.rows(v0, v1), H, lv, vb); // [N, vb] = h·blockᵀ
          simd.xent_stats(offset(wasm, logits), N, vb, offset(wasm, stats), offset(wasm, stats) + 4 * N, 0);
          for (let i = 0; i < N; i++) {
            const m = sv[i];
            const s = sv[N + i];
            if (m > M[i]) {
              S[i] = S[i] * Math.exp(M[i] - m) + s;
              M[i] = m;
            } else S[i] += s * Math.exp(m - M[i]);
            const t = y[i] - v0;
            if (t >= 0 && t < vb) picked[i] = lv[i * vb + t];
          }
        }
        const out = wasm.typedArrayFromHeap(nll) as Float32Array;
        const lo = wasm.typedArrayFromHeap(lse) as Float32Array;
        for (let i = 0; i < N; i++) {
          lo[i] = M[i] + Math.log(S[i]);
          out[i] = y[i] < 0 ? 0 : lo[i] - picked[i];
        }
      } finally {
        head.dispose();
        wasm.disposeData(logits.dataId);
        wasm.disposeData(stats.dataId);
      }
      return [nll, lse];
    },
  };
}

function backwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: HEAD_NLL_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { dy, h, lse, targets } = inputs as { dy: Info; h: Info; lse: Info; targets: Info };
      const { w, block } = fromAttrs<HeadAttrs>(attrs);
      const [N, H] = h.shape;
      const V = w.rows;
      const dh = wasm.makeOutput([N, H], 'float32');
      const logits = wasm.makeOutput([N, Math.min(block, V)], 'float32'); // logits, then their gradient in place
      const g = wasm.makeOutput([N], 'float32'); // each row's weight: dy, 0 where it does not count
      const rel = wasm.makeOutput([N], 'int32'); // the label's column within the block
      const head = headRows(wasm, w, block);
      try {
        const hv = wasm.typedArrayFromHeap(h) as Float32Array;
        const lv = wasm.typedArrayFromHeap(logits) as Float32Array;
        const dv = wasm.typedArrayFromHeap(dh) as Float32Array;
        const gv = wasm.typedArrayFromHeap(g) as Float32Array;
        const rv = wasm.typedArrayFromHeap(rel) as Int32Array;
        const y = wasm.typedArrayFromHeap(targets) as Int32Array;
        const dyv = wasm.typedArrayFromHeap(dy) as Float32Array;
        for (let i = 0; i < N; i++) gv[i] = y[i] < 0 ? 0 : dyv[i];
        const simd = simdFor(wasm);
        for (let v0 = 0; v0 < V; v0 += block) {
          const v1 = Math.min(V, v0 + block);
          const vb = v1 - v0;
          const rows = head.rows(v0, v1);
          blas.sgemm(false, true, N, vb, H, hv, H, rows, H, lv, vb);
          for (let i = 0; i < N; i++) rv[i] = y[i] < 0 ? -1 : y[i] - v0;
          simd.xent_grad_block(offset(wasm, logits), offset(wasm, lse), offset(wasm, rel), offset(wasm, g), N, vb, offset(wasm, logits));
          blas.sgemm(false, false, N, H, vb, lv, vb, rows, H, dv, H, { beta: v0 === 0 ? 0 : 1 }); // dh += dlogits·block
        }
      } finally {
        head.dispose();
        wasm.disposeData(logits.dataId);
        wasm.disposeData(g.dataId);
        wasm.disposeData(rel.dataId);
      }
      return dh;
    },
  };
}

/** The op's wasm implementation; `block` overrides the vocabulary rows per block (tests). */
export function wasmStoredHeadNll(tf: typeof TF, block?: number): StoredHeadNllImpl {
  return (h, w, targets) => {
    // a head stored [H, V] has its vocabulary in columns: no row blocks; and the SIMD module
    // may be off (useSimdKernels(tf, false)), as the other kernels' SIMD parts then are
    if (w.layout !== 'out-in' || !simdOrNull(tf.backend() as BackendWasm)) return referenceStoredHeadNll(h, w, targets);
    const attrs = toAttrs({ w, block: block ?? headBlockRows(w.rows, w.cols, h.shape[0]) });
    const op = tf.customGrad((...args: Array<TF.Tensor | TF.GradSaveFunc>) => {
      const hs = args[0] as TF.Tensor2D;
      const save = args[1] as TF.GradSaveFunc;
      const t = tf.tensor1d(targets, 'int32');
      const [nll, lse] = tf.engine().runKernel(HEAD_NLL, { h: hs, targets: t }, attrs) as TF.Tensor[];
      save([hs, lse, t]);
      return {
        value: nll,
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
          const [hS, lseS, tS] = saved;
          return tf.engine().runKernel(HEAD_NLL_GRAD, { dy, h: hS, lse: lseS, targets: tS }, attrs) as TF.Tensor;
        },
      };
    });
    return tf.tidy(() => op(h) as TF.Tensor1D);
  };
}

/** Register (or, with on false or no BLAS, remove) the wasm stored-head cross-entropy. Idempotent. */
export function useWasmHeadNll(tf: typeof TF, on: boolean, blas: Blas | null): void {
  for (const name of [HEAD_NLL, HEAD_NLL_GRAD]) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  if (!on || !blas) {
    storedHeadNllOp.register('wasm', null);
    return;
  }
  tf.registerKernel(forwardKernel(blas));
  tf.registerKernel(backwardKernel(blas));
  storedHeadNllOp.register('wasm', wasmStoredHeadNll(tf));
}

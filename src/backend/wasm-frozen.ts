/**
 * The frozen linear op (src/ops/frozen-linear.ts) on the wasm backend with a native BLAS: the
 * weight stays in its shared buffer, outside the wasm heap, in its own dtype. A float32 weight is
 * handed to sgemm as it lies; a 2-byte one is converted a block of rows at a time into a scratch
 * buffer (at most SCRATCH_FLOATS) and each block is one sgemm with float32 accumulation. A bf16
 * block is copied into a heap scratch tensor and widened there by the SIMD module (heapRowBlocks),
 * when it is loaded; otherwise decodeRows converts it into a JS buffer. The activations and the
 * product stay float32 tensors in the heap.
 *
 * With S the stored matrix, a block of its rows r0..r1 is either
 *   output columns: 'out-in' forward  y[:, r0:r1] = x·S[r0:r1]ᵀ,  'in-out' backward dx[:, r0:r1] = dy·S[r0:r1]ᵀ
 *   input columns:  'out-in' backward dx += dy[:, r0:r1]·S[r0:r1],  'in-out' forward  y += x[:, r0:r1]·S[r0:r1]
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { frozenLinearOp } from '../ops/frozen-linear.ts';
import { decodeRows, type StoredMatrix } from '../ops/stored.ts';
import type { Blas } from './blas.ts';
import { offset, simdOrNull } from './wasm-simd.ts';
import { fromAttrs, toAttrs } from './kernel-attrs.ts';

export const FROZEN_LINEAR = 'HiloFrozenLinear';

/** Floats of the conversion buffer (16 MiB): large enough that each block is an efficient sgemm. */
export const SCRATCH_FLOATS = 4 * 2 ** 20;

let scratch: Float32Array | null = null;
/** The conversion buffer, grown to `floats` (one per thread: kernels run one at a time). */
export function scratchOf(floats: number): Float32Array {
  if (!scratch || scratch.length < floats) scratch = new Float32Array(floats);
  return scratch;
}

/** Rows r0..r1 of a stored matrix as float32 [r1-r0, cols]; the view holds until the next call. */
export type RowSource = (r0: number, r1: number) => Float32Array;

/** decodeRows into the JS scratch buffer. */
export const jsRows = (w: StoredMatrix): RowSource => (r0, r1) => {
  const buf = scratchOf((r1 - r0) * w.cols);
  decodeRows(w, r0, r1, buf);
  return buf;
};

/** Rows of a stored matrix per converted block of at most `scratchFloats` values. */
export const blockRows = (w: StoredMatrix, scratchFloats = SCRATCH_FLOATS): number =>
  w.dtype === 'float32' ? w.rows : Math.max(1, Math.floor(scratchFloats / w.cols));

/**
 * Blocks of up to `maxRows` rows of a bf16 matrix widened in the wasm heap: each block's bytes
 * are copied (a memcpy) into the upper half of a heap scratch tensor and widen_bf16 turns them
 * into float32 in place, 8 values a step where decodeRows' JS loop does one or two (a replica
 * converts every layer matrix each pass). Null where that does not apply: another dtype, or no SIMD module. Make it
 * before taking heap views (the allocation may grow the heap); dispose() frees the scratch.
 */
export function heapRowBlocks(wasm: BackendWasm, w: StoredMatrix, maxRows: number): { rows: RowSource; dispose(): void } | null {
  const simd = w.dtype === 'bfloat16' && maxRows > 0 && w.cols > 0 ? simdOrNull(wasm) : null;
  if (!simd) return null;
  const info = wasm.makeOutput([maxRows * w.cols], 'float32');
  const base = offset(wasm, info);
  return {
    rows: (r0, r1) => {
      const n = (r1 - r0) * w.cols;
      if (r1 - r0 > maxRows) throw new Error(`heapRowBlocks: ${r1 - r0} rows for a scratch of ${maxRows}`);
      const heap = (wasm.typedArrayFromHeap(info) as Float32Array).buffer;
      new Uint16Array(heap, base + 2 * n, n).set(new Uint16Array(w.bytes, 2 * r0 * w.cols, n));
      simd.widen_bf16(base + 2 * n, base, n);
      return new Float32Array(heap, base, n);
    },
    dispose: () => wasm.disposeData(info.dataId),
  };
}

/**
 * out [N, C] = a [N, A] times the stored matrix (back: its transpose's transpose, i.e. dy·Kᵀ),
 * by blocks of at most `scratchFloats` converted values, each from `rowsOf`. Plain arrays in, so
 * tests can drive it with any block size.
 */
export function storedProduct(blas: Blas, a: Float32Array, N: number, w: StoredMatrix, back: boolean, out: Float32Array, scratchFloats = SCRATCH_FLOATS, rowsOf: RowSource = jsRows(w)): void {
  const { rows, cols } = w;
  const A = back === (w.layout === 'out-in') ? rows : cols; // a's width: out when back on [out, in], ...
  const C = A === rows ? cols : rows;
  if (N === 0) return;
  if (rows === 0 || cols === 0) {
    out.fill(0);
    return;
  }
  const outputColumns = (w.layout === 'out-in') !== back; // each block of rows makes columns of `out`
  const whole = w.dtype === 'float32';
  const step = blockRows(w, scratchFloats);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const block = whole ? new Float32Array(w.bytes, 4 * r0 * cols, (r1 - r0) * cols) : rowsOf(r0, r1);
    if (outputColumns) {
      // out[:, r0:r1] [N, r1-r0] = a [N, cols] · block[r1-r0, cols]ᵀ
      blas.sgemm(false, true, N, r1 - r0, cols, a, A, block, cols, out.subarray(r0), C);
    } else {
      // out [N, cols] (+)= a[:, r0:r1] [N, r1-r0] · block [r1-r0, cols]
      blas.sgemm(false, false, N, cols, r1 - r0, a.subarray(r0), A, block, cols, out, C, { beta: r0 === 0 ? 0 : 1 });
    }
  }
}

interface FrozenAttrs {
  w: StoredMatrix;
  back: boolean;
}

function kernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: FROZEN_LINEAR,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { a } = inputs as { a: TF.TensorInfo };
      const { w, back } = fromAttrs<FrozenAttrs>(attrs);
      const [N, width] = a.shape;
      const [inF, outF] = w.layout === 'out-in' ? [w.cols, w.rows] : [w.rows, w.cols];
      if (width !== (back ? outF : inF)) throw new Error(`${FROZEN_LINEAR}: input has ${width} columns for a [${inF}, ${outF}] weight${back ? ' (backward)' : ''}`);
      const out = wasm.makeOutput([N, back ? inF : outF], 'float32');
      const heap = N > 0 ? heapRowBlocks(wasm, w, Math.min(w.rows, blockRows(w))) : null;
      try {
        // views after the allocations: malloc may grow the heap and detach older views
        storedProduct(blas, wasm.typedArrayFromHeap(a) as Float32Array, N, w, back, wasm.typedArrayFromHeap(out) as Float32Array, SCRATCH_FLOATS, heap?.rows);
      } finally {
        heap?.dispose();
      }
      return out;
    },
  };
}

/** Register (or, with on false, remove) the wasm frozen linear. Idempotent. */
export function useWasmFrozenLinear(tf: typeof TF, on: boolean, blas: Blas | null): void {
  if (tf.getKernel(FROZEN_LINEAR, 'wasm')) tf.unregisterKernel(FROZEN_LINEAR, 'wasm');
  if (!on || !blas) {
    frozenLinearOp.register('wasm', null);
    return;
  }
  tf.registerKernel(kernel(blas));
  const run = (a: TF.Tensor2D, w: StoredMatrix, back: boolean) =>
    tf.engine().runKernel(FROZEN_LINEAR, { a }, toAttrs({ w, back })) as TF.Tensor2D;
  frozenLinearOp.register('wasm', { forward: (x, w) => run(x, w, false), backward: (dy, w) => run(dy, w, true) });
}

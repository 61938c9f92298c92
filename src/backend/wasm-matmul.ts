/**
 * Fast products on tfjs-backend-wasm. Its BatchMatMul kernel is fast (XNNPACK) only for one
 * untransposed matrix pair; a transposed operand or a batch takes a naive loop, one to two
 * orders of magnitude slower (docs/performance.md, "Figures behind the code"). Training is made of exactly those: backward passes are transposed products
 * (dA = dY B^T, dB = A^T dY), tied lm heads multiply by E^T, attention is batched Q K^T.
 *
 * The replacement kernels feed the fast kernel only untransposed 2-D pairs: a transposed
 * operand is transposed first (a blocked copy in JS, faster than tfjs-wasm's own Transpose),
 * or the output is computed transposed when that moves fewer elements; a batch runs as one
 * 2-D product per matrix. Registering kernels (rather than changing callers) makes every
 * product take the fast path, gradients included.
 *
 * Where a native BLAS loaded (src/backend/blas.ts), plain float32 products skip all of that:
 * sgemm takes the transposes as flags and writes the product straight into the wasm heap.
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Blas } from './blas.ts';

const KERNELS = ['BatchMatMul', '_FusedMatMul'] as const;
const originals = new Map<string, TF.KernelConfig>();

const size = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

/** dst[j * rows + i] = src[i * cols + j], in 32x32 blocks so both sides stay in cache. */
export function transposeInto(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(i0 + B, rows);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(j0 + B, cols);
      for (let i = i0; i < i1; i++) {
        const row = i * cols;
        for (let j = j0; j < j1; j++) dst[j * rows + i] = src[row + j];
      }
    }
  }
}

/**
 * Elements to transpose for each way of computing C = op(A) op(B) with untransposed products:
 *  - operands: transpose each transposed operand, then A' B';
 *  - output:   C^T = op(B)^T op(A)^T, whose operands are untransposed exactly where op() transposed,
 *              then transpose C. Cheaper when the transposed operand is large and C is small
 *              (LoRA's dA = x^T dY: x is [1024,256], C only [256,8]).
 */
export function transposeCosts(aSize: number, bSize: number, cSize: number, tA: boolean, tB: boolean) {
  return { operands: (tA ? aSize : 0) + (tB ? bSize : 0), output: (tA ? 0 : aSize) + (tB ? 0 : bSize) + cSize };
}

/** Matrix `index` of x [..., r, c] as a new [r, c] tensor, or [c, r] when `transpose`. */
function matrixOf(backend: BackendWasm, x: TF.TensorInfo, index: number, transpose: boolean): TF.TensorInfo {
  const [r, c] = x.shape.slice(-2);
  const out = backend.makeOutput(transpose ? [c, r] : [r, c], 'float32');
  // Views after the allocation: malloc may grow wasm memory and detach older views.
  const src = (backend.typedArrayFromHeap(x) as Float32Array).subarray(index * r * c, (index + 1) * r * c);
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  if (transpose) transposeInto(src, dst, r, c);
  else dst.set(src);
  return out;
}

/** x [r, c] -> x^T [c, r] (a 2-D tensor, or one matrix of a batch). */
const transposed = (backend: BackendWasm, x: TF.TensorInfo) => matrixOf(backend, x, 0, true);

type DataId = TF.TensorInfo['dataId'];
/** Bytes of transposes kept at most (wasm memory is 4 GiB in all). */
export const TRANSPOSE_CACHE_BYTES = 512 * 2 ** 20;

/**
 * Transposes of operands that come back. A frozen weight is multiplied transposed in every
 * backward pass (dX = dY W^T): a transposed operand is kept until the tensor itself is freed
 * (tfjs tensors never change in place; a variable's assign gets a new data id), within
 * TRANSPOSE_CACHE_BYTES. A kept transpose also keeps its data id, so XNNPACK's packed-weights
 * cache, keyed by tensor id, hits as well.
 */
class TransposeCache {
  private readonly kept = new Map<DataId, { shape: string; t: TF.TensorInfo }>();
  private bytes = 0;

  constructor(private readonly backend: BackendWasm) {
    const dispose = backend.disposeData.bind(backend);
    const dataIdMap = (backend as unknown as { dataIdMap: { has(id: DataId): boolean } }).dataIdMap;
    backend.disposeData = (dataId: DataId, force?: boolean) => {
      const freed = dispose(dataId, force);
      const entry = this.kept.get(dataId);
      if (entry && !dataIdMap.has(dataId)) {
        this.kept.delete(dataId);
        this.bytes -= 4 * entry.t.shape[0] * entry.t.shape[1];
        dispose(entry.t.dataId, true);
      }
      return freed;
    };
  }

  /** The kept transpose of x's last two dims, if any. */
  get(x: TF.TensorInfo): TF.TensorInfo | undefined {
    const e = this.kept.get(x.dataId);
    return e && e.shape === String(x.shape.slice(-2)) ? e.t : undefined;
  }

  /** x's transpose, kept for next time when within budget; `owned` says the caller must free it. */
  make(x: TF.TensorInfo): { t: TF.TensorInfo; owned: boolean } {
    const t = transposed(this.backend, x);
    const bytes = 4 * size(x.shape.slice(-2));
    if (this.kept.has(x.dataId) || this.bytes + bytes > TRANSPOSE_CACHE_BYTES) return { t, owned: true };
    this.kept.set(x.dataId, { shape: String(x.shape.slice(-2)), t });
    this.bytes += bytes;
    return { t, owned: false };
  }

  get size(): number {
    return this.kept.size;
  }
}
const caches = new WeakMap<BackendWasm, TransposeCache>();
function cacheOf(backend: BackendWasm): TransposeCache {
  let c = caches.get(backend);
  if (!c) caches.set(backend, (c = new TransposeCache(backend)));
  return c;
}
/** How many transposes are kept now (tests). */
export const keptTransposes = (backend: BackendWasm) => cacheOf(backend).size;

/**
 * C [..., m, n] = op(A) op(B) by the native BLAS, in place in the wasm heap: one sgemm per
 * matrix of the batch (a batch of one operand is broadcast), transposes given to sgemm as flags.
 */
function blasMatMul(blas: Blas, backend: BackendWasm, a: TF.TensorInfo, b: TF.TensorInfo, tA: boolean, tB: boolean): TF.TensorInfo {
  const batchA = size(a.shape.slice(0, -2));
  const batchB = size(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const m = tA ? a.shape.at(-1)! : a.shape.at(-2)!;
  const k = tA ? a.shape.at(-2)! : a.shape.at(-1)!;
  const n = tB ? b.shape.at(-2)! : b.shape.at(-1)!;
  const out = backend.makeOutput([...(batchA >= batchB ? a : b).shape.slice(0, -2), m, n], 'float32');
  // Views after the allocation: malloc may grow wasm memory and detach older views.
  const A = backend.typedArrayFromHeap(a) as Float32Array;
  const B = backend.typedArrayFromHeap(b) as Float32Array;
  const C = backend.typedArrayFromHeap(out) as Float32Array;
  if (k === 0) C.fill(0); // an empty sum; the heap memory held anything
  if (k === 0 || m === 0 || n === 0) return out;
  for (let i = 0; i < batch; i++) {
    const ai = batchA === 1 ? A : A.subarray(i * m * k, (i + 1) * m * k);
    const bi = batchB === 1 ? B : B.subarray(i * k * n, (i + 1) * k * n);
    const ci = batch === 1 ? C : C.subarray(i * m * n, (i + 1) * m * n);
    blas.sgemm(tA, tB, m, n, k, ai, tA ? m : k, bi, tB ? k : n, ci, n);
  }
  return out;
}

function fastKernel(original: TF.KernelConfig, blas: Blas | null): TF.KernelConfig {
  return {
    ...original,
    kernelFunc: (args) => {
      const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
      const backend = args.backend as BackendWasm;
      const a = args.inputs.a as TF.TensorInfo;
      const b = args.inputs.b as TF.TensorInfo;
      const { transposeA: tA, transposeB: tB } = attrs;
      const batchA = size(a.shape.slice(0, -2));
      const batchB = size(b.shape.slice(0, -2));
      const batch = Math.max(batchA, batchB);
      const fused = original.kernelName !== 'BatchMatMul'; // bias/activation: leave batches to tfjs
      const floats = a.dtype === 'float32' && b.dtype === 'float32';
      if (blas && !fused && floats && (batchA === batchB || Math.min(batchA, batchB) === 1)) {
        return blasMatMul(blas, backend, a, b, tA, tB);
      }
      if ((!tA && !tB && batch === 1) || !floats) return original.kernelFunc(args);
      if (batch > 1 && (fused || (batchA !== batchB && Math.min(batchA, batchB) !== 1))) return original.kernelFunc(args);

      const m = tA ? a.shape.at(-1)! : a.shape.at(-2)!;
      const n = tB ? b.shape.at(-2)! : b.shape.at(-1)!;
      const batchShape = (batchA >= batchB ? a : b).shape.slice(0, -2);
      const run = (x: TF.TensorInfo, y: TF.TensorInfo) =>
        original.kernelFunc({ ...args, inputs: { ...args.inputs, a: x, b: y }, attrs: { ...args.attrs, transposeA: false, transposeB: false } }) as TF.TensorInfo;
      const temps: TF.TensorInfo[] = [];
      const keep = (t: TF.TensorInfo) => (temps.push(t), t);
      try {
        if (batch === 1) {
          const cache = cacheOf(backend);
          // A transposed operand costs nothing when kept. (Treating a second request as free
          // too, to share one activation's transpose between q, k and v, was slower: an
          // activation used as the packed operand is already reused by XNNPACK's own cache.)
          const free = (x: TF.TensorInfo) => cache.get(x) !== undefined;
          const cost = transposeCosts(tA && free(a) ? 0 : size(a.shape), tB && free(b) ? 0 : size(b.shape), m * n, tA, tB);
          // Keep the leading 1s: the fused kernel expects the rank-3 shapes its op made.
          const T = (x: TF.TensorInfo) => {
            let t = cache.get(x);
            if (!t) {
              const made = cache.make(x);
              t = made.owned ? keep(made.t) : made.t;
            }
            return { ...t, shape: [...x.shape.slice(0, -2), ...t.shape] };
          };
          if (!fused && cost.output < cost.operands) {
            // C^T [n, m] = B' [n, k] · A' [k, m], then C = (C^T)^T
            const ct = keep(run(tB ? b : T(b), tA ? a : T(a)));
            return { ...transposed(backend, ct), shape: [...batchShape, m, n] };
          }
          // C [m, n] = A' [m, k] · B' [k, n]
          return run(tA ? T(a) : a, tB ? T(b) : b);
        }
        // One fast 2-D product per matrix: C_i [m, n] = op(A_i) op(B_i)
        const out = backend.makeOutput([...batchShape, m, n], 'float32');
        for (let i = 0; i < batch; i++) {
          const ai = keep(matrixOf(backend, a, batchA === 1 ? 0 : i, tA));
          const bi = keep(matrixOf(backend, b, batchB === 1 ? 0 : i, tB));
          const ci = keep(run(ai, bi));
          (backend.typedArrayFromHeap(out) as Float32Array).set(backend.typedArrayFromHeap(ci) as Float32Array, i * m * n);
          for (const t of temps.splice(0)) backend.disposeData(t.dataId);
        }
        return out;
      } finally {
        for (const t of temps) backend.disposeData(t.dataId);
      }
    },
  };
}

/** Whether float32 products go to a native BLAS, which keeps nothing by data id (see keysByDataId). */
let productsInBlas = false;

/**
 * Whether the wasm backend's float32 products may keep something by a tensor's data id: a kept
 * transpose (TransposeCache) or XNNPACK's packed weights. They do unless a native BLAS does the
 * products. Where they do, a tensor's values must never change in place (a kept copy would go
 * stale); where they do not, an optimizer may write a parameter no other tensor shares in place
 * (src/backend/placement.ts, writableInPlace).
 */
export const keysByDataId = (): boolean => !productsInBlas;

/**
 * Turn the fast path on (default from initBackend('wasm')) or off (for benchmarks and
 * tests that compare against tfjs's own kernels). Idempotent.
 */
export function useFastWasmMatMul(tf: typeof TF, on: boolean, blas: Blas | null = null): void {
  productsInBlas = on && blas !== null;
  for (const name of KERNELS) {
    if (!originals.has(name)) {
      const k = tf.getKernel(name, 'wasm');
      if (!k) throw new Error(`tfjs-backend-wasm registered no ${name} kernel`);
      originals.set(name, k);
    }
    const original = originals.get(name)!;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(on ? fastKernel(original, blas) : original);
  }
}

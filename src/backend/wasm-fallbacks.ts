/**
 * Kernels tfjs-backend-wasm 4.22 lacks, or runs wastefully, that training needs.
 *
 * UnsortedSegmentSum is the gradient of Gather: without it no embedding (or any gathered
 * weight) can be trained on wasm ("Kernel 'UnsortedSegmentSum' not registered"). Written in
 * plain JS over the wasm heap.
 *
 * Identity and same-dtype Cast copy their input on wasm, where the cpu and webgl backends share
 * it. tfjs clones every tensor it saves for the backward pass and casts both operands in Mul's
 * gradient, so a tiny-Llama MoE step made ~2,100 Identity and ~460 Cast copies (the [1024, 4096]
 * logits among them). Tensors never change in place, so sharing the data (one more reference,
 * as Reshape does) is exact.
 *
 * Slice reads its whole input out of the heap (a full copy) before copying the slice, so one
 * element of a [1024, 4096] product cost 16 MB of copying, as long as the product itself with
 * a native BLAS (docs/performance.md). Here it copies only the slice, row by row from a heap view.
 *
 * GatherV2's C++ kernel moves one element at a time through generic stride arithmetic: an
 * embedding lookup took a few percent of a tiny-Llama training step (docs/performance.md). Here each
 * gathered slice is one contiguous copy.
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** out[s, ...] = Σ_{i: ids[i] = s} x[i, ...] for s in [0, numSegments); ids outside are dropped. */
export function segmentSum(x: ArrayLike<number>, ids: ArrayLike<number>, rowSize: number, numSegments: number, out: Float32Array | Int32Array): void {
  out.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let j = 0; j < rowSize; j++) out[dst + j] += x[src + j];
  }
}

/**
 * Register `make(original)` as the wasm kernel `name` in place of tfjs's own, which it may call.
 * Idempotent: a kernel already replaced here is left alone.
 */
function replaceKernel(tf: typeof TF, name: string, make: (original: TF.KernelConfig) => TF.KernelFunc): void {
  const original = tf.getKernel(name, 'wasm');
  if (!original || (original as { hiloReplaced?: boolean }).hiloReplaced) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...original, hiloReplaced: true, kernelFunc: make(original) } as TF.KernelConfig);
}

/** Identity and same-dtype Cast as one more reference to the input's data. */
function shareInsteadOfCopy(tf: typeof TF): void {
  for (const name of ['Identity', 'Cast'] as const) {
    replaceKernel(tf, name, (original) => (args) => {
      const x = args.inputs.x as TF.TensorInfo;
      const dtype = name === 'Cast' ? (args.attrs!.dtype as TF.DataType) : x.dtype;
      if (dtype !== x.dtype || x.dtype === 'string') return original.kernelFunc(args);
      (args.backend as BackendWasm).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype };
    });
  }
}

/**
 * Copy the box begin..begin+size of x (row-major, `shape`) into out, one innermost run at a time.
 * A run also takes in every trailing dimension that the box spans whole.
 */
export function sliceInto(x: Float32Array | Int32Array | Uint8Array, shape: readonly number[], begin: readonly number[], size: readonly number[], out: Float32Array | Int32Array | Uint8Array): void {
  const rank = shape.length;
  let inner = rank; // dims [inner, rank) are copied as one run
  let run = 1;
  while (inner > 0) {
    run *= size[inner - 1];
    inner--;
    if (size[inner] !== shape[inner]) break;
  }
  const strides = new Array<number>(rank);
  for (let d = rank - 1, s = 1; d >= 0; s *= shape[d], d--) strides[d] = s;
  const outer = size.slice(0, inner).reduce((a, b) => a * b, 1);
  const index = new Array<number>(inner).fill(0);
  for (let o = 0; o < outer; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += (begin[d] + (d < inner ? index[d] : 0)) * strides[d];
    out.set(x.subarray(src, src + run), o * run);
    for (let d = inner - 1; d >= 0; d--) {
      if (++index[d] < size[d]) break;
      index[d] = 0;
    }
  }
}

function sliceWithoutFullRead(tf: typeof TF): void {
  replaceKernel(tf, 'Slice', (original) => (args) => {
    const x = args.inputs.x as TF.TensorInfo;
    if (x.dtype === 'string') return original.kernelFunc(args);
    const backend = args.backend as BackendWasm;
    const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as TF.Tensor, begin, size);
    const out = backend.makeOutput(s, x.dtype);
    if (s.some((d) => d === 0)) return out;
    // Views after the allocation: malloc may grow wasm memory and detach older views.
    sliceInto(backend.typedArrayFromHeap(x) as Float32Array, x.shape, b, s, backend.typedArrayFromHeap(out) as Float32Array);
    return out;
  });
}

/**
 * out[b, o, i, :] = x[b, o, ids[b, i], :] for x viewed as [batch, outer, dim, slice] and ids as
 * [batch, n] (tfjs's GatherV2 layout, segment_util.collectGatherOpShapeInfo).
 */
export function gatherInto(x: Float32Array | Int32Array | Uint8Array, ids: ArrayLike<number>, batch: number, outer: number, dim: number, slice: number, out: Float32Array | Int32Array | Uint8Array): void {
  const n = ids.length / batch;
  let dst = 0;
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      const base = (b * outer + o) * dim;
      for (let i = 0; i < n; i++) {
        const src = (base + ids[b * n + i]) * slice;
        if (slice === 1) out[dst] = x[src];
        else out.set(x.subarray(src, src + slice), dst);
        dst += slice;
      }
    }
  }
}

function gatherBySlices(tf: typeof TF): void {
  replaceKernel(tf, 'GatherV2', (original) => (args) => {
    const { x, indices } = args.inputs as { x: TF.TensorInfo; indices: TF.TensorInfo };
    if (x.dtype === 'string') return original.kernelFunc(args);
    const backend = args.backend as BackendWasm;
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const a = tf.util.parseAxisParam(axis, x.shape)[0];
    const ids = backend.readSync(indices.dataId) as Int32Array;
    for (const id of ids) {
      if (!(id >= 0 && id < x.shape[a])) throw new Error(`GatherV2: the index value ${id} is not in [0, ${x.shape[a] - 1}]`);
    }
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x as TF.Tensor, indices as TF.Tensor, a, batchDims);
    const out = backend.makeOutput(info.outputShape, x.dtype);
    if (tf.util.sizeFromShape(info.outputShape) === 0) return out;
    // Views after the allocation: malloc may grow wasm memory and detach older views.
    gatherInto(backend.typedArrayFromHeap(x) as Float32Array, ids, info.batchSize, info.outerSize, info.dimSize, info.sliceSize, backend.typedArrayFromHeap(out) as Float32Array);
    return out;
  });
}

export function registerWasmFallbacks(tf: typeof TF): void {
  shareInsteadOfCopy(tf);
  sliceWithoutFullRead(tf);
  gatherBySlices(tf);
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: TF.TensorInfo; segmentIds: TF.TensorInfo };
      const numSegments = attrs!.numSegments as number;
      const wasm = backend as BackendWasm;
      // segmentIds may have more than one dimension: each of its entries selects one row of x.
      const nIds = segmentIds.shape.reduce((a, b) => a * b, 1);
      const rowShape = x.shape.slice(segmentIds.shape.length);
      const rowSize = rowShape.reduce((a, b) => a * b, 1);
      const out = wasm.makeOutput([numSegments, ...rowShape], x.dtype);
      const ids = wasm.readSync(segmentIds.dataId);
      if (ids.length !== nIds) throw new Error('UnsortedSegmentSum: segment id count mismatch');
      segmentSum(wasm.readSync(x.dataId) as Float32Array, ids as Int32Array, rowSize, numSegments, wasm.typedArrayFromHeap(out) as Float32Array);
      return out;
    },
  });
}

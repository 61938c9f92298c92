/**
 * Kernels tfjs-backend-wasm 4.22 lacks but training needs, written in plain JS over the wasm
 * heap. UnsortedSegmentSum is the gradient of Gather: without it no embedding (or any gathered
 * weight) can be trained on wasm ("Kernel 'UnsortedSegmentSum' not registered").
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

export function registerWasmFallbacks(tf: typeof TF): void {
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

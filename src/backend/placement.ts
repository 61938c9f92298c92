/**
 * The host-values op (src/ops/host-values.ts) on the backends whose tensors are host memory
 * (names.ts HOST_MEMORY_BACKENDS: wasm, cpu). There a kernel costs a fixed overhead whatever its
 * size, while reading a small tensor is a copy and writing one is a copy: work on a few thousand
 * numbers (a router's [N, E] logits, an optimizer's per-parameter update) is faster as a JS loop
 * than as a dozen kernels. Elsewhere (webgpu, tfjs-node) a read stalls the device and costs a
 * transfer, so it stays in kernels (the op's reference, with `host` false).
 */
import * as tf from '@tensorflow/tfjs';
import { HOST_MEMORY_BACKENDS } from '../names.ts';
import { hostValuesOp, type HostValuesImpl } from '../ops/host-values.ts';
import { keysByDataId } from './wasm-matmul.ts';

/** tfjs-backend-wasm's heap view of a tensor (public on the class, absent from tfjs's Backend type). */
interface WasmHeap {
  typedArrayFromHeap(t: { dataId: object; shape: number[]; dtype: string }): Float32Array;
}

/**
 * A float32 tensor's values to read right away: on wasm a view of the backend's heap, no copy
 * (valid until the next tensor is made, which may grow the heap); elsewhere dataSync's array.
 * For bulk copies between data-parallel replicas, where dataSync's copy of every trainable at
 * every step was megabytes of garbage for V8 to collect.
 */
export function valuesOf(t: tf.Tensor): Float32Array {
  return tf.getBackend() === 'wasm' ? (tf.backend() as unknown as WasmHeap).typedArrayFromHeap(t) : (t.dataSync() as Float32Array);
}

/**
 * A float32 tensor of `values`, which the caller may overwrite afterwards: wasm copies them into
 * its heap as the tensor is made; the cpu backend keeps the array it is given, so it gets a copy.
 */
export function tensorFrom(values: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? values : values.slice(), shape, 'float32');
}

/**
 * Whether t's values may be overwritten in place (valuesOf(t) written to) with every reader
 * seeing the new ones: on wasm, a float32 tensor no other tensor shares data with (a clone or
 * a reshape would see the change; a saved copy on a gradient tape too), while the products
 * keep nothing by data id (keysByDataId: a native BLAS does them). For the optimizer's update
 * and a data-parallel replica's new parameters, which otherwise make a tensor and assign it per
 * trainable, a fixed cost per trainable that adds up over a MoE's hundred (docs/performance.md).
 */
export function writableInPlace(t: tf.Tensor): boolean {
  return !t.isDisposed && soleHeapFloats(t) && !keysByDataId();
}

/** A float32 tensor in the wasm heap whose data no other tensor shares. */
const soleHeapFloats = (t: tf.Tensor): boolean =>
  tf.getBackend() === 'wasm' && t.dtype === 'float32' && tf.backend().refCount(t.dataId) === 1;

/**
 * Add each of `parts` into t's own values in place, where that is safe and cheap: on wasm, when no other
 * tensor shares t's data (a clone would see the change). Returns whether it did; if not, the
 * caller makes a new tensor. For the data-parallel gradient sum: a tensor from the values and an
 * AddN cost a fixed overhead per trainable whatever its size, this a cost per value, so it wins
 * for many small trainables and not for a few large ones (docs/performance.md, "Figures behind
 * the code").
 */
export function addInto(t: tf.Tensor, parts: Float32Array[]): boolean {
  if (!soleHeapFloats(t)) return false;
  const dst = valuesOf(t);
  const n = dst.length;
  for (const values of parts) for (let i = 0; i < n; i++) dst[i] += values[i];
  return true;
}

/** What the host-memory backends register: the functions above, which tell wasm's heap from cpu's arrays. */
const HOST_VALUES: HostValuesImpl = { host: true, valuesOf, tensorFrom, writableInPlace, addInto };

/** Register the host-values op for every host-memory backend (at its initialisation, src/backend/index.ts). */
export function useHostValues(): void {
  for (const backend of HOST_MEMORY_BACKENDS) hostValuesOp.register(backend, HOST_VALUES);
}

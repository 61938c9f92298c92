/**
 * A float32 tensor's values in JS, read and written, for the trainer's host-side work: AdamW's
 * and the clip's host form (src/train/adamw.ts, clip.ts) and the data-parallel replicas' copies of
 * trainables and gradients (src/train/replicas.ts). Named once with its reference for any
 * backend (dataSync, a new tensor, never in place); the backends whose tensors are host memory
 * register theirs with `host` set (src/backend/placement.ts: wasm reads and writes its heap
 * without a copy). The trainer asks this op, never which backend runs.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

export interface HostValuesImpl {
  /**
   * The tensors are host memory: reading or writing one costs a copy, no device transfer, so
   * small work (an optimizer's update over a MoE's ~100 small parameters) is faster as a JS loop
   * than as kernels, and replicas can split a batch over the CPU's cores.
   */
  readonly host: boolean;
  /** t's float32 values, to read right away (a view may go stale when the next tensor is made). */
  valuesOf(t: tf.Tensor): Float32Array;
  /** A float32 tensor of `values`, which the caller may overwrite afterwards. */
  tensorFrom(values: Float32Array, shape: number[]): tf.Tensor;
  /** Whether valuesOf(t) may be written to, every reader of t seeing the new values. */
  writableInPlace(t: tf.Tensor): boolean;
  /** Add each of `parts` into t's own values where that is safe; false (t untouched) where not. */
  addInto(t: tf.Tensor, parts: Float32Array[]): boolean;
}

export const referenceHostValues: HostValuesImpl = {
  host: false,
  valuesOf: (t) => t.dataSync() as Float32Array,
  tensorFrom: (values, shape) => tf.tensor(values.slice(), shape, 'float32'),
  writableInPlace: () => false,
  addInto: () => false,
};

export const hostValuesOp = defineOp<HostValuesImpl>('host-values', referenceHostValues);

/** Where the optimizer's and the clip's arithmetic runs: JS loops over the values, or kernels. */
export type Placement = 'host' | 'device';

/** 'host' where `backend` (default: the active one) keeps its tensors in host memory, else 'device'. */
export const defaultPlacement = (backend?: string): Placement => (hostValuesOp.impl(backend).host ? 'host' : 'device');

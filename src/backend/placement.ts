/**
 * Where small numeric work runs. On backends whose tensors are host memory (wasm, cpu), a
 * kernel costs ~10 us of overhead whatever its size, while reading a small tensor is a copy
 * and writing one is a copy: work on a few thousand numbers (a router's [N, E] logits, an
 * optimizer's per-parameter update) is faster as a JS loop than as a dozen kernels. Elsewhere
 * (webgpu, tfjs-node) a read stalls the device and costs a transfer, so it stays in kernels.
 */
import * as tf from '@tensorflow/tfjs';

export type Placement = 'host' | 'device';

/** Backends whose tensors are host memory: reading and writing them costs a copy, no transfer. */
export const HOST_BACKENDS: readonly string[] = ['wasm', 'cpu'];

/** 'host' on HOST_BACKENDS, else 'device'. */
export const defaultPlacement = (backend: string = tf.getBackend()): Placement => (HOST_BACKENDS.includes(backend) ? 'host' : 'device');

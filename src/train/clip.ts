/** Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics), missing from tfjs. */
import * as tf from '@tensorflow/tfjs';
import { defaultPlacement, type Placement } from '../backend/placement.ts';
import { SUM_SQUARES_KERNEL } from '../backend/webgpu-adamw.ts';
import { heapSumSquares } from '../backend/wasm-simd.ts';
import { sumScalars } from './forward.ts';

/** The global L2 norm of all gradients, as a scalar tensor (webgpu and wasm: one kernel per gradient for its Σ g²). */
export function globalNorm(grads: Iterable<tf.Tensor>): tf.Scalar {
  const fused = tf.getKernel(SUM_SQUARES_KERNEL, tf.getBackend()) !== undefined;
  return tf.tidy(() => {
    const squares = [...grads].map((g) => (fused && g.dtype === 'float32' ? (tf.engine().runKernel(SUM_SQUARES_KERNEL, { x: g }) as tf.Scalar) : g.square().sum()));
    return sumScalars(squares).sqrt();
  }) as tf.Scalar;
}

/** The global L2 norm of gradients held on the host (summed in float64). */
export function globalNormOf(grads: Iterable<ArrayLike<number>>): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/** torch's clip coefficient: min(1, maxNorm / (norm + 1e-6)); 1 when clipping is off (maxNorm <= 0) or the norm is not finite. */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/**
 * The gradients' global norm and clip coefficient. Host placement reads every gradient into JS
 * and returns those arrays too, for a caller that scales them there; not where the backend has
 * the Σ g² kernel (webgpu, wasm with its SIMD module), which costs less than the read. On wasm
 * the SIMD module sums them where they lie (heapSumSquares), with no kernel a gradient.
 */
async function measure(grads: Map<string, tf.Tensor>, maxNorm: number, placement: Placement) {
  const onHost = placement === 'host' && tf.getKernel(SUM_SQUARES_KERNEL, tf.getBackend()) === undefined;
  const host = onHost ? new Map([...grads].map(([name, g]) => [name, g.dataSync() as Float32Array])) : null;
  let norm: number;
  const onHeap = host ? null : heapSumSquares(tf, grads.values());
  if (host) {
    norm = globalNormOf(host.values());
  } else if (onHeap !== null) {
    norm = Math.sqrt(onHeap);
  } else {
    const normT = globalNorm(grads.values());
    norm = (await normT.data())[0]; // awaited: GPU backends refuse synchronous reads
    normT.dispose();
  }
  return { norm, factor: clipScale(norm, maxNorm), host };
}

/**
 * The global norm and the clip coefficient, leaving the gradients as they are: for an optimizer
 * that scales them itself (AdamW.apply's gradScale), which on webgpu saves a kernel a gradient.
 */
export async function clipFactor(grads: Map<string, tf.Tensor>, maxNorm: number, placement: Placement = defaultPlacement()): Promise<{ norm: number; factor: number }> {
  const { norm, factor } = await measure(grads, maxNorm, placement);
  return { norm, factor };
}

/**
 * Scale every gradient by min(1, maxNorm / (norm + 1e-6)) in place of the map's tensors
 * (the old tensors are disposed). Returns the norm before clipping. `placement` as AdamW's:
 * 'host' reads the gradients and does the arithmetic in JS, with no kernels (wasm, cpu).
 */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number, placement: Placement = defaultPlacement()): Promise<number> {
  const { norm, factor, host } = await measure(grads, maxNorm, placement);
  if (factor !== 1) {
    for (const [name, g] of grads) {
      grads.set(name, host ? tf.tensor(host.get(name)!.map((x) => x * factor), g.shape) : tf.tidy(() => g.mul(factor)));
      g.dispose();
    }
  }
  return norm;
}

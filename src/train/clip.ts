/** Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics), missing from tfjs. */
import * as tf from '@tensorflow/tfjs';
import { sumSquaresOp } from '../ops/clip.ts';
import { defaultPlacement, type Placement } from '../ops/host-values.ts';
import { sumScalars } from './forward.ts';

/** The global L2 norm of all gradients, as a scalar tensor: the sum-squares op (src/ops/clip.ts) per gradient. */
export function globalNorm(grads: Iterable<tf.Tensor>, impl = sumSquaresOp.impl()): tf.Scalar {
  return tf.tidy(() => sumScalars([...grads].map((g) => impl.of(g))).sqrt()) as tf.Scalar;
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
 * and returns those arrays too, for a caller that scales them there; not where the backend
 * registers its sum-squares op (webgpu, wasm with its SIMD module), which costs less than the
 * read. Where that op sums the gradients where they lie (wasm), no kernel runs at all.
 */
async function measure(grads: Map<string, tf.Tensor>, maxNorm: number, placement: Placement) {
  const fast = sumSquaresOp.registered();
  const host = placement === 'host' && !fast ? new Map([...grads].map(([name, g]) => [name, g.dataSync() as Float32Array])) : null;
  let norm: number;
  const onHeap = host ? null : (fast?.now?.([...grads.values()]) ?? null);
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

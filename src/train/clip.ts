/** Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics), missing from tfjs. */
import * as tf from '@tensorflow/tfjs';
import { sumScalars } from './forward.ts';

/** The global L2 norm of all gradients, as a scalar tensor. */
export function globalNorm(grads: Iterable<tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    return sumScalars([...grads].map((g) => g.square().sum())).sqrt();
  }) as tf.Scalar;
}

/**
 * Scale every gradient by min(1, maxNorm / (norm + 1e-6)) in place of the map's tensors
 * (the old tensors are disposed). Returns the norm before clipping.
 */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Promise<number> {
  const normT = globalNorm(grads.values());
  const norm = (await normT.data())[0]; // awaited: GPU backends refuse synchronous reads
  normT.dispose();
  if (maxNorm > 0 && Number.isFinite(norm) && norm > maxNorm) {
    const factor = maxNorm / (norm + 1e-6);
    for (const [name, g] of grads) {
      grads.set(name, tf.tidy(() => g.mul(factor)));
      g.dispose();
    }
  }
  return norm;
}

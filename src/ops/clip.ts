/**
 * Σ x² of a gradient, the piece of the gradient clip's global norm (src/train/clip.ts) that
 * touches every value, named once with its reference in tfjs ops (Square, Sum); backends
 * register one kernel a tensor (webgpu: src/backend/webgpu-adamw.ts) or a sum where the
 * gradients lie with no kernel at all (wasm's SIMD module: src/backend/wasm-ops.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

export interface SumSquaresImpl {
  /** Σ x² of one tensor, as a scalar tensor. Call inside a tidy. */
  of(x: tf.Tensor): tf.Scalar;
  /** Σ x² over all of xs as a number (in double), with no tensor made; null where this backend cannot. */
  now?(xs: readonly tf.Tensor[]): number | null;
}

export const referenceSumSquares: SumSquaresImpl = { of: (x) => x.square().sum() };

export const sumSquaresOp = defineOp<SumSquaresImpl>('sum-squares', referenceSumSquares);

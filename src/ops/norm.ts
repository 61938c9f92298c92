/**
 * RMSNorm and LayerNorm over the last axis of rows x [N, H], named once here with their
 * references in plain tfjs ops; backends register faster versions (webgpu: RMSNorm as one GPU
 * program each way, src/backend/webgpu-norm.ts, LayerNorm as one forward and one per gradient,
 * src/backend/webgpu-layer-norm.ts; wasm: both as one SIMD pass each way, src/backend/wasm-ops.ts).
 *
 * The ops cover hilo's case, a frozen float32 weight (base weights never train), where only x
 * gets a gradient. A trainable weight (full-parameter training) takes autodiff through the
 * forward ops, on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

/** x [N, H], a frozen weight [H] -> [N, H]; differentiable in x. */
export type RmsNormImpl = (x: tf.Tensor2D, weight: tf.Tensor1D, eps: number) => tf.Tensor2D;

/** w ⊙ x / sqrt(mean(x²) + eps) as forward ops: autodiff gives every input its gradient. */
function plainRmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true); // [N, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/**
 * The reference: the forward ops, with x's gradient written out (the weight is frozen):
 *   r = 1/sqrt(mean(x²) + eps),  g = w ⊙ dy,  dx = r·g − x · r³ · mean(g ⊙ x)
 * ~9 kernels backward, where autodiff through the forward ops took ~20 and filled an [N, H]
 * array of ones in JS for Mean's gradient.
 */
export const referenceRmsNorm: RmsNormImpl = (x, weight, eps) => {
  const op = tf.customGrad((...args) => {
    const xs = args[0] as tf.Tensor2D;
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps)); // [N, 1]
    (args[1] as tf.GradSaveFunc)([xs, r]);
    return {
      value: tf.mul(tf.mul(xs, r), weight) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xv, rv] = saved;
        const g = tf.mul(dy, weight);
        const c = tf.mul(tf.mean(tf.mul(g, xv), -1, true), tf.mul(tf.mul(rv, rv), rv)); // [N, 1]
        return tf.sub(tf.mul(g, rv), tf.mul(xv, c));
      },
    };
  });
  return op(x) as tf.Tensor2D;
};

export const rmsNormOp = defineOp<RmsNormImpl>('rms-norm', referenceRmsNorm);

/** RMSNorm over the last axis: w ⊙ x / sqrt(mean(x²) + eps). x [N, H], w [H]. Call inside a tidy. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number, impl = rmsNormOp.impl()): tf.Tensor2D {
  if ((weight instanceof tf.Variable && weight.trainable) || x.rank !== 2 || x.dtype !== 'float32') return plainRmsNorm(x, weight, eps) as tf.Tensor2D;
  return (weight.dtype === 'float32' ? impl : referenceRmsNorm)(x, weight, eps);
}

/** x [N, H], weight and bias [H] -> [N, H]; differentiable in every input. */
export type LayerNormImpl = (x: tf.Tensor2D, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number) => tf.Tensor2D;

/** (x − mean) / sqrt(var + eps) ⊙ w + b, with the biased variance (as torch). */
export const referenceLayerNorm: LayerNormImpl = (x, weight, bias, eps) => {
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1] each
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
};

export const layerNormOp = defineOp<LayerNormImpl>('layer-norm', referenceLayerNorm);

/** LayerNorm over the last axis (biased variance, as torch). x [N, H]. Call inside a tidy. */
export function layerNorm(x: tf.Tensor2D, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number, impl = layerNormOp.impl()): tf.Tensor2D {
  return impl(x, weight, bias, eps);
}

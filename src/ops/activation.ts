/**
 * The gated MLP's hidden activation silu(gate) ⊙ up (Llama's SwiGLU), named once with its
 * reference in plain tfjs ops; wasm registers one SIMD kernel each way (src/backend/wasm-ops.ts),
 * where Sigmoid, two Multiplies forward and ~6 kernels backward each streamed [N, I].
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

/** gate, up [N, I] -> silu(gate) ⊙ up [N, I]; differentiable in both. */
export type SwiGluImpl = (gate: tf.Tensor2D, up: tf.Tensor2D) => tf.Tensor2D;

export const referenceSwiGlu: SwiGluImpl = (gate, up) => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D;

export const swiGluOp = defineOp<SwiGluImpl>('swiglu', referenceSwiGlu);

/** silu(gate) ⊙ up. Call inside a tidy. */
export function swiGlu(gate: tf.Tensor2D, up: tf.Tensor2D, impl = swiGluOp.impl()): tf.Tensor2D {
  return (gate.dtype === 'float32' ? impl : referenceSwiGlu)(gate, up);
}

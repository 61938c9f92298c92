/**
 * Gradients taken again inside a backward pass: what gradient checkpointing and the chunked
 * cross-entropy do with the parts of the forward they dropped. tfjs's engine.gradients assumes it
 * is the outermost: when it ends at gradient depth 0 it frees its tape and clears the engine's
 * active tape, which the backward pass it runs inside still needs to free its own saved tensors
 * at the end. So the outer tape is put back after each inner pass.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * ∂<f(), dy>/∂xs: the vector-Jacobian product of f at the tensors `xs` it reads, with f run again
 * under its own tape. An x f does not reach gets zeros.
 */
export function recomputeGrads(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = tf.engine().state as unknown as { activeTape: unknown };
  const outer = state.activeTape;
  try {
    const { value, grads } = tf.engine().gradients(f, xs, dy, true);
    value.dispose();
    return grads.map((g, i) => g ?? tf.zerosLike(xs[i]));
  } finally {
    state.activeTape = outer;
  }
}

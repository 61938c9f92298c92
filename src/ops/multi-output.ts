/**
 * An op of several outputs with its own backward, through the engine entry tfjs's customGrad is
 * built on (private in tfjs's types, hence the one cast here): customGrad itself allows a single
 * output, and the routed experts (delta + router logits) and a checkpointed layer (output +
 * router losses) each need two.
 */
import * as tf from '@tensorflow/tfjs';

export interface MultiOutputOp {
  inputs: tf.NamedTensorMap;
  /** The outputs; `save` keeps tensors for the backward (kept clones, as customGrad's). */
  forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor[];
  /** Every output's dy (zeros for an output off the gradient's path) -> one gradient per named input. */
  backwardsFunc: (dys: tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
}

export function runMultiOutput(op: MultiOutputOp): tf.Tensor[] {
  return (tf.engine() as unknown as { runKernelFunc(op: MultiOutputOp): tf.Tensor[] }).runKernelFunc(op);
}

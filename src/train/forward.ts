/** One padded batch through the model: what training and evaluation both start from. */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { CausalLM, ForwardContext } from '../model/types.ts';
import { IGNORE_INDEX, shiftedLabels } from './loss.ts';

/**
 * Per-token NLL [B, T] of the batch's labelled next tokens (0 elsewhere). The padding mask also
 * goes on `ctx` so routers leave padded tokens out of their balance losses.
 */
export function batchTokenNll(model: CausalLM, batch: Batch, ctx?: ForwardContext): tf.Tensor2D {
  const { batchSize: B, seqLen: T } = batch;
  const ids = tf.tensor2d(batch.inputIds, [B, T], 'int32');
  const mask = tf.tensor2d(batch.attentionMask, [B, T]);
  if (ctx) ctx.tokenMask = mask.reshape([B * T]) as tf.Tensor1D;
  // the model's own loss path: a large vocabulary's logits are made a chunk of rows at a time
  return model.tokenNll(ids, shiftedLabels(batch.labels, B, T), { attentionMask: mask, ctx }).reshape([B, T]) as tf.Tensor2D;
}

/**
 * Σ xs with AddN in groups of 7: webgpu binds one storage buffer per AddN input and allows 8 per
 * shader stage, so one AddN over a model's 28+ router losses (or 100+ gradients) fails there.
 */
export function sumScalars(xs: readonly tf.Tensor[]): tf.Scalar {
  if (xs.length === 0) return tf.scalar(0);
  if (xs.length <= 7) return tf.addN(xs as tf.Tensor[]) as tf.Scalar;
  const parts: tf.Tensor[] = [];
  for (let i = 0; i < xs.length; i += 7) parts.push(tf.addN(xs.slice(i, i + 7) as tf.Tensor[]));
  return sumScalars(parts);
}

/** `loss` plus the weighted router losses the forward pass pushed onto ctx. */
export function withRouterLosses(loss: tf.Scalar, ctx: ForwardContext): tf.Scalar {
  return ctx.auxLosses.length ? (tf.add(loss, sumScalars(ctx.auxLosses)) as tf.Scalar) : loss;
}

/** Labelled next-token positions of a batch (the positions a shifted loss counts). */
export function countTargets(batch: Batch): number {
  let n = 0;
  for (const y of shiftedLabels(batch.labels, batch.batchSize, batch.seqLen)) if (y !== IGNORE_INDEX) n++;
  return n;
}

/**
 * The gradient of one micro-batch's loss: what the training loop runs for each micro-batch, and
 * what each data-parallel replica runs for its shard (src/train/replicas.ts).
 *
 *   loss = weight · (CE(labelled next tokens) + Σ router losses)      data.loss "tokens"
 *   loss = weight · (CE over each item's candidates + Σ router losses) data.loss "choices"
 */
import * as tf from '@tensorflow/tfjs';
import { leanVariableGrads } from '../ops/recompute.ts';
import { mixSeed } from '../rng.ts';
import type { CausalLM, ForwardContext } from '../model/types.ts';
import { batchTokenNll, countTargets, withRouterLosses } from './forward.ts';
import { choiceCrossEntropy } from './loss.ts';
import type { MicroBatch } from './shard.ts';

/** The single-replica loss of a micro-batch (inside a gradient tape). */
export function microBatchLoss(model: CausalLM, micro: MicroBatch, ctx: ForwardContext): tf.Scalar {
  const nll = batchTokenNll(model, micro.batch, ctx); // [B, T]
  if (micro.kind === 'tokens') {
    return withRouterLosses(nll.sum().div(Math.max(1, countTargets(micro.batch))) as tf.Scalar, ctx);
  }
  const scores = nll.sum(1).neg().reshape([micro.batch.batchSize / micro.choices, micro.choices]) as tf.Tensor2D; // [items, C]
  return withRouterLosses(choiceCrossEntropy(scores, micro.answers), ctx);
}

export interface GradientOptions {
  /** Multiplies the loss (a shard's share of its micro-batch, src/train/shard.ts); default 1. */
  weight?: number;
  /** Dropout call i draws its seed from mixSeed(...seedParts, i): the same parts, the same masks. */
  seedParts: readonly number[];
  /** Recompute each decoder layer in the backward (train.gradient_checkpointing). */
  checkpointLayers?: boolean;
}

/**
 * ∂(weight · loss)/∂vars by variable name, and the weighted loss read back. The caller disposes
 * the gradients; everything else the pass made is freed here.
 */
export async function microBatchGradients(
  model: CausalLM, vars: tf.Variable[], micro: MicroBatch, opts: GradientOptions,
): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
  let dropoutCalls = 0;
  const ctx: ForwardContext = {
    training: true, auxLosses: [],
    dropoutSeed: { next: () => mixSeed(...opts.seedParts, dropoutCalls++) },
    checkpointLayers: opts.checkpointLayers,
  };
  const weight = opts.weight ?? 1;
  // tf.variableGrads with a backward that frees each node's output gradients once it is past
  // them (src/ops/recompute.ts), and its saved tensors too where the layers are checkpointed
  // (their inputs, the one large thing saved): the same gradients, a lower heap high-water mark
  const { value, grads } = leanVariableGrads(() => {
    const loss = microBatchLoss(model, micro, ctx);
    return weight === 1 ? loss : (loss.mul(weight) as tf.Scalar);
  }, vars, opts.checkpointLayers === true);
  tf.dispose(ctx.auxLosses); // kept by the routers past the model's tidy; the loss has used them
  const loss = (await value.data())[0];
  value.dispose();
  return { loss, grads };
}

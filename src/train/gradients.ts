/**
 * Where the training loop's gradients come from, behind one interface whether a micro-batch runs
 * on this thread alone (LocalGradients) or is split over data-parallel replicas in worker
 * threads (Replicas, src/train/replicas.ts). The loop is the same with one thread or eight:
 *
 *   gradients(micro, seedParts)  the micro-batch's loss and ∂loss/∂trainables by trainable key
 *   updated()                    after the optimizer step: the trainables changed in place
 *   score(batch, ctx)            an evaluation batch's per-sequence NLL (eval and the test split)
 *   close()                      at the run's end
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { CausalLM, ForwardContext } from '../model/types.ts';
import { sequenceNll } from './evaluate.ts';
import { Replicas, type ReplicaSpec } from './replicas.ts';
import type { MicroBatch } from './shard.ts';
import { microBatchGradients } from './step.ts';

export interface MicroGradients {
  /** The micro-batch's loss: CE + router losses (the shards' weighted losses, summed). */
  loss: number;
  /** ∂loss/∂trainable by the key of the run's trainables map; the caller disposes them. */
  grads: Map<string, tf.Tensor>;
}

export interface GradientSource {
  /** Threads each micro-batch is split over (1: this thread alone). */
  readonly count: number;
  /**
   * The loss and gradients of one micro-batch. Dropout draws from `seedParts` (with the shard's
   * index appended when the micro-batch is split), so the same parts give the same masks.
   */
  gradients(micro: MicroBatch, seedParts: readonly number[]): Promise<MicroGradients>;
  /** The trainables were changed (an optimizer step): every replica takes them before its next job. */
  updated(): void;
  /** Summed NLL [B] and labelled tokens [B] of an evaluation batch; `ctx` (expert usage) goes with this thread's rows. */
  score(batch: Batch, ctx?: ForwardContext): Promise<{ nll: Float32Array; tokens: Int32Array }>;
  /** Tensors each worker thread held after its last job (a leak check across threads; none on one thread). */
  workerTensors(): number[];
  /** Stop any worker threads (idempotent). */
  close(): Promise<void>;
}

/** This thread alone: the model's own variables are the trainables, so an update needs no copy. */
export class LocalGradients implements GradientSource {
  readonly count = 1;
  private readonly vars: tf.Variable[];
  /** trainable key by variable name (variableGrads answers by name) */
  private readonly keyOf: Map<string, string>;

  constructor(private readonly model: CausalLM, trainables: Map<string, tf.Variable>, private readonly checkpointLayers = false) {
    this.vars = [...trainables.values()];
    this.keyOf = new Map([...trainables].map(([key, v]) => [v.name, key]));
  }

  async gradients(micro: MicroBatch, seedParts: readonly number[]): Promise<MicroGradients> {
    const { loss, grads } = await microBatchGradients(this.model, this.vars, micro, { seedParts, checkpointLayers: this.checkpointLayers });
    return { loss, grads: new Map(Object.entries(grads).map(([name, g]) => [this.keyOf.get(name)!, g])) };
  }

  updated(): void {}

  score(batch: Batch, ctx?: ForwardContext): Promise<{ nll: Float32Array; tokens: Int32Array }> {
    return sequenceNll(this.model, batch, ctx);
  }

  workerTensors(): number[] {
    return [];
  }

  async close(): Promise<void> {}
}

/**
 * The gradient source for `count` replicas of `model` (train.data_parallel resolved): this thread
 * alone for 1, else count - 1 workers building `spec` beside it (waited on until each has its model).
 */
export async function startGradients(model: CausalLM, trainables: Map<string, tf.Variable>, spec: ReplicaSpec, count: number): Promise<GradientSource> {
  return count > 1 ? Replicas.start(model, spec, count, trainables) : new LocalGradients(model, trainables, spec.checkpointLayers);
}

/**
 * Data-parallel training on one machine, the worker-pool GradientSource (src/train/gradients.ts):
 * the model, frozen base and adapters, is built again in worker threads
 * (src/train/replica-worker.ts), each micro-batch is split into shards (src/train/shard.ts), the
 * main thread computes the first shard's gradients while each worker computes another's, and the
 * gradients are summed. The optimizer runs once, on the main thread; the new parameters reach the
 * workers through shared memory before their next shard.
 *
 * Why: tfjs-backend-wasm runs its kernels on one thread, and a native BLAS spreads only the
 * larger products over the cores. A replica per core, each on one BLAS thread, keeps every core
 * on the whole step (norms, softmax and gradients too), as torch's intra-op threads do.
 *
 * Shared memory, one Float32Array per worker of every trainable value end to end in a fixed
 * order, used both ways in turn: the main thread writes the parameters into it after an update,
 * the worker copies them into its heap at the start of its next job, and at the end of a
 * gradient job writes its shard's gradients over them, which the main thread adds into its own.
 * The worker reads parameters only when their version changed, and the main thread writes them
 * whenever it did, so the gradients left there are never taken for parameters. One buffer, not
 * a parameter buffer beside a gradient buffer: a float32 copy of the trainables fewer.
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { AdapterPlan } from '../adapters/plan.ts';
import type { InjectOptions } from '../adapters/inject.ts';
import { limitBlasThreads } from '../backend/index.ts';
import { fieldError, HiloError } from '../errors.ts';
import { HOST_MEMORY_BACKENDS } from '../names.ts';
import { hostValuesOp } from '../ops/host-values.ts';
import type { RawTensorData, WeightStorage } from '../model/causal-lm.ts';
import type { CausalLM, ModelConfig } from '../model/types.ts';
import type { Batch } from '../data/batch.ts';
import type { ForwardContext } from '../model/types.ts';
import { labelledTokens, rowNll } from './evaluate.ts';
import type { GradientSource, MicroGradients } from './gradients.ts';
import { evenSplit, shardMicroBatch, sliceRows, type MicroBatch, type Shard } from './shard.ts';
import { microBatchGradients } from './step.ts';

/** How to build the same model again in a worker (its trainable values come from the main thread). */
export interface ReplicaSpec {
  /** The tfjs backend each worker initialises (one whose tensors are host memory). */
  backend: string;
  /**
   * An HF folder (with how the main thread holds its weights, and those it holds in shared
   * memory, which the worker takes as they are instead of a copy), or a random initialisation
   * (pretraining, benchmarks).
   */
  model: { dir: string; storage?: WeightStorage; shared?: Map<string, RawTensorData> } | { config: ModelConfig; seed: number };
  /** Recompute each decoder layer in the backward (train.gradient_checkpointing). */
  checkpointLayers?: boolean;
  /** Every base weight is trainable (adapter.method none). */
  trainable: boolean;
  /** Adapters injected with this plan and these options; null for none. */
  adapters: { plan: AdapterPlan; options: Required<InjectOptions> } | null;
}

/** [name, number of values] of each trainable, in the order they lie in the shared buffers. */
export type ParamLayout = Array<[string, number]>;

export type ToWorker =
  | { type: 'grad'; id: number; shard: Shard; seedParts: number[]; paramsVersion: number }
  | { type: 'score'; id: number; batch: Batch; paramsVersion: number }
  | { type: 'close' };
export type FromWorker =
  | { type: 'ready'; tensors: number }
  | { type: 'grad'; id: number; loss: number; tensors: number }
  | { type: 'score'; id: number; nll: Float32Array; tensors: number }
  | { type: 'error'; id: number | null; message: string };
type Answer = Extract<FromWorker, { type: 'grad' | 'score' }>;
type Job = Extract<ToWorker, { type: 'grad' | 'score' }>;

/** What a worker is started with (workerData). */
export interface ReplicaInit {
  replica: number;
  spec: ReplicaSpec;
  layout: ParamLayout;
  /** The parameters in (when their version changed), this worker's gradients out. */
  shared: SharedArrayBuffer;
}

/** The most replicas `auto` starts (one per core up to this). */
export const MAX_AUTO_REPLICAS = 8;

/**
 * Replicas for a run: `setting` is train.data_parallel ("auto" or a count), `batchSize` the
 * micro-batch's rows (or items), `backend` the tfjs backend (initBackend's answer). auto =
 * HILO_DATA_PARALLEL when set, else one per core, at most MAX_AUTO_REPLICAS and the batch size,
 * where the backend's tensors are host memory (elsewhere 1: the device, not the host's cores,
 * does the work).
 */
export function resolveDataParallel(
  setting: 'auto' | number, batchSize: number, backend: { name: string; hostMemory: boolean },
  env: NodeJS.ProcessEnv = process.env, cores = os.availableParallelism?.() ?? os.cpus().length,
): number {
  const host = backend.hostMemory;
  if (setting === 'auto') {
    const raw = env.HILO_DATA_PARALLEL;
    if (raw !== undefined && raw !== '') {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw fieldError('HILO_DATA_PARALLEL', raw, 'a whole number >= 1 (1 turns data parallelism off)');
      return host ? Math.min(n, batchSize) : 1;
    }
    return host ? Math.max(1, Math.min(cores, MAX_AUTO_REPLICAS, batchSize)) : 1;
  }
  if (setting > 1 && !host) {
    throw fieldError('recipe.train.data_parallel', setting, `1 or "auto" on the ${backend.name} backend (replicas split a batch over CPU cores: ${HOST_MEMORY_BACKENDS.join(' and ')} only)`);
  }
  if (setting > batchSize) {
    throw fieldError('recipe.train.data_parallel', setting, `at most train.batch_size (${batchSize}): every replica takes at least one example of a micro-batch`);
  }
  return setting;
}

// the active backend's host values (src/ops/host-values.ts): where start() runs, host memory
const valuesOf = (t: tf.Tensor) => hostValuesOp.impl().valuesOf(t);
const addInto = (t: tf.Tensor, parts: Float32Array[]) => hostValuesOp.impl().addInto(t, parts);
const tensorFrom = (values: Float32Array, shape: number[]) => hostValuesOp.impl().tensorFrom(values, shape);

/** The trainables' layout, in the map's order. */
export function layoutOf(trainables: Map<string, tf.Variable>): ParamLayout {
  return [...trainables].map(([name, v]) => [name, v.size]);
}

/** A shared buffer holding one float32 per value of `layout`. */
function sharedFloats(layout: ParamLayout): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * layout.reduce((n, [, size]) => n + size, 0));
}

/** The worker entry: a JS file that registers tsx, then runs replica-worker.ts (bundles replace it). */
const WORKER_URL = new URL('./replica-boot.mjs', import.meta.url);

interface Pending {
  resolve: (m: Answer) => void;
  reject: (e: Error) => void;
}

class ReplicaWorker {
  readonly worker: Worker;
  /** Parameters to the worker, its gradients back (ReplicaInit.shared). */
  readonly shared: Float32Array;
  private pending = new Map<number, Pending>();
  private failure: Error | null = null;
  private ready: Promise<number>;
  tensors = 0;

  constructor(readonly index: number, init: ReplicaInit) {
    this.shared = new Float32Array(init.shared);
    // One kernel thread each: the replicas are the parallelism (a threaded wasm pool or a
    // second BLAS thread per replica would only compete for the same cores).
    this.worker = new Worker(WORKER_URL, { workerData: init, env: { ...process.env, HILO_WASM_THREADS: '1' } });
    this.worker.unref();
    this.ready = new Promise<number>((resolve, reject) => {
      const onReady = (m: FromWorker) => {
        if (m.type === 'ready') resolve(m.tensors);
        else if (m.type === 'error') reject(this.fail(`could not build the model: ${m.message}`));
      };
      this.worker.once('message', onReady);
      this.worker.once('error', (e) => reject(this.fail(e.message)));
    });
    this.worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') return;
      const job = m.id === null ? undefined : this.pending.get(m.id);
      if (m.type === 'error') {
        const e = this.fail(m.message);
        if (job) job.reject(e);
        return;
      }
      if (!job) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      this.tensors = m.tensors;
      job.resolve(m);
    });
    this.worker.on('error', (e) => this.fail(e.message));
    this.worker.on('exit', (code) => {
      if (code !== 0) this.fail(`exited with code ${code}`);
    });
  }

  /** Record why this replica cannot go on and reject everything waiting on it. */
  private fail(why: string): Error {
    this.failure ??= new HiloError(`data-parallel replica ${this.index}: ${why}`);
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    return this.failure;
  }

  async started(): Promise<void> {
    this.worker.ref(); // waited on: keep Node alive until it answers
    try {
      this.tensors = await this.ready;
    } finally {
      this.worker.unref();
    }
  }

  run<A extends Answer>(message: Job): Promise<A> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker.ref();
    return new Promise<A>((resolve, reject) => {
      this.pending.set(message.id, { resolve: resolve as (m: Answer) => void, reject });
      this.worker.postMessage(message satisfies ToWorker);
    });
  }
}

export class Replicas implements GradientSource {
  private readonly layout: ParamLayout;
  private version = 0;
  private published = -1;
  private jobs = 0;

  private constructor(
    private readonly model: CausalLM,
    private readonly workers: ReplicaWorker[],
    private readonly trainables: Map<string, tf.Variable>,
    private readonly checkpointLayers = false,
  ) {
    this.layout = layoutOf(trainables);
  }

  /**
   * Start `count - 1` workers (the main thread, with `model`, is replica 0) building `spec`, whose
   * trainables must be laid out as `trainables` (same names, same sizes, same order), and wait
   * until each has its model. A worker that cannot build it is an error naming the replica and
   * the cause.
   */
  static async start(model: CausalLM, spec: ReplicaSpec, count: number, trainables: Map<string, tf.Variable>): Promise<Replicas> {
    if (!hostValuesOp.impl().host) throw new HiloError(`data-parallel replicas: backend "${spec.backend}"; allowed: ${HOST_MEMORY_BACKENDS.join(', ')}`);
    const layout = layoutOf(trainables);
    limitBlasThreads(1); // this thread is replica 0; the workers bind the BLAS after this, at 1 too
    const workers = Array.from({ length: count - 1 }, (_, i) =>
      new ReplicaWorker(i + 1, { replica: i + 1, spec, layout, shared: sharedFloats(layout) }));
    const replicas = new Replicas(model, workers, trainables, spec.checkpointLayers);
    try {
      await Promise.all(workers.map((w) => w.started()));
    } catch (e) {
      await replicas.close();
      throw e;
    }
    return replicas;
  }

  /** Replicas in all, the main thread included. */
  get count(): number {
    return this.workers.length + 1;
  }

  /** Tensors each worker held after its last shard (a leak check across threads). */
  workerTensors(): number[] {
    return this.workers.map((w) => w.tensors);
  }

  /** Float32 values in shared memory: one copy of the trainables per worker. */
  get sharedFloats(): number {
    return this.workers.reduce((n, w) => n + w.shared.length, 0);
  }

  /** Mark the main thread's trainables as changed: they are copied out before the next shards. */
  updated(): void {
    this.version += 1;
  }

  private publish(): void {
    if (this.published === this.version) return;
    let offset = 0;
    for (const [name, size] of this.layout) {
      const values = valuesOf(this.trainables.get(name)!);
      for (const w of this.workers) w.shared.set(values, offset);
      offset += size;
    }
    this.published = this.version;
  }

  /**
   * Σ_s ∂(w_s · loss_s)/∂trainables over the shards of `micro` (shardMicroBatch, at most `count`):
   * the first on this thread, the others on the workers at the same time. Returns the summed
   * loss and gradients by trainable key (the caller disposes them). Shard s's dropout draws from
   * [...seedParts, s].
   */
  async gradients(micro: MicroBatch, seedParts: readonly number[]): Promise<MicroGradients> {
    const shards: Shard[] = shardMicroBatch(micro, this.count);
    const seeds = (s: number) => [...seedParts, s];
    this.publish();
    const remote = shards.slice(1).map((shard, i) =>
      this.workers[i].run<Extract<Answer, { type: 'grad' }>>({ type: 'grad', id: ++this.jobs, shard, seedParts: seeds(i + 1), paramsVersion: this.published }));
    // Rejections are handled below; until then an early one must not surface as unhandled.
    for (const r of remote) r.catch(() => {});
    const vars = [...this.trainables.values()];
    const local = await microBatchGradients(this.model, vars, shards[0].micro, { weight: shards[0].weight, seedParts: seeds(0), checkpointLayers: this.checkpointLayers });
    let answers: Array<Extract<Answer, { type: 'grad' }>>;
    try {
      answers = await Promise.all(remote);
    } catch (e) {
      tf.dispose(local.grads);
      throw e;
    }
    let loss = local.loss;
    for (const a of answers) loss += a.loss;
    // The workers' values are added into this thread's gradient where it is the only holder of
    // its data (addInto), else copied into tensors and summed by one AddN kernel.
    const grads = new Map<string, tf.Tensor>();
    let offset = 0;
    for (const [name, size] of this.layout) {
      const v = this.trainables.get(name)!;
      const at = offset;
      const own = local.grads[v.name];
      if (own && addInto(own, answers.map((_, w) => this.workers[w].shared.subarray(at, at + size)))) {
        grads.set(name, own);
        delete local.grads[v.name]; // handed on, not disposed below
        offset += size;
        continue;
      }
      grads.set(name, tf.tidy(() => {
        const theirs = answers.map((_, w) => tensorFrom(this.workers[w].shared.subarray(at, at + size), v.shape));
        const parts = own ? [own, ...theirs] : theirs;
        return parts.length === 0 ? tf.zeros(v.shape) : parts.length === 1 ? parts[0].clone() : tf.addN(parts);
      }));
      offset += size;
    }
    tf.dispose(local.grads);
    return { loss, grads };
  }

  /**
   * Summed NLL of each sequence's labelled tokens [B] and its labelled tokens, for an evaluation
   * batch split by rows: the first part on this thread (with `ctx`, e.g. expert usage), the
   * others on the workers, with the trainables as they are now.
   */
  async score(batch: Batch, ctx?: ForwardContext): Promise<{ nll: Float32Array; tokens: Int32Array }> {
    this.publish();
    const parts = evenSplit(batch.batchSize, Math.min(this.count, batch.batchSize)).map(([r0, r1]) => sliceRows(batch, r0, r1));
    const remote = parts.slice(1).map((part, i) =>
      this.workers[i].run<Extract<Answer, { type: 'score' }>>({ type: 'score', id: ++this.jobs, batch: part, paramsVersion: this.published }));
    for (const r of remote) r.catch(() => {});
    const own = await rowNll(this.model, parts[0], ctx);
    const nll = new Float32Array(batch.batchSize);
    nll.set(own);
    let row = own.length;
    for (const answer of await Promise.all(remote)) {
      nll.set(answer.nll, row);
      row += answer.nll.length;
    }
    return { nll, tokens: labelledTokens(batch) };
  }

  /** Stop the workers and give this thread's BLAS its threads back (idempotent). */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    limitBlasThreads(null);
  }
}

/**
 * Data-parallel replicas (src/train/replicas.ts) on the real stories260K model with MoE-LoRA
 * adapters, a worker thread as replica 1:
 *  - the summed gradients equal the whole micro-batch's when nothing but the cross-entropy is
 *    trained (no router losses, no dropout): the shard weights make the losses add up;
 *  - with router losses and dropout they equal Σ_s w_s ∇L(shard s) computed on this thread alone,
 *    bit for bit (same kernels, one BLAS thread each), before and after the parameters change;
 *  - an evaluation batch split over them scores as it does whole;
 *  - as the training loop's GradientSource, the pool gives the loss and gradient norm that this
 *    thread alone (LocalGradients) gives, which it would not if a shard's gradients went missing;
 *  - nothing leaks on either thread; a replica that cannot start, or dies, is an error that says so.
 */
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters, type Adapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { initBackend } from '../../src/backend/index.ts';
import { HOST_MEMORY_BACKENDS } from '../../src/names.ts';
import { mulberry32 } from '../../src/rng.ts';
import { loadModel } from '../../src/model/load.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { globalNormOf } from '../../src/train/clip.ts';
import { LocalGradients } from '../../src/train/gradients.ts';
import { Replicas, resolveDataParallel, type ReplicaSpec } from '../../src/train/replicas.ts';
import { shardMicroBatch, type MicroBatch } from '../../src/train/shard.ts';
import { microBatchGradients } from '../../src/train/step.ts';
import { labelledTokens, rowNll } from '../../src/train/evaluate.ts';
import { STORIES260K } from '../helpers/fixtures.ts';
import { microBatch } from '../helpers/batches.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STORIES = STORIES260K;

describe('resolveDataParallel', () => {
  // as initBackend describes each engine
  const engine = (name: string) => ({ name, hostMemory: HOST_MEMORY_BACKENDS.includes(name) });
  it.each([
    ['auto', 8, 'wasm', {}, 2, 2],
    ['auto', 8, 'wasm', {}, 16, 8],
    ['auto', 3, 'cpu', {}, 16, 3],
    ['auto', 8, 'webgpu', {}, 16, 1],
    ['auto', 8, 'wasm', { HILO_DATA_PARALLEL: '1' }, 16, 1],
    ['auto', 8, 'wasm', { HILO_DATA_PARALLEL: '12' }, 2, 8],
    [1, 8, 'webgpu', {}, 2, 1],
    [4, 8, 'wasm', {}, 2, 4],
  ] as const)('%s, batch %i, %s, env %o, %i cores: %i', (setting, batch, backend, env, cores, want) => {
    expect(resolveDataParallel(setting, batch, engine(backend), env, cores)).toBe(want);
  });

  it.each([
    [2, 8, 'webgpu', {}, 'recipe.train.data_parallel: got 2; allowed: 1 or "auto" on the webgpu backend (replicas split a batch over CPU cores: wasm and cpu only)'],
    [5, 4, 'wasm', {}, 'recipe.train.data_parallel: got 5; allowed: at most train.batch_size (4): every replica takes at least one example of a micro-batch'],
    ['auto', 4, 'wasm', { HILO_DATA_PARALLEL: 'two' }, 'HILO_DATA_PARALLEL: got "two"; allowed: a whole number >= 1 (1 turns data parallelism off)'],
  ] as const)('refuses %s with batch %i on %s', (setting, batch, backend, env, message) => {
    expect(() => resolveDataParallel(setting, batch, engine(backend), env, 2)).toThrow(message);
  });
});

/** MoE-LoRA on q, v and down of every layer: 3 experts of rank `rank`, top-2. */
function plan(layers: number, balance: boolean, rank = 2): AdapterPlan {
  const mod = { experts: 3, rank, topK: 2 };
  return {
    method: 'moe-uniform', targetModules: ['q_proj', 'v_proj', 'down_proj'], strategy: 'topk', topP: 0.8, alpha: 4,
    scaling: 'alpha/r', fixedScale: 1, dropout: balance ? 0.1 : 0,
    layers: Array.from({ length: layers }, () => ({ 'self_attn.q_proj': mod, 'self_attn.v_proj': mod, 'mlp.down_proj': mod })),
  };
}

/** Seeded values in every trainable (B starts at 0, which would leave A's gradient 0). */
function randomise(adapters: Adapters, seed: number): void {
  const u = mulberry32(seed);
  for (const v of adapters.variables.values()) tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => (u() - 0.5) * 0.2), v.shape)));
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `[${i}] ${got[i]} vs ${want[i]}`).toBeLessThan(tol * Math.max(1, Math.abs(want[i])));
}

const arrays = (grads: Map<string, tf.Tensor>) => new Map([...grads].map(([k, g]) => [k, g.dataSync() as Float32Array]));

describe('Replicas', () => {
  let model: CausalLM;
  beforeAll(async () => {
    await initBackend('wasm');
    model = await loadModel(STORIES);
  });
  afterAll(() => model?.dispose());

  /** Adapters on `model` and the same in a worker; the caller closes and disposes. */
  async function start(balance: boolean): Promise<{ adapters: Adapters; replicas: Replicas }> {
    const p = plan(model.config.numLayers, balance);
    const adapters = injectAdapters(model, p, { seed: 1, balanceCoef: balance ? 0.05 : 0, zLossCoef: balance ? 0.01 : 0 });
    randomise(adapters, 3);
    const spec: ReplicaSpec = { backend: 'wasm', model: { dir: STORIES }, trainable: false, adapters: { plan: p, options: adapters.options } };
    return { adapters, replicas: await Replicas.start(model, spec, 2, adapters.variables) };
  }

  /** Gradients by trainable key for one shard computed on this thread. */
  async function local(adapters: Adapters, micro: MicroBatch, weight: number, seedParts: number[]): Promise<Map<string, Float32Array>> {
    const byName = new Map([...adapters.variables].map(([k, v]) => [v.name, k]));
    const { grads } = await microBatchGradients(model, [...adapters.variables.values()], micro, { weight, seedParts });
    const out = new Map(Object.entries(grads).map(([n, g]) => [byName.get(n)!, g.dataSync() as Float32Array]));
    tf.dispose(grads);
    return out;
  }

  it('sum to the whole micro-batch\'s cross-entropy gradient', { timeout: 120_000 }, async () => {
    const { adapters, replicas } = await start(false);
    try {
      const micro = microBatch(model.config.vocabSize);
      const whole = await local(adapters, micro, 1, [0]);
      const { loss, grads } = await replicas.gradients(micro, [0]); // shard s: seed parts [0, s]
      const got = arrays(grads);
      const { loss: wholeLoss } = await microBatchGradients(model, [...adapters.variables.values()], micro, { seedParts: [0] })
        .then((r) => (tf.dispose(r.grads), r));
      expect(loss).toBeCloseTo(wholeLoss, 5);
      expect([...got.keys()].sort()).toEqual([...adapters.variables.keys()].sort());
      let scale = 0;
      for (const g of whole.values()) for (const x of g) scale = Math.max(scale, Math.abs(x));
      expect(scale).toBeGreaterThan(1e-3); // A, B and the routers all get a real gradient
      for (const [key, g] of whole) {
        const d = got.get(key)!;
        for (let i = 0; i < g.length; i++) expect(Math.abs(d[i] - g[i]), `${key}[${i}]`).toBeLessThan(2e-6 * scale + 1e-7);
      }
      tf.dispose([...grads.values()]);
    } finally {
      await replicas.close();
      adapters.dispose();
    }
  });

  it('compute each shard as this thread would, with router losses and dropout, before and after an update', { timeout: 120_000 }, async () => {
    const { adapters, replicas } = await start(true);
    try {
      const micro = microBatch(model.config.vocabSize);
      const shards = shardMicroBatch(micro, 2);
      const seeds = (s: number) => [5, 1, 0, s]; // what the pool appends the shard to
      const before = tf.memory().numTensors;
      for (const round of [0, 1]) {
        if (round === 1) {
          randomise(adapters, 11); // new parameters: the worker must take them before its shard
          replicas.updated();
        }
        const want = [await local(adapters, shards[0].micro, shards[0].weight, seeds(0)), await local(adapters, shards[1].micro, shards[1].weight, seeds(1))];
        const { grads } = await replicas.gradients(micro, [5, 1, 0]);
        for (const [key, g] of arrays(grads)) {
          const sum = Float32Array.from(want[0].get(key)!, (x, i) => x + want[1].get(key)![i]);
          expect(g, key).toEqual(sum);
        }
        tf.dispose([...grads.values()]);
      }
      const workerTensors = replicas.workerTensors()[0];
      await replicas.gradients(micro, [5, 1, 0]).then((r) => tf.dispose([...r.grads.values()]));
      expect(tf.memory().numTensors).toBe(before);
      expect(replicas.workerTensors()[0]).toBe(workerTensors);
    } finally {
      await replicas.close();
      adapters.dispose();
    }
  });

  it('give the loss and gradient norm this thread alone gives, keyed alike, and score alike', { timeout: 120_000 }, async () => {
    const { adapters, replicas } = await start(false);
    const single = new LocalGradients(model, adapters.variables);
    const norm = (grads: Iterable<tf.Tensor>) => globalNormOf([...grads].map((g) => g.dataSync()));
    try {
      expect([single.count, replicas.count]).toEqual([1, 2]);
      // one float32 copy of the trainables in shared memory per worker: parameters in, gradients out
      expect(replicas.sharedFloats).toBe([...adapters.variables.values()].reduce((n, v) => n + v.size, 0));
      const micro = microBatch(model.config.vocabSize);
      const before = tf.memory().numTensors;
      const one = await single.gradients(micro, [0]);
      const two = await replicas.gradients(micro, [0]);
      expect([...one.grads.keys()].sort()).toEqual([...adapters.variables.keys()].sort());
      expect([...two.grads.keys()].sort()).toEqual([...one.grads.keys()].sort());
      expect(Math.abs(two.loss - one.loss)).toBeLessThan(1e-6 * one.loss);
      const whole = norm(one.grads.values());
      expect(Math.abs(norm(two.grads.values()) - whole)).toBeLessThan(1e-5 * whole);
      // the main thread's shard alone, as the pool's sum would be were the worker's dropped: far off
      const [first] = shardMicroBatch(micro, 2);
      const alone = await microBatchGradients(model, [...adapters.variables.values()], first.micro, { weight: first.weight, seedParts: [0, 0] });
      expect(Math.abs(norm(Object.values(alone.grads)) - whole)).toBeGreaterThan(0.05 * whole);
      tf.dispose([...one.grads.values(), ...two.grads.values(), ...Object.values(alone.grads)]);
      expect(tf.memory().numTensors).toBe(before);
      // the worker's buffer now holds its gradients: a score with the same parameters must not take them for parameters
      const { batch } = micro;
      expectClose((await replicas.score(batch)).nll, (await single.score(batch)).nll, 1e-4);
    } finally {
      await replicas.close();
      await single.close();
      adapters.dispose();
    }
  });

  it('score an evaluation batch split by rows as this thread scores it whole', { timeout: 120_000 }, async () => {
    const { adapters, replicas } = await start(true);
    try {
      const { batch } = microBatch(model.config.vocabSize);
      const whole = await rowNll(model, batch);
      const ctx = { training: false, auxLosses: [], routerStats: new Map<string, tf.Tensor1D>() };
      const { nll, tokens } = await replicas.score(batch, ctx);
      expect(Array.from(tokens)).toEqual(Array.from(labelledTokens(batch)));
      expectClose(nll, whole, 1e-4);
      expect(ctx.routerStats.size).toBe(3 * model.config.numLayers); // expert usage, from this thread's rows
      tf.dispose([...ctx.routerStats.values()]);
      randomise(adapters, 12); // and with the parameters of the moment
      replicas.updated();
      expectClose((await replicas.score(batch)).nll, await rowNll(model, batch), 1e-4);
    } finally {
      await replicas.close();
      adapters.dispose();
    }
  });

  it('say which replica failed and why', { timeout: 120_000 }, async () => {
    const p = plan(model.config.numLayers, false);
    const adapters = injectAdapters(model, p, { seed: 1 });
    try {
      const missing: ReplicaSpec = { backend: 'wasm', model: { dir: path.join(ROOT, 'no-such-model') }, trainable: false, adapters: { plan: p, options: adapters.options } };
      await expect(Replicas.start(model, missing, 2, adapters.variables)).rejects.toThrow(/^data-parallel replica 1: could not build the model: .*no-such-model/);
      const other: ReplicaSpec = { ...missing, model: { dir: STORIES }, adapters: { plan: plan(model.config.numLayers, false, 3), options: adapters.options } };
      await expect(Replicas.start(model, other, 2, adapters.variables)).rejects.toThrow(/^data-parallel replica 1: could not build the model: its trainables .* differ from the main thread's/);
      const replicas = await Replicas.start(model, { ...missing, model: { dir: STORIES } }, 2, adapters.variables);
      try {
        await (replicas as unknown as { workers: Array<{ worker: { terminate(): Promise<number> } }> }).workers[0].worker.terminate();
        const before = tf.memory().numTensors;
        await expect(replicas.gradients(microBatch(model.config.vocabSize), [])).rejects.toThrow('data-parallel replica 1: exited with code 1');
        expect(tf.memory().numTensors).toBe(before); // this thread's shard freed its gradients
      } finally {
        await replicas.close();
      }
    } finally {
      adapters.dispose();
    }
  });
});

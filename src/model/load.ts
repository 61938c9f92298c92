/**
 * Loading a Hugging Face model directory: config.json, then model.safetensors or the shards
 * named by model.safetensors.index.json. Floating tensors are read as their bytes (F32, F16,
 * BF16) into shared memory; the model either converts them to float32 variables (small models)
 * or keeps its weight matrices as they are, outside the tensor engine (WeightStorage: large
 * models, where the wasm heap's 4 GiB and a copy per data-parallel replica would not do).
 * The model computes in float32 either way.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { requireCheckpointFiles } from './checkpoint-files.ts';
import { frozenLinearOp } from '../ops/frozen-linear.ts';
import type { StoredDtype } from '../ops/stored.ts';
import { floatsOf, type AnyTensorData, type HfTensorData, type BaseCausalLM, type ModelOptions, type RawTensorData, type WeightStorage } from './causal-lm.ts';
import { familyOf, isMatrix } from './families.ts';
import { readModelConfig } from './folder.ts';
import { GPT2LMHeadModel } from './gpt2.ts';
import { LlamaForCausalLM } from './llama.ts';
import { readSafetensorsHeader, readSafetensorsRaw } from './safetensors.ts';
import type { Arch, ModelConfig } from './types.ts';

/** The forward code of each family (families.ts says everything else about it). */
const MODEL_CLASSES: Record<Arch, new (config: ModelConfig, hf: Map<string, AnyTensorData>, opts: ModelOptions) => BaseCausalLM> = {
  llama: LlamaForCausalLM,
  gpt2: GPT2LMHeadModel,
};

/**
 * A caller's check of a model before any of its weights is read, which throws to refuse the load:
 * the commands pass the memory estimate's (src/allocate/memory-for-recipe.ts checkModelLoad),
 * which reads adapters and recipes too, so the loader takes it rather than importing it.
 */
export type LoadCheck = (config: ModelConfig, dir: string, backend: string, storage: WeightStorage) => void;

export interface LoadOptions {
  /** Make the base weights trainable variables (full-parameter training). Default false: frozen. */
  trainable?: boolean;
  /** recipe model.dtype: the frozen weights' dtype; auto (default) = as the checkpoint stores them. */
  dtype?: 'auto' | StoredDtype;
  /** Where the weights go; default: outside the engine when their float32 size exceeds heapWeightsCap(). */
  storage?: WeightStorage;
  /** Tensors another thread already holds in shared memory (a replica's): taken as they are, not read. */
  shared?: Map<string, RawTensorData>;
  /** Run with the config before a weight is read (LoadCheck); none by default. */
  check?: LoadCheck;
}

/** Default cap on the frozen weight matrices kept on the engine as float32 (MiB), where the backend can do otherwise. */
export const HEAP_WEIGHTS_MIB = 128;

/**
 * Bytes of float32 weight matrices a frozen model may keep as engine tensors; larger ones are held
 * outside (src/ops/stored.ts). HILO_HEAP_WEIGHTS (MiB) sets it; by default HEAP_WEIGHTS_MIB where
 * the active backend registered a frozen linear (wasm with a native BLAS; webgpu, which puts them
 * on the GPU in row blocks within one binding; `registered` says so before a backend starts),
 * else unbounded: the reference op would decode them every product.
 */
export function heapWeightsCap(env: NodeJS.ProcessEnv = process.env, registered = frozenLinearOp.registered() !== undefined): number {
  const raw = env.HILO_HEAP_WEIGHTS?.trim();
  if (raw) {
    const mib = Number(raw);
    if (!Number.isFinite(mib) || mib < 0) throw new HiloError(`HILO_HEAP_WEIGHTS=${raw}: expected MiB as a number >= 0 (0 = every weight matrix outside the tensor engine)`);
    return mib * 2 ** 20;
  }
  return registered ? HEAP_WEIGHTS_MIB * 2 ** 20 : Infinity;
}

/** Float32 bytes of a model's weight matrices (projections, embedding, head): what the cap weighs. */
export function matrixBytes(config: ModelConfig): number {
  return familyOf(config).weightSpecs(config).filter(isMatrix).reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Where a model's frozen weights go for `opts` (a trainable model's are always engine variables); `cap` defaults to heapWeightsCap(). */
export function storageFor(config: ModelConfig, opts: LoadOptions & { cap?: number } = {}): WeightStorage {
  if (opts.storage) return opts.storage;
  return { dtype: opts.dtype ?? 'auto', outside: !opts.trainable && matrixBytes(config) > (opts.cap ?? heapWeightsCap()) };
}

export { readModelConfig } from './folder.ts';

/**
 * Every tensor of the checkpoint in `dir`, single file or sharded: floating ones as their bytes,
 * others decoded (readSafetensorsRaw). Names in `skip` are not read.
 */
export function readCheckpointBytes(dir: string, skip: ReadonlySet<string> = new Set()): Map<string, AnyTensorData> {
  const out = new Map<string, AnyTensorData>();
  for (const [shard, listed] of requireCheckpointFiles(dir).shards) {
    const file = path.join(dir, shard);
    const names = listed ?? (skip.size ? readSafetensorsHeaderNames(file) : undefined);
    for (const [name, t] of readSafetensorsRaw(file, names?.filter((n) => !skip.has(n)))) out.set(name, t);
  }
  return out;
}

/** Every tensor of the checkpoint in `dir`, decoded to float32 / int32. */
export function readCheckpoint(dir: string): Map<string, HfTensorData> {
  const out = new Map<string, HfTensorData>();
  for (const [name, t] of readCheckpointBytes(dir)) out.set(name, 'data' in t ? t : { shape: t.shape, data: floatsOf(t) });
  return out;
}

const readSafetensorsHeaderNames = (file: string) => [...readSafetensorsHeader(file).entries.keys()];

/** Build the architecture of `config` from HF-named tensors, consuming the map (unknown names fail). */
export function buildModel(config: ModelConfig, tensors: Map<string, AnyTensorData>, opts: LoadOptions & { source?: string } = {}): BaseCausalLM {
  const source = opts.source ?? 'model';
  const family = familyOf(config);
  const hf = new Map<string, AnyTensorData>();
  for (const [name, t] of tensors) {
    const canonical = family.tensorName(name, config);
    if (canonical !== null) hf.set(canonical, t);
  }
  tensors.clear(); // consumed: the host copies go as soon as each weight is on the backend
  const Model = MODEL_CLASSES[config.arch];
  const model = new Model(config, hf, { trainable: opts.trainable, source, storage: storageFor(config, opts) });
  const unexpected = [...hf.keys()]; // the model took (and removed) every tensor it knows
  if (unexpected.length > 0) {
    model.dispose();
    const more = unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : '';
    throw new HiloError(`${source}: unexpected tensors for a ${config.modelType} model: ${unexpected.slice(0, 5).map((n) => `"${n}"`).join(', ')}${more}`);
  }
  return model;
}

/** Load the HF model directory `dir` (frozen unless `trainable`), after `opts.check`. The caller disposes it. */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<BaseCausalLM> {
  const config = readModelConfig(dir);
  opts.check?.(config, dir, tf.getBackend(), storageFor(config, opts));
  const shared = opts.shared ?? new Map<string, RawTensorData>();
  const tensors = readCheckpointBytes(dir, new Set(shared.keys()));
  for (const [name, t] of shared) tensors.set(name, t);
  return buildModel(config, tensors, { ...opts, source: dir });
}

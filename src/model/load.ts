/**
 * Loading a Hugging Face model directory: config.json, then model.safetensors or the shards
 * named by model.safetensors.index.json. F16/BF16/F64 weights are converted to float32 on
 * read; the model computes in float32.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { checkModelLoad } from '../allocate/memory-for-recipe.ts';
import { HiloError } from '../errors.ts';
import type { BaseCausalLM, HfTensorData } from './causal-lm.ts';
import { checkModelFolder } from './check.ts';
import { normaliseConfig } from './config.ts';
import { GPT2LMHeadModel, gpt2TensorName } from './gpt2.ts';
import { LlamaForCausalLM, llamaTensorName } from './llama.ts';
import { readSafetensors } from './safetensors.ts';
import type { ModelConfig } from './types.ts';

export interface LoadOptions {
  /** Make the base weights trainable variables (full-parameter training). Default false: frozen. */
  trainable?: boolean;
}

/** config.json of `dir`, normalised and checked against the folder's weights; errors name the file. */
export function readModelConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new HiloError(`${dir}: no config.json; is this a Hugging Face model directory?`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  let config: ModelConfig;
  try {
    config = normaliseConfig(raw);
  } catch (e) {
    if (e instanceof HiloError) throw new HiloError(`${file}: ${e.message}`);
    throw e;
  }
  checkModelFolder(dir, config); // sizes and weight shapes, from the headers alone
  return config;
}

/** Every tensor of the checkpoint in `dir`, single file or sharded, decoded to float32/int32. */
export function readCheckpoint(dir: string): Map<string, HfTensorData> {
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return readSafetensors(single).tensors;
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(indexFile)) throw new HiloError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
  const weightMap = index.weight_map;
  if (!weightMap || typeof weightMap !== 'object') throw new HiloError(`${indexFile}: no "weight_map" object`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new HiloError(`${indexFile}: weight_map["${name}"] must name a shard file in the same folder; got ${JSON.stringify(shard)}`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const out = new Map<string, HfTensorData>();
  for (const [shard, names] of [...byShard].sort()) {
    const file = path.join(dir, shard);
    if (!fs.existsSync(file)) throw new HiloError(`${indexFile}: shard ${shard} (holding "${names[0]}") is missing`);
    for (const [name, t] of readSafetensors(file, names).tensors) out.set(name, t);
  }
  return out;
}

/** Build the architecture of `config` from HF-named tensors, consuming the map (unknown names fail). */
export function buildModel(config: ModelConfig, tensors: Map<string, HfTensorData>, opts: LoadOptions & { source?: string } = {}): BaseCausalLM {
  const source = opts.source ?? 'model';
  const rename = config.arch === 'gpt2' ? gpt2TensorName : (n: string) => llamaTensorName(n, config);
  const hf = new Map<string, HfTensorData>();
  for (const [name, t] of tensors) {
    const canonical = rename(name);
    if (canonical !== null) hf.set(canonical, t);
  }
  tensors.clear(); // consumed: the host copies go as soon as each weight is on the backend
  const Model = config.arch === 'gpt2' ? GPT2LMHeadModel : LlamaForCausalLM;
  const model = new Model(config, hf, { trainable: opts.trainable, source });
  const unexpected = [...hf.keys()]; // the model took (and removed) every tensor it knows
  if (unexpected.length > 0) {
    model.dispose();
    const more = unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : '';
    throw new HiloError(`${source}: unexpected tensors for a ${config.modelType} model: ${unexpected.slice(0, 5).map((n) => `"${n}"`).join(', ')}${more}`);
  }
  return model;
}

/** Load the HF model directory `dir` (frozen unless `trainable`). The caller disposes it. */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<BaseCausalLM> {
  const config = readModelConfig(dir);
  checkModelLoad(config, dir, tf.getBackend());
  return buildModel(config, readCheckpoint(dir), { ...opts, source: dir });
}

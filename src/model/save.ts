/**
 * Writing a Hugging Face model directory: config.json + model.safetensors (HF names and
 * layouts), plus the tokenizer files of a source directory. Each file is written to a temp
 * name and renamed, so a crash never leaves a half-written checkpoint behind a valid name.
 */
import fs from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { normaliseConfig, toHfConfig } from './config.ts';
import { familyOf } from './families.ts';
import { randomWeightStream } from './init.ts';
import { SafetensorsFileWriter, type StLayoutEntry, type StTensorInput, type StWriteDtype, writeSafetensors } from './safetensors.ts';
import { writeFileAtomic } from '../files.ts';
import type { CausalLM, ModelConfig } from './types.ts';

/** Files that travel with a model for its tokenizer and generation defaults. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json',
  'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json',
];

export interface SaveOptions {
  /** Needed when saving a bare tensor map; a model brings its own. */
  config?: ModelConfig;
  /** Copy TOKENIZER_FILES that exist in this directory. */
  tokenizerFrom?: string;
  /** Storage dtype of float tensors (default F32). */
  dtype?: Extract<StWriteDtype, 'F32' | 'F16' | 'BF16'>;
  /** Extra string entries for the safetensors `__metadata__`. */
  metadata?: Record<string, string>;
}

function isModel(x: CausalLM | Map<string, tf.Tensor>): x is CausalLM {
  return typeof (x as CausalLM).hfTensors === 'function';
}

/** Save `source` (a model, or HF-named tensors in HF layouts) as a HF model directory `dir`. */
export async function saveModel(source: CausalLM | Map<string, tf.Tensor>, dir: string, opts: SaveOptions = {}): Promise<void> {
  const config = opts.config ?? (isModel(source) ? source.config : undefined);
  if (!config) throw new HiloError('saveModel: a tensor map needs opts.config');
  const tensors = isModel(source) ? source.hfTensors() : source;
  const inputs = new Map<string, StTensorInput>();
  try {
    for (const [name, t] of tensors) {
      const data = (await t.data()) as Float32Array | Int32Array;
      const float = data instanceof Float32Array;
      inputs.set(name, { shape: t.shape, data: float ? data : Int32Array.from(data), dtype: float ? (opts.dtype ?? 'F32') : 'I32' });
    }
  } finally {
    if (isModel(source)) for (const t of tensors.values()) t.dispose();
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), inputs, opts.metadata);
  // a stale index would shadow nothing (model.safetensors wins) but would mislead readers
  fs.rmSync(path.join(dir, 'model.safetensors.index.json'), { force: true });
  const hfConfig = { ...toHfConfig(config), torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[opts.dtype ?? 'F32'] };
  writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);
  if (opts.tokenizerFrom) copyTokenizer(opts.tokenizerFrom, dir);
}

function copyTokenizer(from: string, dir: string): void {
  if (path.resolve(from) === path.resolve(dir)) return;
  for (const f of TOKENIZER_FILES) {
    const file = path.join(from, f);
    if (fs.existsSync(file)) writeFileAtomic(path.join(dir, f), fs.readFileSync(file));
  }
}

/** transformers' save_pretrained default max_shard_size ("5GB"). */
export const HF_MAX_SHARD_BYTES = 5e9;

export interface RandomDirOptions {
  seed?: number;
  dtype?: Extract<StWriteDtype, 'F32' | 'F16' | 'BF16'>;
  tokenizerFrom?: string;
  /** A new shard starts where the next tensor would take this one past it (HF's rule). */
  maxShardBytes?: number;
}

/**
 * Write a HF model directory with hilo's random init for the config.json object `raw`, one
 * tensor at a time (memory holds the largest tensor, not the model): model.safetensors, or
 * model-0000k-of-0000n.safetensors + model.safetensors.index.json past maxShardBytes, as
 * save_pretrained shards (greedily, in the model's tensor order). config.json is `raw` as given.
 * Returns the shard files written.
 */
export function saveRandomModel(raw: Record<string, unknown>, dir: string, opts: RandomDirOptions = {}): string[] {
  const config = normaliseConfig(raw);
  const dtype = opts.dtype ?? 'BF16';
  const maxShard = opts.maxShardBytes ?? HF_MAX_SHARD_BYTES;
  const specs = familyOf(config).weightSpecs(config);
  const itemBytes = dtype === 'F32' ? 4 : 2;
  const shards: StLayoutEntry[][] = [[]];
  let shardBytes = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * itemBytes;
    if (shardBytes > 0 && shardBytes + bytes > maxShard) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push({ name: s.name, shape: s.shape, dtype });
    shardBytes += bytes;
  }
  const n = shards.length;
  const fileOf = (k: number) => (n === 1 ? 'model.safetensors' : `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  fs.mkdirSync(dir, { recursive: true });
  // a stale single file or index from an earlier write would shadow or contradict this one
  for (const f of fs.readdirSync(dir)) if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f)) fs.rmSync(path.join(dir, f));
  const writers = shards.map((entries, k) => new SafetensorsFileWriter(path.join(dir, fileOf(k)), entries));
  const shardOf = new Map(shards.flatMap((entries, k) => entries.map((e) => [e.name, k] as const)));
  try {
    for (const t of randomWeightStream(config, opts.seed ?? 0)) writers[shardOf.get(t.name)!].write(t.name, t);
    for (const w of writers) w.close();
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
  if (n > 1) {
    const weightMap: Record<string, string> = {};
    for (const [name, k] of [...shardOf].sort(([a], [b]) => (a < b ? -1 : 1))) weightMap[name] = fileOf(k);
    const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1) * itemBytes, 0);
    writeFileAtomic(path.join(dir, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  }
  writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  if (opts.tokenizerFrom) copyTokenizer(opts.tokenizerFrom, dir);
  return shards.map((_, k) => fileOf(k));
}

/**
 * Writing a Hugging Face model directory: config.json + model.safetensors (or shards; HF names
 * and layouts), plus the tokenizer files of a source directory. Each file is written to a temp
 * name and renamed, so a crash never leaves a half-written checkpoint behind a valid name.
 */
import fs from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { normaliseConfig, toHfConfig } from './config.ts';
import { familyOf } from './families.ts';
import { randomWeightStream } from './init.ts';
import type { StoredDtype } from '../ops/stored.ts';
import { floatsOf, type AnyTensorData, type RawTensorData } from './causal-lm.ts';
import { SafetensorsFileWriter, type StLayoutEntry, type StTensorInput, type StWriteDtype } from './safetensors.ts';
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
  /**
   * Storage dtype of float tensors. Default: the dtype of the matrices the source holds outside
   * the engine (a bf16 checkpoint saves as bf16, its bytes written as they lie), else F32.
   */
  dtype?: Extract<StWriteDtype, 'F32' | 'F16' | 'BF16'>;
  /** Extra string entries for the safetensors `__metadata__`. */
  metadata?: Record<string, string>;
  /** A new shard starts where the next tensor would take this one past it (default HF_MAX_SHARD_BYTES). */
  maxShardBytes?: number;
}

function isModel(x: unknown): x is CausalLM {
  return typeof (x as CausalLM).hostTensors === 'function';
}

const ST_OF: Record<StoredDtype, Extract<StWriteDtype, 'F32' | 'F16' | 'BF16'>> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** Host data of engine tensors (a tensor map's): read back one at a time. */
function hostOf(tensors: Map<string, tf.Tensor | AnyTensorData>): Map<string, AnyTensorData> {
  const out = new Map<string, AnyTensorData>();
  for (const [name, t] of tensors) {
    if (!('dataSync' in t)) out.set(name, t);
    else out.set(name, { shape: t.shape, data: t.dtype === 'float32' ? (t.dataSync() as Float32Array) : Int32Array.from(t.dataSync()) });
  }
  return out;
}

/**
 * Save `source` (a model, or HF-named tensors in HF layouts: engine tensors or host data) as a HF
 * model directory `dir`: config.json, the tokenizer files, and model.safetensors or shards past
 * opts.maxShardBytes, as save_pretrained writes them. One tensor's bytes at a time are made; a
 * model's matrices held outside the engine are written from where they lie.
 */
export async function saveModel(source: CausalLM | Map<string, tf.Tensor | AnyTensorData>, dir: string, opts: SaveOptions = {}): Promise<void> {
  const config = opts.config ?? (isModel(source) ? source.config : undefined);
  if (!config) throw new HiloError('saveModel: a tensor map needs opts.config');
  const host = isModel(source) ? source.hostTensors() : hostOf(source);
  const held = [...host.values()].find((t): t is RawTensorData => 'bytes' in t);
  const dtype = opts.dtype ?? (held ? ST_OF[held.dtype] : 'F32');
  const entries = [...host].map(([name, t]) => ({ name, shape: t.shape, dtype: 'data' in t && t.data instanceof Int32Array ? 'I32' as const : dtype }));
  writeCheckpointFiles(dir, entries, host, opts.maxShardBytes ?? HF_MAX_SHARD_BYTES, opts.metadata);
  const hfConfig = { ...toHfConfig(config), torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype] };
  writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);
  if (opts.tokenizerFrom) copyTokenizer(opts.tokenizerFrom, dir);
}

/** One tensor into its shard: held bytes as they lie when the dtype is the file's, else encoded. */
function writeTensor(writer: SafetensorsFileWriter, entry: StLayoutEntry, t: AnyTensorData | StTensorInput): void {
  if (!('bytes' in t)) return writer.write(entry.name, t);
  if (ST_OF[t.dtype] === entry.dtype) return writer.writeBytes(entry.name, new Uint8Array(t.bytes));
  writer.write(entry.name, { shape: t.shape, data: floatsOf(t) });
}

/**
 * model.safetensors, or model-0000k-of-0000n.safetensors + model.safetensors.index.json past
 * maxShard bytes, as save_pretrained shards (greedily, in `entries` order), the tensors taken from
 * `tensors` in that order. Stale files of an earlier write are removed first. Returns the files.
 */
function writeCheckpointFiles(
  dir: string, entries: StLayoutEntry[], tensors: Iterable<[string, AnyTensorData | StTensorInput]>, maxShard: number, metadata?: Record<string, string>,
): string[] {
  const bytesOf = (e: StLayoutEntry) => e.shape.reduce((a, b) => a * b, 1) * (e.dtype === 'F16' || e.dtype === 'BF16' ? 2 : 4);
  const shards: StLayoutEntry[][] = [[]];
  let shardBytes = 0;
  for (const e of entries) {
    if (shardBytes > 0 && shardBytes + bytesOf(e) > maxShard) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(e);
    shardBytes += bytesOf(e);
  }
  const n = shards.length;
  const fileOf = (k: number) => (n === 1 ? 'model.safetensors' : `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  fs.mkdirSync(dir, { recursive: true });
  // a stale single file or index from an earlier write would shadow or contradict this one
  for (const f of fs.readdirSync(dir)) if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f)) fs.rmSync(path.join(dir, f));
  const writers = shards.map((list, k) => new SafetensorsFileWriter(path.join(dir, fileOf(k)), list, metadata));
  const shardOf = new Map(shards.flatMap((list, k) => list.map((e) => [e.name, [k, e]] as const)));
  try {
    for (const [name, t] of tensors) {
      const [k, e] = shardOf.get(name) ?? [];
      if (k === undefined || !e) throw new Error(`internal: tensor "${name}" is not in the checkpoint's layout`);
      writeTensor(writers[k], e, t);
    }
    for (const w of writers) w.close();
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
  if (n > 1) {
    const weightMap: Record<string, string> = {};
    for (const [name, [k]] of [...shardOf].sort(([a], [b]) => (a < b ? -1 : 1))) weightMap[name] = fileOf(k);
    const total = entries.reduce((a, e) => a + bytesOf(e), 0);
    writeFileAtomic(path.join(dir, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}
`);
  }
  return shards.map((_, k) => fileOf(k));
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
 * tensor at a time (memory holds the largest tensor, not the model), sharded as saveModel
 * shards. config.json is `raw` as given. Returns the shard files written.
 */
export function saveRandomModel(raw: Record<string, unknown>, dir: string, opts: RandomDirOptions = {}): string[] {
  const config = normaliseConfig(raw);
  const dtype = opts.dtype ?? 'BF16';
  const entries = familyOf(config).weightSpecs(config).map((s) => ({ name: s.name, shape: s.shape, dtype }));
  const stream = (function* () {
    for (const t of randomWeightStream(config, opts.seed ?? 0)) yield [t.name, t] as [string, StTensorInput];
  })();
  const files = writeCheckpointFiles(dir, entries, stream, opts.maxShardBytes ?? HF_MAX_SHARD_BYTES);
  writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  if (opts.tokenizerFrom) copyTokenizer(opts.tokenizerFrom, dir);
  return files;
}

function copyTokenizer(from: string, dir: string): void {
  if (path.resolve(from) === path.resolve(dir)) return;
  for (const f of TOKENIZER_FILES) {
    const file = path.join(from, f);
    if (fs.existsSync(file)) writeFileAtomic(path.join(dir, f), fs.readFileSync(file));
  }
}

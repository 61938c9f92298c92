/**
 * Writing a Hugging Face model directory: config.json + model.safetensors (HF names and
 * layouts), plus the tokenizer files of a source directory. Each file is written to a temp
 * name and renamed, so a crash never leaves a half-written checkpoint behind a valid name.
 */
import fs from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { toHfConfig } from './config.ts';
import { type StTensorInput, type StWriteDtype, writeFileAtomic, writeSafetensors } from './safetensors.ts';
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
  if (opts.tokenizerFrom && path.resolve(opts.tokenizerFrom) !== path.resolve(dir)) {
    for (const f of TOKENIZER_FILES) {
      const from = path.join(opts.tokenizerFrom, f);
      if (fs.existsSync(from)) writeFileAtomic(path.join(dir, f), fs.readFileSync(from));
    }
  }
}

/**
 * A model folder checked before anything big is allocated. config.json's sizes must be sane on
 * their own (a slip such as `num_hidden_layers: 1e9` would otherwise loop and allocate for
 * minutes), and must agree with the shapes the safetensors headers declare: only the headers
 * are read, so this costs milliseconds even for sharded multi-GB checkpoints. Every error names
 * the config.json field, the value given and what the weights hold.
 *
 * No tfjs here: `hilo plan` and `hilo validate` stay light.
 */
import path from 'node:path';
import { fieldError, HiloError } from '../errors.ts';
import { checkpointFiles } from './checkpoint-files.ts';
import { familyOf, type SizeKey } from './families.ts';
import { readSafetensorsHeader } from './safetensors.ts';
import type { ModelConfig } from './types.ts';

/**
 * Largest value accepted for each size, far beyond every released model (for scale: Llama 3.1
 * 405B has 126 layers, hidden 16384, ffn 53248, 128 heads of 128; the largest vocabularies are
 * ~262k; Llama 4 Scout reads 10M positions), so only a typo or a corrupt file trips them.
 */
export const SIZE_LIMITS = {
  numLayers: 1024,
  hiddenSize: 65_536,
  intermediateSize: 262_144,
  numHeads: 1024,
  numKvHeads: 1024,
  headDim: 1024,
  vocabSize: 4_194_304,
  maxPositions: 16_777_216,
} as const satisfies Record<SizeKey, number>;

/** `config.json <field>` for a normalised size of `config`. */
export const configField = (config: Pick<ModelConfig, 'arch'>, key: SizeKey): string => `config.json ${familyOf(config).configFields[key]}`;

/**
 * Attention keeps each head's [T, T] float32 scores whole (no chunked attention), 1 GiB per head
 * and sequence at this length: past it a step cannot fit anywhere hilo runs (the wasm heap is
 * 4 GiB) and the [T, T] mask alone outgrows a typed array at 65,536.
 */
export const MAX_ATTENTION_TOKENS = 16_384;

/** Refuse sizes no real model has (see SIZE_LIMITS); the message names the field and value. */
export function checkConfigSizes(config: ModelConfig): void {
  for (const key of Object.keys(SIZE_LIMITS) as Array<keyof typeof SIZE_LIMITS>) {
    const limit = SIZE_LIMITS[key];
    if (config[key] > limit) {
      throw fieldError(configField(config, key), config[key], `at most ${limit.toLocaleString('en-US')} (no released model comes near; a typo?)`);
    }
  }
}

/** Tensor shapes of a checkpoint as its safetensors headers declare them. */
export interface WeightShapes {
  /** HF tensor name -> shape. */
  shapes: Map<string, number[]>;
  /** What to call the weights in messages: model.safetensors or the index file. */
  where: string;
}

/**
 * Shapes of every tensor the checkpoint in `dir` declares (model.safetensors, or the shards of
 * model.safetensors.index.json), reading only headers; null when the folder has neither file.
 */
export function readWeightShapes(dir: string): WeightShapes | null {
  const files = checkpointFiles(dir);
  if (!files) return null;
  if (!files.indexFile) return { shapes: shapesOf(readSafetensorsHeader(path.join(dir, 'model.safetensors')).entries), where: 'model.safetensors' };
  const shapes = new Map<string, number[]>();
  for (const [shard, names] of files.shards) {
    const entries = readSafetensorsHeader(path.join(dir, shard)).entries;
    for (const name of names ?? []) {
      const e = entries.get(name);
      if (!e) throw new HiloError(`${files.indexFile}: weight_map puts "${name}" in ${shard}, whose header has no such tensor`);
      shapes.set(name, e.shape);
    }
  }
  return { shapes, where: 'model.safetensors.index.json' };
}

function shapesOf(entries: Map<string, { shape: number[] }>): Map<string, number[]> {
  return new Map([...entries].map(([name, e]) => [name, e.shape]));
}

const show = (shape: number[]) => `[${shape.join(', ')}]`;

/** Where config.json and the weights disagree, as a HiloError naming the field; null when they agree. */
export function weightMismatch(config: ModelConfig, { shapes, where }: WeightShapes): HiloError | null {
  const family = familyOf(config);
  /** A tensor's stored name and shape, under any spelling the family's files use. */
  const find = (name: string): { name: string; shape: number[] } | null => {
    for (const n of family.storedNames(name)) {
      const shape = shapes.get(n);
      if (shape) return { name: n, shape };
    }
    return null;
  };
  const held = (t: { name: string; shape: number[] }) => `${t.name} in ${where} is ${show(t.shape)}`;
  const embedding = family.sizeSources[0][1];
  if (!find(embedding)) {
    return new HiloError(`${where} has no tensor "${embedding}": these weights are not a ${config.modelType} checkpoint (config.json model_type "${config.modelType}")`);
  }
  for (const [key, name, axis] of family.sizeSources) {
    const t = find(name);
    if (t && t.shape[axis] !== config[key]) return fieldError(configField(config, key), config[key], `${t.shape[axis]} (${held(t)})`);
  }

  const layers = new Set<number>();
  for (const name of shapes.keys()) {
    const m = family.storedLayers.pattern.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  if (layers.size !== config.numLayers) {
    const prefix = family.storedLayers.label;
    const range = layers.size === 0 ? 'no layers' : `${layers.size} layers, ${prefix}.${Math.min(...layers)} to ${prefix}.${Math.max(...layers)}`;
    return fieldError(configField(config, 'numLayers'), config.numLayers, `${layers.size} (${where} holds ${range})`);
  }

  for (const [key, name] of family.headSources) {
    const t = find(name);
    const rows = t?.shape[0];
    if (t && rows !== config[key] * config.headDim) {
      const fits = rows! % config.headDim === 0 ? `${rows! / config.headDim}, ` : '';
      return fieldError(configField(config, key), config[key], `${fits}as ${family.configFields[key]} x head_dim (${config.headDim}) must be ${rows}: ${held(t)}`);
    }
  }
  if (!config.tieWordEmbeddings && !shapes.has('lm_head.weight')) {
    return fieldError('config.json tie_word_embeddings', false, `true (${where} has no lm_head.weight: the head is the embedding)`);
  }
  return null;
}

/**
 * Check the model folder `dir` against its normalised config: the weights' shapes first (their
 * message says what the right value is), then the absolute limits (all a weightless folder has).
 * Throws a HiloError prefixed with config.json's path.
 */
export function checkModelFolder(dir: string, config: ModelConfig): void {
  const file = path.join(dir, 'config.json');
  const weights = readWeightShapes(dir); // its errors name the weight files themselves
  const mismatch = weights && weightMismatch(config, weights);
  if (mismatch) throw new HiloError(`${file}: ${mismatch.message}`);
  try {
    checkConfigSizes(config);
  } catch (e) {
    throw new HiloError(`${file}: ${(e as Error).message}`);
  }
}

/**
 * Whether data.max_length suits the model: past MAX_ATTENTION_TOKENS or past a learned-position
 * model's n_positions it is an error; past a RoPE model's max_position_embeddings it runs, and
 * the returned warning says what that means (null when nothing needs saying).
 */
export function checkMaxLength(maxLength: number, config: ModelConfig, dir: string): string | null {
  const field = 'recipe.data.max_length';
  if (maxLength > MAX_ATTENTION_TOKENS) {
    throw fieldError(field, maxLength, `at most ${MAX_ATTENTION_TOKENS} (attention holds each head's [T, T] scores whole: ` +
      `${gib(maxLength)} per head and sequence at ${maxLength} tokens)`);
  }
  const positions = config.maxPositions;
  if (maxLength <= positions) return null;
  const family = familyOf(config);
  if (family.positions === 'learned') {
    throw fieldError(field, maxLength, `at most ${positions}, the ${family.configFields.maxPositions} of ${dir}/config.json ` +
      `(${family.title} learned one position embedding per position and has none past it)`);
  }
  return `warning: recipe.data.max_length ${maxLength} is past max_position_embeddings ${positions} of ${dir}/config.json: ` +
    `RoPE runs there, but the model never saw positions past ${positions} in pretraining, so expect worse predictions on them ` +
    `(data.max_length=${positions} stays inside)`;
}

const gib = (tokens: number) => `${((tokens * tokens * 4) / 2 ** 30).toFixed(1)} GiB`;

/**
 * What an architecture family says about itself, once: how its config.json reads and writes,
 * every tensor of its checkpoints (names, shapes, layouts, init), the linear projections of a
 * decoder layer (the adapter targets, with their in/out features) and how its files name things.
 * families.ts holds the registry; family-llama.ts and family-gpt2.ts fill it in. No tfjs here:
 * planning, validation and probing read it without loading a backend.
 */
import type { Arch, ModelConfig } from './types.ts';

export interface WeightSpec {
  name: string;
  /** Shape in the HF file. */
  shape: number[];
  /**
   * linear: HF nn.Linear [out, in], stored transposed as [in, out];
   * conv1d: GPT-2 Conv1D, already [in, out]; plain: stored as in the file.
   */
  layout: 'linear' | 'conv1d' | 'plain';
  /** Adaptable projection: gets a FrozenLinear in `modules` under the name minus `.weight`. */
  adaptable?: boolean;
  /** The token embedding [vocab, hidden] (also the LM head when tied). */
  embedding?: boolean;
  /** HF initialisation for training from scratch: N(0, std * stdScale), ones or zeros. */
  init: 'normal' | 'ones' | 'zeros';
  stdScale?: number;
  /** The embedding's pad_token_id row starts at zero (nn.Embedding's padding_idx). */
  zeroPadRow?: boolean;
}

/** Whether a spec is a weight matrix that may be held outside the engine. */
export const isMatrix = (s: WeightSpec): boolean => s.layout !== 'plain' || s.embedding === true;

/** One adaptable linear of a decoder layer: its in-layer path and features. */
export interface ProjectionSpec {
  /** In-layer module path, e.g. `self_attn.q_proj`, `attn.c_attn`. */
  path: string;
  in: number;
  out: number;
  bias: boolean;
  /** Its init's std is scaled by this (GPT-2's residual projections). */
  stdScale?: number;
}

/** The normalised sizes check.ts bounds and compares against the weights. */
export type SizeKey = 'numLayers' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim' | 'vocabSize' | 'maxPositions';

export interface Family {
  readonly arch: Arch;
  /** What messages call it, e.g. GPT-2. */
  readonly title: string;
  /** config.json model_type -> the transformers class in `architectures`. */
  readonly classes: Readonly<Record<string, string>>;
  /** A config.json with neither model_type nor architectures is this family's when it has this key. */
  readonly sniffKey?: string;
  /** config.json (already known to be `modelType`) -> ModelConfig; errors name the field. */
  normalise(raw: Record<string, unknown>, modelType: string): ModelConfig;
  /** The config.json fields of `c` (over `c.raw`, which keeps every field it was read from). */
  hfConfig(c: ModelConfig): Record<string, unknown>;
  /** The config.json field each normalised size was read from. */
  readonly configFields: Readonly<Record<SizeKey, string>>;

  /** HF module path prefix of decoder layer `l`. */
  layerPrefix(l: number): string;
  /** Adaptable linears of one decoder layer (every layer has the same), in forward order. */
  projections(c: ModelConfig): ProjectionSpec[];
  /**
   * The adapter targets a recipe gets when it names none (adapter.target_modules absent), PEFT
   * style: short names or dotted suffixes of those projections' paths.
   */
  readonly adapterTargets: readonly string[];
  /** HF layout of those linears: nn.Linear [out, in] or Conv1D [in, out] (PEFT's fan_in_fan_out). */
  readonly projectionLayout: 'linear' | 'conv1d';
  /** Every tensor of a checkpoint, in HF names and shapes, in the order a seeded init draws them. */
  weightSpecs(c: ModelConfig): WeightSpec[];
  /** The canonical name of a tensor as a file stores it, or null for a buffer or a tied copy. */
  tensorName(stored: string, c: ModelConfig): string | null;
  /** The names a file may store canonical tensor `name` under, preferred first. */
  storedNames(name: string): string[];
  /** Stored names of decoder-layer tensors: the layer index is group 1; `label` is how messages show the prefix. */
  readonly storedLayers: { pattern: RegExp; label: string };
  /** Which tensor dimension states a size: [size, canonical tensor, axis]; the first names the embedding. */
  readonly sizeSources: ReadonlyArray<readonly [SizeKey, string, number]>;
  /** Heads readable from a projection's rows (= heads x head_dim); empty where fused shapes hide them. */
  readonly headSources: ReadonlyArray<readonly ['numHeads' | 'numKvHeads', string]>;
  /** rope: rotary positions (any length runs); learned: one embedding per position up to maxPositions. */
  readonly positions: 'rope' | 'learned';
}

/**
 * The contract between the frozen model and everything that wraps or drives it.
 * Architectures live one per file (llama.ts, gpt2.ts); adapters replace entries of
 * `CausalLM.modules` with wrappers that keep the frozen module as their base (PEFT style).
 */
import type * as tf from '@tensorflow/tfjs';
import type { StoredMatrix } from '../ops/stored.ts';
import type { AnyTensorData, WeightStorage } from './causal-lm.ts';

export type Arch = 'llama' | 'gpt2';

/** Normalised model configuration: HF config.json fields mapped to one vocabulary. */
export interface ModelConfig {
  arch: Arch;
  modelType: string;            // config.json model_type as given: llama, mistral, qwen2, gpt2, ...
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;           // = numHeads without GQA
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  // Llama family
  ropeTheta: number;
  ropeScaling: Record<string, unknown> | null;
  rmsNormEps: number;
  attentionBias: boolean;       // Qwen2: q/k/v biases (o_proj has none)
  mlpBias: boolean;
  hiddenAct: string;            // silu | gelu_new | ...
  // GPT-2
  layerNormEps: number;
  scaleAttnByInverseLayerIdx: boolean;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** Bias on o_proj; absent = same as attentionBias (Llama), false for Qwen2 (q/k/v only). */
  attentionOutputBias?: boolean;
  /** Std of the normal init (HF initializer_range), for training from scratch. */
  initializerRange?: number;
  /** config.json as read, kept so saving a model writes back every field it came with. */
  raw?: Record<string, unknown>;
}

/**
 * State shared by one forward pass. Mixture layers push their router losses here so the
 * training loop can add them inside the same gradient tape.
 */
export interface ForwardContext {
  training: boolean;
  /** [N] float32, 1 for real tokens and 0 for padding, N = B*T in row-major (b, t) order. */
  tokenMask?: tf.Tensor1D;
  /** Weighted balance (and z-) losses, one scalar per router, pushed during forward; kept past
   *  the model's tidy, so the caller disposes them once the loss has used them. */
  auxLosses: tf.Scalar[];
  /** When set, routers write their per-expert selection fractions here (kept tensors, caller disposes). */
  routerStats?: Map<string, tf.Tensor1D>;
  /** Seed source for dropout; advanced by each dropout call. */
  dropoutSeed?: { next(): number };
  /** Recompute each decoder layer in the backward instead of keeping its activations (train.gradient_checkpointing). */
  checkpointLayers?: boolean;
}

/** A linear map over rows: x [N, in] -> y [N, out]. */
export interface LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D;
}

/**
 * A frozen linear layer of the base model. On the engine, `kernel` is stored [in, out] so the
 * forward product is an untransposed matMul (the fast path on wasm); HF Linear weights are
 * [out, in] and are transposed once at load, GPT-2 Conv1D weights are already [in, out]. Held
 * outside the engine (src/ops/stored.ts), `kernel` is null and `stored` holds the HF bytes.
 */
export interface FrozenLinear extends LinearModule {
  readonly name: string;              // HF path, e.g. model.layers.0.self_attn.q_proj
  readonly kernel: tf.Variable | null; // [in, out]; null when held outside the engine
  readonly bias: tf.Variable | null;  // [out]
  readonly hfLayout: 'linear' | 'conv1d';
  readonly stored: StoredMatrix | null;
  /** The kernel's values [in, out] on the host (a new array). */
  kernelValues(): Float32Array;
}

export interface ForwardOptions {
  /** [B, T] 1 for real tokens, 0 for padding (right or left padding); with a cache [B, past + T]. */
  attentionMask?: tf.Tensor2D;
  /** [B, T] int32; defaults to past..past+T-1 per row (past = cached length, else 0). */
  positionIds?: tf.Tensor2D;
  ctx?: ForwardContext;
  /**
   * Incremental decoding (inference only): `inputIds` are the tokens after the `cache.length`
   * already seen; forward attends to the cached keys/values and appends the new ones.
   */
  cache?: KvCache;
}

/** Keys and values of earlier tokens per layer, [B, past, kvHeads, d], owned by the cache. */
export interface KvCache {
  length: number;
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Every adaptable linear, by HF module path. Adapters swap entries for wrappers. */
  readonly modules: Map<string, LinearModule>;
  /** The frozen base modules as loaded (never replaced), by HF module path. */
  readonly baseModules: Map<string, FrozenLinear>;
  /** Where and in which dtype the frozen weights are held. */
  readonly storage: WeightStorage;
  /** All base weights by HF tensor name (non-trainable variables, in the model's own layouts). */
  readonly weights: Map<string, tf.Variable>;
  /** Logits [B, T, vocab] for int32 ids [B, T]. */
  forward(inputIds: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D;
  /** Per-token NLL [B·T] of shifted `targets` (-100: not counted), without holding every logit at once. */
  tokenNll(inputIds: tf.Tensor2D, targets: Int32Array, opts?: ForwardOptions): tf.Tensor1D;
  /** Base weights as HF tensors (original names, layouts and shapes) on the engine. */
  hfTensors(): Map<string, tf.Tensor>;
  /** Base weights as host data in HF names and layouts (held matrices as their stored bytes): for saving. */
  hostTensors(): Map<string, AnyTensorData>;
  dispose(): void;
}

/** Text <-> ids, as loaded from a model directory's tokenizer.json. */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  /** Ids of `text`; with addSpecialTokens the tokenizer's post-processor adds e.g. BOS. */
  encode(text: string, addSpecialTokens?: boolean): number[];
  decode(ids: number[], skipSpecialTokens?: boolean): string;
}

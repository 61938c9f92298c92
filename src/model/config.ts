/**
 * config.json -> ModelConfig. Each supported model_type maps its HF field names and defaults
 * (those of the transformers config classes) onto one vocabulary; anything the forward pass
 * would silently get wrong (an unknown architecture, an unimplemented RoPE scaling, heads that
 * do not divide) fails here, naming the config field.
 *
 * Mistral's and Qwen2's sliding_window is not applied: attention is exact for sequences up to
 * the window (4096 and more in released models), far beyond what hilo trains on.
 */
import { fieldError, HiloError } from '../errors.ts';
import type { ModelConfig } from './types.ts';

/** model_type values we run: the Llama family (one code path) and GPT-2. */
export const LLAMA_TYPES = ['llama', 'mistral', 'qwen2'] as const;
export const MODEL_TYPES = [...LLAMA_TYPES, 'gpt2'] as const;
export const ROPE_TYPES = ['default', 'linear', 'llama3'] as const;
export const ACTIVATIONS = ['silu', 'swish', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'tanh'] as const;

type Raw = Record<string, unknown>;

/** The model_type of a config, falling back to `architectures` (and to key sniffing) as HF does. */
export function modelTypeOf(raw: Raw): string {
  if (typeof raw.model_type === 'string') return raw.model_type;
  const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '';
  const byArch: Record<string, string> = {
    LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', GPT2LMHeadModel: 'gpt2',
  };
  if (byArch[arch]) return byArch[arch];
  if (!arch) return 'n_embd' in raw ? 'gpt2' : 'llama';
  throw fieldError('config.json architectures', raw.architectures, Object.keys(byArch));
}

function num(raw: Raw, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw fieldError(`config.json ${key}`, raw[key], fallback === undefined ? 'a number (required)' : 'a number');
  }
  return v;
}

function int(raw: Raw, key: string, fallback?: number): number {
  const v = num(raw, key, fallback);
  if (!Number.isInteger(v) || v <= 0) throw fieldError(`config.json ${key}`, v, 'a positive integer');
  return v;
}

function bool(raw: Raw, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'boolean') throw fieldError(`config.json ${key}`, v, 'true | false');
  return v;
}

function tokenId(raw: Raw, key: string, fallback: number | null): number | null {
  const v = raw[key] === undefined ? fallback : raw[key];
  return typeof v === 'number' ? v : null;
}

function eosIds(raw: Raw, fallback: number | null): number | number[] | null {
  const v = raw.eos_token_id === undefined ? fallback : raw.eos_token_id;
  if (typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'))) return v as number | number[];
  return null;
}

function activation(raw: Raw, key: string, fallback: string): string {
  const v = raw[key] ?? fallback;
  if (!(ACTIVATIONS as readonly unknown[]).includes(v)) throw fieldError(`config.json ${key}`, v, ACTIVATIONS);
  return v as string;
}

/** Validate rope_scaling: null, or a linear / llama3 block with the fields ref_model.py reads. */
function ropeScaling(raw: Raw): Record<string, unknown> | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw fieldError('config.json rope_scaling', rs, 'null or an object');
  const r = rs as Raw;
  const type = r.rope_type ?? r.type ?? 'default';
  if (!(ROPE_TYPES as readonly unknown[]).includes(type)) throw fieldError('config.json rope_scaling.rope_type', type, ROPE_TYPES);
  const need = type === 'linear' ? ['factor'] : type === 'llama3' ? ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'] : [];
  for (const k of need) {
    if (typeof r[k] !== 'number') throw fieldError(`config.json rope_scaling.${k}`, r[k], `a number (needed by rope_type "${type}")`);
  }
  return { ...r, rope_type: type };
}

function normaliseLlama(raw: Raw, modelType: string): ModelConfig {
  const hiddenSize = int(raw, 'hidden_size');
  const numHeads = int(raw, 'num_attention_heads');
  const numKvHeads = int(raw, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw fieldError('config.json num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  }
  if (raw.head_dim == null && hiddenSize % numHeads !== 0) {
    throw fieldError('config.json num_attention_heads', numHeads, `a divisor of hidden_size (${hiddenSize}) when head_dim is not given`);
  }
  const qwen = modelType === 'qwen2';
  // Qwen2 always has q/k/v biases and never an o_proj bias; Llama's attention_bias covers all four.
  const attentionBias = qwen ? true : bool(raw, 'attention_bias', false);
  const cfg: ModelConfig = {
    arch: 'llama',
    modelType,
    vocabSize: int(raw, 'vocab_size'),
    hiddenSize,
    numLayers: int(raw, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim: raw.head_dim == null ? hiddenSize / numHeads : int(raw, 'head_dim'),
    intermediateSize: int(raw, 'intermediate_size'),
    maxPositions: int(raw, 'max_position_embeddings', 2048),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    ropeTheta: num(raw, 'rope_theta', 10000),
    ropeScaling: ropeScaling(raw),
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-6),
    attentionBias,
    attentionOutputBias: qwen ? false : attentionBias,
    mlpBias: bool(raw, 'mlp_bias', false),
    hiddenAct: activation(raw, 'hidden_act', 'silu'),
    layerNormEps: 1e-5,
    scaleAttnByInverseLayerIdx: false,
    bosTokenId: tokenId(raw, 'bos_token_id', qwen ? null : 1),
    eosTokenId: eosIds(raw, qwen ? null : 2),
    padTokenId: tokenId(raw, 'pad_token_id', null),
    initializerRange: num(raw, 'initializer_range', 0.02),
    raw,
  };
  return cfg;
}

function normaliseGpt2(raw: Raw): ModelConfig {
  const hiddenSize = int(raw, 'n_embd', 768);
  const numHeads = int(raw, 'n_head', 12);
  if (hiddenSize % numHeads !== 0) throw fieldError('config.json n_head', numHeads, `a divisor of n_embd (${hiddenSize})`);
  if (raw.scale_attn_weights === false) throw fieldError('config.json scale_attn_weights', false, 'true (unscaled attention is not implemented)');
  const vocabSize = int(raw, 'vocab_size', 50257);
  return {
    arch: 'gpt2',
    modelType: 'gpt2',
    vocabSize,
    hiddenSize,
    numLayers: int(raw, 'n_layer', 12),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: raw.n_inner == null ? 4 * hiddenSize : int(raw, 'n_inner'),
    maxPositions: int(raw, 'n_positions', typeof raw.n_ctx === 'number' ? raw.n_ctx : 1024),
    tieWordEmbeddings: true, // GPT2LMHeadModel always ties lm_head to wte
    ropeTheta: 0,
    ropeScaling: null,
    rmsNormEps: 0,
    attentionBias: true,
    attentionOutputBias: true,
    mlpBias: true,
    hiddenAct: activation(raw, 'activation_function', 'gelu_new'),
    layerNormEps: num(raw, 'layer_norm_epsilon', 1e-5),
    scaleAttnByInverseLayerIdx: bool(raw, 'scale_attn_by_inverse_layer_idx', false),
    bosTokenId: tokenId(raw, 'bos_token_id', 50256),
    eosTokenId: eosIds(raw, 50256),
    padTokenId: tokenId(raw, 'pad_token_id', null),
    initializerRange: num(raw, 'initializer_range', 0.02),
    raw,
  };
}

/** Normalise a parsed config.json. Throws HiloError naming the offending `config.json <field>`. */
export function normaliseConfig(rawConfig: unknown): ModelConfig {
  if (typeof rawConfig !== 'object' || rawConfig === null || Array.isArray(rawConfig)) {
    throw new HiloError('config.json: expected a JSON object');
  }
  const raw = rawConfig as Raw;
  const modelType = modelTypeOf(raw);
  if (modelType === 'gpt2') return normaliseGpt2(raw);
  if ((LLAMA_TYPES as readonly string[]).includes(modelType)) return normaliseLlama(raw, modelType);
  throw fieldError('config.json model_type', modelType, MODEL_TYPES);
}

/** The HF config.json for `c`: the fields it was read from, updated with the normalised values. */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  const base = { ...(c.raw ?? {}) };
  if (c.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'], ...base, model_type: 'gpt2',
      vocab_size: c.vocabSize, n_embd: c.hiddenSize, n_layer: c.numLayers, n_head: c.numHeads,
      n_inner: c.intermediateSize, n_positions: c.maxPositions, activation_function: c.hiddenAct,
      layer_norm_epsilon: c.layerNormEps, scale_attn_by_inverse_layer_idx: c.scaleAttnByInverseLayerIdx,
      initializer_range: c.initializerRange ?? 0.02, tie_word_embeddings: true,
      bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, torch_dtype: 'float32',
    };
  }
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[c.modelType] ?? 'LlamaForCausalLM';
  const out: Record<string, unknown> = {
    architectures: [arch], ...base, model_type: c.modelType,
    vocab_size: c.vocabSize, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim, max_position_embeddings: c.maxPositions, hidden_act: c.hiddenAct,
    rms_norm_eps: c.rmsNormEps, rope_theta: c.ropeTheta, rope_scaling: c.ropeScaling,
    mlp_bias: c.mlpBias, tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange ?? 0.02,
    bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, torch_dtype: 'float32',
  };
  if (c.modelType !== 'qwen2') out.attention_bias = c.attentionBias;
  if (c.padTokenId !== null) out.pad_token_id = c.padTokenId;
  return out;
}

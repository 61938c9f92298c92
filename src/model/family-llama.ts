/**
 * The Llama family (Llama, Mistral, Qwen2, SmolLM): one code path (llama.ts), told apart by
 * config alone. Qwen2 always has q/k/v biases and never an o_proj bias; Llama's attention_bias
 * covers all four. Mistral's and Qwen2's sliding_window is not applied: attention is exact for
 * sequences up to the window (4096 and more in released models), far beyond what hilo trains on.
 */
import { fieldError } from '../errors.ts';
import { activation, bool, eosIds, int, num, ropeScaling, tokenId, type Raw } from './config-fields.ts';
import type { Family, ProjectionSpec, WeightSpec } from './family.ts';
import type { ModelConfig } from './types.ts';

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

/** q, k, v, o, gate, up, down of one layer: [in, out] from the config. */
function projections(c: ModelConfig): ProjectionSpec[] {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  const attn = c.attentionBias;
  return [
    { path: 'self_attn.q_proj', in: H, out: q, bias: attn },
    { path: 'self_attn.k_proj', in: H, out: kv, bias: attn },
    { path: 'self_attn.v_proj', in: H, out: kv, bias: attn },
    { path: 'self_attn.o_proj', in: q, out: H, bias: c.attentionOutputBias ?? attn },
    { path: 'mlp.gate_proj', in: H, out: I, bias: c.mlpBias },
    { path: 'mlp.up_proj', in: H, out: I, bias: c.mlpBias },
    { path: 'mlp.down_proj', in: I, out: H, bias: c.mlpBias },
  ];
}

const layerPrefix = (l: number) => `model.layers.${l}`;

function weightSpecs(c: ModelConfig): WeightSpec[] {
  const H = c.hiddenSize;
  const specs: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, H], layout: 'plain', embedding: true, init: 'normal', zeroPadRow: true }];
  const norm = (name: string) => specs.push({ name: `${name}.weight`, shape: [H], layout: 'plain', init: 'ones' });
  const mods = projections(c);
  const linear = (p: string, m: ProjectionSpec) => {
    specs.push({ name: `${p}.${m.path}.weight`, shape: [m.out, m.in], layout: 'linear', adaptable: true, init: 'normal' });
    if (m.bias) specs.push({ name: `${p}.${m.path}.bias`, shape: [m.out], layout: 'plain', init: 'zeros' });
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    norm(`${p}.input_layernorm`);
    for (const m of mods.slice(0, 4)) linear(p, m);
    norm(`${p}.post_attention_layernorm`);
    for (const m of mods.slice(4)) linear(p, m);
  }
  norm('model.norm');
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, H], layout: 'linear', init: 'normal' });
  return specs;
}

const CLASSES = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' };

export const LLAMA_FAMILY: Family = {
  arch: 'llama',
  title: 'Llama',
  classes: CLASSES,
  normalise: normaliseLlama,
  hfConfig(c) {
    const out: Record<string, unknown> = {
      architectures: [CLASSES[c.modelType as keyof typeof CLASSES] ?? 'LlamaForCausalLM'], ...(c.raw ?? {}), model_type: c.modelType,
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
  },
  configFields: {
    numLayers: 'num_hidden_layers', hiddenSize: 'hidden_size', intermediateSize: 'intermediate_size', numHeads: 'num_attention_heads',
    numKvHeads: 'num_key_value_heads', headDim: 'head_dim', vocabSize: 'vocab_size', maxPositions: 'max_position_embeddings',
  },
  layerPrefix,
  projections,
  // every attention and MLP projection, as PEFT names them
  adapterTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  projectionLayout: 'linear',
  weightSpecs,
  /** Old checkpoints carry rotary_emb.inv_freq buffers, and a tied model may still hold a copy of lm_head.weight. */
  tensorName(name, c) {
    if (name.endsWith('rotary_emb.inv_freq')) return null;
    if (name === 'lm_head.weight' && c.tieWordEmbeddings) return null;
    return name;
  },
  storedNames: (name) => [name],
  storedLayers: { pattern: /^model\.layers\.(\d+)\./, label: 'model.layers' },
  sizeSources: [
    ['hiddenSize', 'model.embed_tokens.weight', 1],
    ['vocabSize', 'model.embed_tokens.weight', 0],
    ['intermediateSize', 'model.layers.0.mlp.gate_proj.weight', 0],
  ],
  headSources: [['numHeads', 'model.layers.0.self_attn.q_proj.weight'], ['numKvHeads', 'model.layers.0.self_attn.k_proj.weight']],
  positions: 'rope',
};

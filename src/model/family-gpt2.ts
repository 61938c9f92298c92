/**
 * GPT-2 (gpt2.ts): learned positions, fused q/k/v (c_attn), and Conv1D projections stored
 * [in, out]. Files from the original openai-community/gpt2 repo name tensors without the
 * `transformer.` prefix and carry causal-mask buffers; both spellings are read.
 */
import { fieldError } from '../errors.ts';
import { activation, bool, eosIds, int, num, tokenId, type Raw } from './config-fields.ts';
import type { Family, ProjectionSpec, WeightSpec } from './family.ts';
import type { ModelConfig } from './types.ts';

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

/** c_attn, attn c_proj, c_fc, mlp c_proj of one layer: [in, out] from the config. */
function projections(c: ModelConfig): ProjectionSpec[] {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  // HF scales the residual projections' init by 1/sqrt(2 * n_layer) (GPT-2 paper, section 2.3)
  const residual = 1 / Math.sqrt(2 * c.numLayers);
  return [
    { path: 'attn.c_attn', in: H, out: 3 * H, bias: true },
    { path: 'attn.c_proj', in: H, out: H, bias: true, stdScale: residual },
    { path: 'mlp.c_fc', in: H, out: I, bias: true },
    { path: 'mlp.c_proj', in: I, out: H, bias: true, stdScale: residual },
  ];
}

const layerPrefix = (l: number) => `transformer.h.${l}`;

function weightSpecs(c: ModelConfig): WeightSpec[] {
  const H = c.hiddenSize;
  const specs: WeightSpec[] = [
    { name: 'transformer.wte.weight', shape: [c.vocabSize, H], layout: 'plain', embedding: true, init: 'normal' },
    { name: 'transformer.wpe.weight', shape: [c.maxPositions, H], layout: 'plain', init: 'normal' },
  ];
  const norm = (name: string) => {
    specs.push({ name: `${name}.weight`, shape: [H], layout: 'plain', init: 'ones' });
    specs.push({ name: `${name}.bias`, shape: [H], layout: 'plain', init: 'zeros' });
  };
  const mods = projections(c);
  const conv = (p: string, m: ProjectionSpec) => {
    specs.push({ name: `${p}.${m.path}.weight`, shape: [m.in, m.out], layout: 'conv1d', adaptable: true, init: 'normal', stdScale: m.stdScale ?? 1 });
    specs.push({ name: `${p}.${m.path}.bias`, shape: [m.out], layout: 'plain', init: 'zeros' });
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    norm(`${p}.ln_1`);
    for (const m of mods.slice(0, 2)) conv(p, m);
    norm(`${p}.ln_2`);
    for (const m of mods.slice(2)) conv(p, m);
  }
  norm('transformer.ln_f');
  return specs;
}

export const GPT2_FAMILY: Family = {
  arch: 'gpt2',
  title: 'GPT-2',
  classes: { gpt2: 'GPT2LMHeadModel' },
  sniffKey: 'n_embd',
  normalise: normaliseGpt2,
  hfConfig: (c) => ({
    architectures: ['GPT2LMHeadModel'], ...(c.raw ?? {}), model_type: 'gpt2',
    vocab_size: c.vocabSize, n_embd: c.hiddenSize, n_layer: c.numLayers, n_head: c.numHeads,
    n_inner: c.intermediateSize, n_positions: c.maxPositions, activation_function: c.hiddenAct,
    layer_norm_epsilon: c.layerNormEps, scale_attn_by_inverse_layer_idx: c.scaleAttnByInverseLayerIdx,
    initializer_range: c.initializerRange ?? 0.02, tie_word_embeddings: true,
    bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, torch_dtype: 'float32',
  }),
  configFields: {
    numLayers: 'n_layer', hiddenSize: 'n_embd', intermediateSize: 'n_inner', numHeads: 'n_head',
    numKvHeads: 'n_head', headDim: 'n_embd / n_head', vocabSize: 'vocab_size', maxPositions: 'n_positions',
  },
  layerPrefix,
  projections,
  // every projection: c_proj names both the attention's and the MLP's output
  adapterTargets: ['c_attn', 'c_proj', 'c_fc'],
  projectionLayout: 'conv1d',
  weightSpecs,
  /** `attn.bias` / `attn.masked_bias` are causal-mask buffers; lm_head.weight is a copy of the tied wte. */
  tensorName(name) {
    if (/\.attn\.(bias|masked_bias)$/.test(name) || name === 'lm_head.weight') return null;
    return name.startsWith('transformer.') ? name : `transformer.${name}`;
  },
  storedNames: (name) => [name, name.replace(/^transformer\./, '')],
  storedLayers: { pattern: /^(?:transformer\.)?h\.(\d+)\./, label: 'h' },
  sizeSources: [
    ['hiddenSize', 'transformer.wte.weight', 1],
    ['vocabSize', 'transformer.wte.weight', 0],
    ['maxPositions', 'transformer.wpe.weight', 0],
    ['intermediateSize', 'transformer.h.0.mlp.c_fc.weight', 1],
  ],
  headSources: [], // n_head leaves no trace in GPT-2's fused shapes
  positions: 'learned',
};

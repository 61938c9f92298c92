import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normaliseConfig, toHfConfig } from '../../src/model/config.ts';
import { moduleShapes } from '../../src/model/families.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const stories = STORIES260K;

const llama = { model_type: 'llama', vocab_size: 32, hidden_size: 16, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4 };

describe('normaliseConfig', () => {
  it('reads stories260K', () => {
    const c = normaliseConfig(JSON.parse(fs.readFileSync(path.join(stories, 'config.json'), 'utf8')));
    expect(c).toMatchObject({
      arch: 'llama', modelType: 'llama', vocabSize: 512, hiddenSize: 64, numLayers: 5, numHeads: 8, numKvHeads: 4,
      headDim: 8, intermediateSize: 172, tieWordEmbeddings: true, ropeTheta: 10000, rmsNormEps: 1e-5,
      attentionBias: false, attentionOutputBias: false, bosTokenId: 1, eosTokenId: 2,
    });
  });

  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['llama defaults', llama, { numKvHeads: 4, headDim: 4, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings: false, hiddenAct: 'silu', ropeScaling: null, maxPositions: 2048 }],
    ['llama attention_bias covers o_proj', { ...llama, attention_bias: true }, { attentionBias: true, attentionOutputBias: true }],
    ['mistral with GQA and explicit head_dim', { ...llama, model_type: 'mistral', num_key_value_heads: 2, head_dim: 8, rope_theta: 1e6 }, { modelType: 'mistral', numKvHeads: 2, headDim: 8, ropeTheta: 1e6 }],
    ['qwen2: q/k/v biases, no o_proj bias', { ...llama, model_type: 'qwen2', tie_word_embeddings: true }, { modelType: 'qwen2', attentionBias: true, attentionOutputBias: false, tieWordEmbeddings: true }],
    ['smollm (model_type llama, tied)', { ...llama, tie_word_embeddings: true, num_key_value_heads: 1 }, { tieWordEmbeddings: true, numKvHeads: 1 }],
    ['no model_type: architectures decides', { ...llama, model_type: undefined, architectures: ['Qwen2ForCausalLM'] }, { modelType: 'qwen2' }],
    ['linear rope scaling', { ...llama, rope_scaling: { type: 'linear', factor: 2 } }, { ropeScaling: { type: 'linear', rope_type: 'linear', factor: 2 } }],
    ['gpt2 with n_inner null', { model_type: 'gpt2', vocab_size: 50, n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32, n_inner: null }, { arch: 'gpt2', intermediateSize: 64, headDim: 8, numKvHeads: 2, layerNormEps: 1e-5, hiddenAct: 'gelu_new', tieWordEmbeddings: true, maxPositions: 32 }],
    ['gpt2 fields', { model_type: 'gpt2', vocab_size: 50, n_embd: 16, n_head: 4, n_layer: 3, n_inner: 24, layer_norm_epsilon: 1e-6, activation_function: 'relu', scale_attn_by_inverse_layer_idx: true }, { intermediateSize: 24, layerNormEps: 1e-6, hiddenAct: 'relu', scaleAttnByInverseLayerIdx: true, numLayers: 3 }],
  ];
  it.each(cases)('%s', (_name, raw, want) => {
    expect(normaliseConfig(raw)).toMatchObject(want);
  });

  const errors: Array<[string, unknown, string]> = [
    ['unknown model_type', { ...llama, model_type: 'falcon' }, 'config.json model_type: got "falcon"; allowed: "llama" | "mistral" | "qwen2" | "gpt2"'],
    ['unknown rope scaling', { ...llama, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'config.json rope_scaling.rope_type: got "yarn"; allowed: "default" | "linear" | "llama3"'],
    ['llama3 scaling without its fields', { ...llama, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'config.json rope_scaling.low_freq_factor: got nothing'],
    ['missing hidden_size', { ...llama, hidden_size: undefined }, 'config.json hidden_size: got nothing; allowed: a number (required)'],
    ['kv heads not dividing heads', { ...llama, num_key_value_heads: 3 }, 'config.json num_key_value_heads: got 3; allowed: a divisor of num_attention_heads (4)'],
    ['unknown activation', { ...llama, hidden_act: 'mish' }, 'config.json hidden_act: got "mish"'],
    ['unknown architecture', { architectures: ['FalconForCausalLM'] }, 'config.json architectures'],
    ['not an object', [1, 2], 'config.json: expected a JSON object'],
  ];
  it.each(errors)('refuses %s', (_name, raw, msg) => {
    expect(() => normaliseConfig(raw)).toThrow(msg);
  });

  it('toHfConfig round-trips through normaliseConfig', () => {
    for (const raw of [llama, { ...llama, model_type: 'qwen2' }, { model_type: 'gpt2', vocab_size: 50, n_embd: 16, n_head: 2, n_layer: 2 }]) {
      const c = normaliseConfig(raw);
      const again = normaliseConfig(JSON.parse(JSON.stringify(toHfConfig(c))));
      expect({ ...again, raw: undefined }).toEqual({ ...c, raw: undefined });
      expect(moduleShapes(again)).toEqual(moduleShapes(c));
    }
  });
});

/** Model configs built from config.json values, shared by the allocation tests. */
import type { AdapterSection } from '../../src/allocate/recipe-adapter.ts';
import type { ModelConfig } from '../../src/model/types.ts';

// meta-llama/Llama-2-7b-hf config.json
export const llama7b: ModelConfig = {
  arch: 'llama', modelType: 'llama', vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32,
  numKvHeads: 32, headDim: 128, intermediateSize: 11008, maxPositions: 4096, tieWordEmbeddings: false,
  ropeTheta: 10000, ropeScaling: null, rmsNormEps: 1e-5, attentionBias: false, mlpBias: false,
  hiddenAct: 'silu', layerNormEps: 1e-5, scaleAttnByInverseLayerIdx: false, bosTokenId: 1, eosTokenId: 2,
  padTokenId: null,
};

// test/fixtures/models/stories260K/config.json
export const stories260K: ModelConfig = {
  ...llama7b, vocabSize: 512, hiddenSize: 64, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8,
  intermediateSize: 172, maxPositions: 512, tieWordEmbeddings: true,
};

// openai-community/gpt2 config.json
export const gpt2: ModelConfig = {
  ...llama7b, arch: 'gpt2', modelType: 'gpt2', vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12,
  numKvHeads: 12, headDim: 64, intermediateSize: 3072, maxPositions: 1024, tieWordEmbeddings: true, hiddenAct: 'gelu_new',
};

/** The recipe's adapter defaults (team notes), as a plain object to spread overrides into. */
export function adapterSection(over: Partial<AdapterSection> = {}): AdapterSection {
  return {
    method: 'hilo',
    plan_path: null,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    probe: 'depth',
    experts: { pattern: null, total: null, beta: 2.5, groups: 4, per_layer: 4 },
    rank: { r: 8, min: 2, max: 8 },
    strategy: 'topk',
    top_k: 2,
    top_p: 0.8,
    alpha: 16,
    scaling: 'alpha/r',
    fixed_scale: 1,
    dropout: 0.05,
    budget: null,
    ...over,
  };
}

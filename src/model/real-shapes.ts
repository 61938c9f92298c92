/**
 * config.json of real checkpoints people fine-tune, as their publishers ship them (the fields
 * that decide shapes and numerics), so random-init folders in these exact shapes can be written
 * (scripts/make-model-shapes.ts) and memory estimated for them without downloading anything.
 * Token ids are those of the real tokenizers; a folder written with another tokenizer
 * overrides them.
 */

type HfConfig = Record<string, unknown>;

const llama = (c: HfConfig): HfConfig => ({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', attention_bias: false,
  mlp_bias: false, initializer_range: 0.02, pretraining_tp: 1, rope_scaling: null, use_cache: true, ...c,
});

const qwen2 = (c: HfConfig): HfConfig => ({
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_act: 'silu', initializer_range: 0.02,
  vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000.0, use_sliding_window: false,
  bos_token_id: 151643, eos_token_id: 151643, tie_word_embeddings: true, use_cache: true, ...c,
});

// GPT-2's own config.json: Conv1D weights stored [in, out], a learned position table, tied head
const gpt2 = (c: HfConfig): HfConfig => ({
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', activation_function: 'gelu_new', vocab_size: 50257,
  n_positions: 1024, n_ctx: 1024, n_inner: null, layer_norm_epsilon: 1e-5, initializer_range: 0.02,
  attn_pdrop: 0.1, embd_pdrop: 0.1, resid_pdrop: 0.1, bos_token_id: 50256, eos_token_id: 50256,
  tie_word_embeddings: true, use_cache: true, ...c,
});

export const REAL_SHAPES: Record<string, HfConfig> = {
  'smollm2-135m': llama({
    vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9,
    num_key_value_heads: 3, max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 100000,
    initializer_range: 0.041666666666666664, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0,
  }),
  'smollm2-360m': llama({
    vocab_size: 49152, hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15,
    num_key_value_heads: 5, max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 100000,
    tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0,
  }),
  'qwen2.5-0.5b': qwen2({
    hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2,
    max_position_embeddings: 32768, sliding_window: 32768, max_window_layers: 24,
  }),
  'qwen2.5-1.5b': qwen2({
    hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2,
    max_position_embeddings: 131072, sliding_window: 131072, max_window_layers: 28,
  }),
  'llama-3.2-1b': llama({
    vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: 128001,
  }),
  'tinyllama-1.1b': llama({
    vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32,
    num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  }),
  'llama-2-7b': llama({
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 32, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  }),
  gpt2: gpt2({ n_embd: 768, n_layer: 12, n_head: 12 }),
  'gpt2-medium': gpt2({ n_embd: 1024, n_layer: 24, n_head: 16 }),
  'gpt2-large': gpt2({ n_embd: 1280, n_layer: 36, n_head: 20 }),
  'gpt2-xl': gpt2({ n_embd: 1600, n_layer: 48, n_head: 25 }),
  'mistral-7b-v0.1': {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_act: 'silu', initializer_range: 0.02,
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5, rope_theta: 10000.0,
    sliding_window: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, use_cache: true,
  },
};

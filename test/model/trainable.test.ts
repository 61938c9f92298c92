/**
 * Full-parameter training: gradients reach every base weight. Runs on the cpu backend because
 * the embedding's gradient (Gather -> UnsortedSegmentSum) has no wasm kernel in tfjs 4.22; the
 * backend stage registers a wasm fallback for it.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { createRandomModel } from '../../src/model/init.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe.each([
  ['llama, tied', { model_type: 'llama', vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true }],
  ['qwen2, untied', { model_type: 'qwen2', vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 1 }],
  ['gpt2', { model_type: 'gpt2', vocab_size: 64, n_embd: 16, n_head: 2, n_layer: 2, n_positions: 8 }],
])('createRandomModel %s', (_name, raw) => {
  it('is trainable by default and its gradient reaches every weight, without leaking', () => {
    const model = createRandomModel(normaliseConfig(raw), 0);
    const vars = [...model.weights.values()];
    expect(vars.every((v) => v.trainable)).toBe(true);
    const before = tf.memory().numTensors;
    const ids = tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 0]], undefined, 'int32') as tf.Tensor2D;
    const mask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 1, 0]]) as tf.Tensor2D;
    const { grads, value } = tf.variableGrads(() => tf.mean(tf.square(model.forward(ids, { attentionMask: mask }))) as tf.Scalar, vars);
    const names = [...model.weights.keys()];
    const zero = names.filter((_, i) => tf.tidy(() => tf.max(tf.abs(grads[vars[i].name])).dataSync()[0]) === 0);
    expect(zero).toEqual([]);
    tf.dispose([value, ids, mask, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

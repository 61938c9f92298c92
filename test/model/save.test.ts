import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import type { HfTensorData } from '../../src/model/causal-lm.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { createRandomModel, randomWeights } from '../../src/model/init.ts';
import { buildModel, loadModel, readCheckpoint, readModelConfig } from '../../src/model/load.ts';
import { floatToBf16, floatToHalf, halfToFloat, readSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.ts';
import { saveModel } from '../../src/model/save.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const stories = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-save-'));
const IDS = [[1, 403, 407, 261, 378, 432, 383, 286]];

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function logits(model: CausalLM): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(IDS, undefined, 'int32') as tf.Tensor2D).dataSync() as Float32Array);
}
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

const bf16ToFloat = (bits: number) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
const ROUND = { F16: (x: number) => halfToFloat(floatToHalf(x)), BF16: (x: number) => bf16ToFloat(floatToBf16(x)) };

/** stories260K's tensors as two shards of `dtype` plus model.safetensors.index.json. */
function writeSharded(dir: string, dtype: 'F16' | 'BF16'): void {
  const tensors = [...readCheckpoint(stories)].sort(([a], [b]) => a.localeCompare(b));
  const half = Math.ceil(tensors.length / 2);
  const weightMap: Record<string, string> = {};
  [tensors.slice(0, half), tensors.slice(half)].forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(dir, file), new Map(part.map(([n, t]) => [n, { ...t, dtype } as const])));
    for (const [n] of part) weightMap[n] = file;
  });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  fs.copyFileSync(path.join(stories, 'config.json'), path.join(dir, 'config.json'));
}

describe('sharded half-precision checkpoints', () => {
  // F16 keeps 11 significant bits (relative rounding 2^-12 = 2.4e-4), BF16 8 (2^-9 = 2e-3); through
  // 5 layers to logits of size ~10-20 that is ~1e-2 resp. ~1e-1. The exact test is the second one:
  // the same rounded weights given in float32 must give the same logits.
  it.each([['F16', 0.05], ['BF16', 0.3]] as const)('%s: 2 shards load; logits within %d of float32 and equal to pre-rounded weights', async (dtype, tol) => {
    const dir = path.join(tmp, `sharded-${dtype}`);
    fs.mkdirSync(dir);
    writeSharded(dir, dtype);
    expect(readSafetensorsHeader(path.join(dir, 'model-00001-of-00002.safetensors')).entries.values().next().value!.dtype).toBe(dtype);
    const f32 = await loadModel(stories);
    const sharded = await loadModel(dir);
    const rounded = new Map<string, HfTensorData>();
    for (const [n, t] of readCheckpoint(stories)) rounded.set(n, { shape: t.shape, data: (t.data as Float32Array).map(ROUND[dtype]) });
    const manual = buildModel(readModelConfig(stories), rounded);
    const [a, b, c] = [logits(f32), logits(sharded), logits(manual)];
    const vsF32 = maxAbsDiff(a, b);
    expect(vsF32).toBeLessThan(tol);
    expect(vsF32).toBeGreaterThan(0); // it really was rounded
    expect(maxAbsDiff(b, c)).toBe(0);
    [f32, sharded, manual].forEach((m) => m.dispose());
  });

  it('names a missing shard', async () => {
    const dir = path.join(tmp, 'missing-shard');
    fs.mkdirSync(dir);
    writeSharded(dir, 'F16');
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadModel(dir)).rejects.toThrow(/shard model-00002-of-00002.safetensors \(holding "[^"]+"\) is missing/);
  });
});

describe('saveModel', () => {
  it('round-trips stories260K: same logits, tokenizer files copied, no lm_head for a tied model', async () => {
    const model = await loadModel(stories);
    const dir = path.join(tmp, 'saved');
    const before = tf.memory().numTensors;
    await saveModel(model, dir, { tokenizerFrom: stories });
    expect(tf.memory().numTensors).toBe(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const header = readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    expect(header.entries.size).toBe(47);
    expect(header.entries.has('lm_head.weight')).toBe(false);
    expect(header.entries.get('model.layers.0.mlp.down_proj.weight')!.shape).toEqual([64, 172]);
    const again = await loadModel(dir);
    expect(maxAbsDiff(logits(model), logits(again))).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'llama', num_key_value_heads: 4, tie_word_embeddings: true });
    model.dispose();
    again.dispose();
  });

  it('saves a tensor map with a config (qwen2: no o_proj bias in the file)', async () => {
    const config = normaliseConfig({ model_type: 'qwen2', vocab_size: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 });
    const tensors = new Map([...randomWeights(config, 3)].map(([n, t]) => [n, tf.tensor(t.data, t.shape)] as const));
    const dir = path.join(tmp, 'map');
    await saveModel(tensors, dir, { config });
    const model = await loadModel(dir);
    expect(model.config.modelType).toBe('qwen2');
    expect(model.weights.has('model.layers.0.self_attn.q_proj.bias')).toBe(true);
    expect(model.weights.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    const got = tf.tidy(() => tf.transpose(model.weights.get('model.layers.0.self_attn.q_proj.weight')!).dataSync());
    expect(Array.from(got)).toEqual(Array.from(tensors.get('model.layers.0.self_attn.q_proj.weight')!.dataSync()));
    model.dispose();
    tf.dispose([...tensors.values()]);
  });
});

describe('createRandomModel', () => {
  const config = normaliseConfig({ model_type: 'llama', vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, pad_token_id: 0 });
  it('draws HF init: N(0, 0.02) weights, unit norms, zero pad row; same seed same weights', () => {
    const w = randomWeights(config, 1);
    const q = w.get('model.layers.0.mlp.up_proj.weight')!.data;
    const mean = q.reduce((a, b) => a + b, 0) / q.length;
    const sd = Math.sqrt(q.reduce((a, b) => a + (b - mean) ** 2, 0) / q.length);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(sd).toBeGreaterThan(0.018);
    expect(sd).toBeLessThan(0.022);
    expect(Array.from(w.get('model.norm.weight')!.data)).toEqual(new Array(16).fill(1));
    expect(Array.from(w.get('model.embed_tokens.weight')!.data.slice(0, 16))).toEqual(new Array(16).fill(0));
    expect(Array.from(randomWeights(config, 1).get('lm_head.weight')!.data)).toEqual(Array.from(w.get('lm_head.weight')!.data));
    expect(Array.from(randomWeights(config, 2).get('lm_head.weight')!.data)).not.toEqual(Array.from(w.get('lm_head.weight')!.data));
  });

  it('gpt2 residual projections get std 0.02/sqrt(2 n_layer)', () => {
    const g = normaliseConfig({ model_type: 'gpt2', vocab_size: 32, n_embd: 32, n_head: 2, n_layer: 2, n_positions: 16 });
    const d = randomWeights(g, 0).get('transformer.h.0.mlp.c_proj.weight')!.data;
    const sd = Math.sqrt(d.reduce((a, b) => a + b * b, 0) / d.length);
    expect(sd).toBeGreaterThan(0.009);
    expect(sd).toBeLessThan(0.011);
  });
});

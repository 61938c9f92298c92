/**
 * saveRandomModel (what scripts/make-model-shapes.ts runs): a folder in a tiny custom shape
 * loads with hilo's loader, sharded as save_pretrained shards, every tensor bf16 and equal to
 * hilo's init rounded to bf16; and the catalogued real shapes have their published sizes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { floatsToBf16, floatToBf16 } from '../../src/ops/float16.ts';
import { randomWeights } from '../../src/model/init.ts';
import { familyOf } from '../../src/model/families.ts';
import { loadModel } from '../../src/model/load.ts';
import { LLAMA_FAMILY } from '../../src/model/family-llama.ts';
import { REAL_SHAPES } from '../../src/model/real-shapes.ts';
import { readSafetensorsHeader } from '../../src/model/safetensors.ts';
import { saveRandomModel } from '../../src/model/save.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASE = path.join(ROOT, 'models/hilo-base');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-random-folder-'));

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bf16 = (x: Float32Array) => new Float32Array(Uint32Array.from(floatsToBf16(x), (b) => b << 16).buffer);

describe('saveRandomModel', () => {
  // Qwen2: q/k/v biases, no o_proj bias; 2 layers, vocab above the tokenizer's 4096 ids
  const raw = {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 4160, hidden_size: 32, intermediate_size: 48,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    tie_word_embeddings: true, torch_dtype: 'bfloat16', bos_token_id: 1, eos_token_id: 2, pad_token_id: 0,
  };

  it('writes a sharded bf16 folder that hilo loads with the right shapes and the init values', async () => {
    const dir = path.join(tmp, 'qwen-tiny');
    // the embedding (4160 x 32 x 2 bytes = 266 KB) fills the first shard alone; layers share the rest
    const files = saveRandomModel(raw, dir, { seed: 7, tokenizerFrom: BASE, maxShardBytes: 200_000 });
    expect(files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'config.json', 'generation_config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'model.safetensors.index.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
    const config = normaliseConfig(raw);
    const specs = LLAMA_FAMILY.weightSpecs(config);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map['model.embed_tokens.weight']).toBe(files[0]);
    expect(index.weight_map['model.norm.weight']).toBe(files[1]);
    expect(Object.keys(index.weight_map).sort()).toEqual(specs.map((s) => s.name).sort());
    expect(index.metadata.total_size).toBe(specs.reduce((a, s) => a + 2 * s.shape.reduce((x, y) => x * y, 1), 0));
    const entries = files.flatMap((f) => [...readSafetensorsHeader(path.join(dir, f)).entries]);
    expect(new Set(entries.map(([, e]) => e.dtype))).toEqual(new Set(['BF16']));
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toEqual(raw);

    const model = await loadModel(dir);
    expect(model.config.modelType).toBe('qwen2');
    const want = randomWeights(config, 7);
    const got = model.hfTensors();
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    expect(got.get('model.layers.1.self_attn.k_proj.weight')!.shape).toEqual([16, 32]);
    expect(got.has('model.layers.0.self_attn.q_proj.bias')).toBe(true);
    expect(got.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    for (const [name, t] of got) {
      expect(t.shape, name).toEqual(want.get(name)!.shape);
      expect(Array.from(t.dataSync()), name).toEqual(Array.from(bf16(want.get(name)!.data)));
    }
    tf.dispose([...got.values()]);
    model.dispose();
  });

  it('writes one model.safetensors under the shard limit, replacing an earlier sharded write', () => {
    const dir = path.join(tmp, 'qwen-tiny');
    expect(saveRandomModel(raw, dir, { seed: 7 })).toEqual(['model.safetensors']);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('model'))).toEqual(['model.safetensors']);
  });

  it('bulk bf16 rounding matches the scalar one (ties to even, NaN kept, infinities)', () => {
    const xs = new Float32Array([0, -0, 1, 1.00390625, 1.01171875, -3.14159, 65504, 3.4e38, Infinity, -Infinity, NaN, 1e-40]);
    expect(Array.from(floatsToBf16(xs))).toEqual(Array.from(xs, floatToBf16));
  });
});

describe('REAL_SHAPES', () => {
  // parameter counts as published (tied embeddings counted once)
  it.each([
    ['smollm2-135m', 134_515_008], ['smollm2-360m', 361_821_120], ['qwen2.5-0.5b', 494_032_768],
    ['qwen2.5-1.5b', 1_543_714_304], ['llama-3.2-1b', 1_235_814_400], ['tinyllama-1.1b', 1_100_048_384],
    ['llama-2-7b', 6_738_415_616], ['mistral-7b-v0.1', 7_241_732_096],
    ['gpt2', 124_439_808], ['gpt2-medium', 354_823_168], ['gpt2-large', 774_030_080], ['gpt2-xl', 1_557_611_200],
  ])('%s has %d parameters', (name, count) => {
    const config = normaliseConfig(REAL_SHAPES[name]);
    const specs = familyOf(config).weightSpecs(config);
    expect(specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)).toBe(count);
  });

  it("hilo-base's tokenizer never emits an id past any catalogued vocabulary", () => {
    const tok = loadTokenizer(BASE);
    const smallest = Math.min(...Object.values(REAL_SHAPES).map((r) => r.vocab_size as number));
    expect(tok.vocabSize).toBeLessThanOrEqual(smallest);
    const ids = tok.encode('Call me Ishmael. Some years ago -- never mind how long precisely -- \u00e9\u4e2d\ud83d\ude00');
    expect(Math.max(...ids)).toBeLessThan(tok.vocabSize);
  });
});

/**
 * Fault matrix of model folders: config.json against the weights' shapes, absurd sizes, sharded
 * folders, broken tokenizers and max_length, each through the public entry (readModelConfig,
 * loadTokenizer, the hilo CLI) and asserting the message names the file, field and value.
 * Bad folders are copies of the small fixture models with one thing changed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { checkMaxLength, MAX_ATTENTION_TOKENS, SIZE_LIMITS } from '../../src/model/check.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { createRandomModel } from '../../src/model/init.ts';
import { loadModel, readCheckpoint, readModelConfig } from '../../src/model/load.ts';
import { additiveMask } from '../../src/model/ops.ts';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const fixtures = path.join(root, 'test/fixtures/models');
const hiloBase = path.join(root, 'models/hilo-base');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-faults-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let made = 0;
/** A copy of model folder `src` with config.json fields replaced (undefined deletes). */
function variant(src: string, change: Record<string, unknown> = {}, files?: string[]): string {
  const dir = path.join(tmp, `m${made++}`);
  fs.mkdirSync(dir);
  for (const f of files ?? fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const config = { ...JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')), ...change };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

function hilo(args: string[], cwd = root) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/hilo.js'), ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('config.json against the safetensors headers', () => {
  const llama = path.join(fixtures, 'tiny-llama');
  const gpt2 = path.join(fixtures, 'tiny-gpt2');
  const cases: Array<[string, string, Record<string, unknown>, string]> = [
    ['llama layers 1e9', llama, { num_hidden_layers: 1e9 }, 'config.json num_hidden_layers: got 1000000000; allowed: 2 (model.safetensors holds 2 layers, model.layers.0 to model.layers.1)'],
    ['llama one layer too few', llama, { num_hidden_layers: 1 }, 'config.json num_hidden_layers: got 1; allowed: 2 (model.safetensors holds 2 layers, model.layers.0 to model.layers.1)'],
    ['llama hidden 1e9', llama, { hidden_size: 1e9 }, 'config.json hidden_size: got 1000000000; allowed: 32 (model.embed_tokens.weight in model.safetensors is [128, 32])'],
    ['llama vocab', llama, { vocab_size: 100 }, 'config.json vocab_size: got 100; allowed: 128 (model.embed_tokens.weight in model.safetensors is [128, 32])'],
    ['llama ffn', llama, { intermediate_size: 64 }, 'config.json intermediate_size: got 64; allowed: 48 (model.layers.0.mlp.gate_proj.weight in model.safetensors is [48, 32])'],
    ['llama heads', llama, { num_attention_heads: 8 }, 'config.json num_attention_heads: got 8; allowed: 4, as num_attention_heads x head_dim (8) must be 32: model.layers.0.self_attn.q_proj.weight in model.safetensors is [32, 32]'],
    ['llama kv heads', llama, { num_key_value_heads: 4 }, 'config.json num_key_value_heads: got 4; allowed: 2, as num_key_value_heads x head_dim (8) must be 16: model.layers.0.self_attn.k_proj.weight in model.safetensors is [16, 32]'],
    ['llama head_dim', llama, { head_dim: 16 }, 'config.json num_attention_heads: got 4; allowed: 2, as num_attention_heads x head_dim (16) must be 32: model.layers.0.self_attn.q_proj.weight in model.safetensors is [32, 32]'],
    ['llama absurd positions', llama, { max_position_embeddings: 1e9 }, 'config.json max_position_embeddings: got 1000000000; allowed: at most 16,777,216 (no released model comes near; a typo?)'],
    ['tied config, untied-less weights', hiloBase, { tie_word_embeddings: false }, 'config.json tie_word_embeddings: got false; allowed: true (model.safetensors has no lm_head.weight: the head is the embedding)'],
    ['gpt2 layers', gpt2, { n_layer: 1e9 }, 'config.json n_layer: got 1000000000; allowed: 2 (model.safetensors holds 2 layers, h.0 to h.1)'],
    ['gpt2 width', gpt2, { n_embd: 64 }, 'config.json n_embd: got 64; allowed: 32 (transformer.wte.weight in model.safetensors is [80, 32])'],
    ['gpt2 positions', gpt2, { n_positions: 64 }, 'config.json n_positions: got 64; allowed: 32 (transformer.wpe.weight in model.safetensors is [32, 32])'],
    ['gpt2 n_inner', gpt2, { n_inner: 64 }, 'config.json n_inner: got 64; allowed: 128 (transformer.h.0.mlp.c_fc.weight in model.safetensors is [32, 128])'],
    ['llama config on gpt2 weights', gpt2, { model_type: 'llama', hidden_size: 32, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4 },
      'model.safetensors has no tensor "model.embed_tokens.weight": these weights are not a llama checkpoint (config.json model_type "llama")'],
  ];
  it.each(cases)('%s', (_name, src, change, message) => {
    const dir = variant(src, change);
    expect(errorOf(() => readModelConfig(dir))).toBe(`${dir}/config.json: ${message}`);
  });

  it('the shipped and fixture models pass', () => {
    for (const dir of [hiloBase, ...['tiny-llama', 'tiny-qwen2', 'tiny-gpt2'].map((m) => path.join(fixtures, m))]) {
      expect(readModelConfig(dir).numLayers).toBeGreaterThan(0);
    }
  });

  it('a config with a stray tied lm_head copy still loads (HF ignores it)', () => {
    expect(readModelConfig(variant(path.join(fixtures, 'tiny-llama'), { tie_word_embeddings: true })).tieWordEmbeddings).toBe(true);
  });
});

describe('absurd sizes in a folder without weights (pretraining from config.json)', () => {
  const cases: Array<[string, number, string]> = [
    ['num_hidden_layers', 1e9, 'at most 1,024'],
    ['hidden_size', 1e9, 'at most 65,536'],
    ['intermediate_size', 1e7, 'at most 262,144'],
    ['vocab_size', 1e9, 'at most 4,194,304'],
  ];
  it.each(cases)('%s: %d', (field, value, allowed) => {
    const dir = variant(hiloBase, { [field]: value }, ['tokenizer.json']);
    expect(errorOf(() => readModelConfig(dir))).toBe(`${dir}/config.json: config.json ${field}: got ${value}; allowed: ${allowed} (no released model comes near; a typo?)`);
  });

  it('the limits leave room for every real model (Llama 3.1 405B, Qwen2.5-1M, Gemma vocabularies)', () => {
    expect(SIZE_LIMITS.numLayers).toBeGreaterThan(126);
    expect(SIZE_LIMITS.hiddenSize).toBeGreaterThan(16_384);
    expect(SIZE_LIMITS.intermediateSize).toBeGreaterThan(53_248);
    expect(SIZE_LIMITS.vocabSize).toBeGreaterThan(262_144);
    expect(SIZE_LIMITS.maxPositions).toBeGreaterThan(10_485_760);
  });
});

describe('sharded folders (model.safetensors.index.json)', () => {
  /** tiny-llama split into two shards by layer, with its index. */
  function sharded(edit: (index: { weight_map: Record<string, string> }, dir: string) => void = () => {}): string {
    const dir = variant(path.join(fixtures, 'tiny-llama'), {}, []);
    const { tensors } = readSafetensors(path.join(fixtures, 'tiny-llama', 'model.safetensors'));
    const shards: Record<string, Map<string, { shape: number[]; data: Float32Array | Int32Array }>> = { 'model-00001-of-00002.safetensors': new Map(), 'model-00002-of-00002.safetensors': new Map() };
    const weightMap: Record<string, string> = {};
    for (const [name, t] of tensors) {
      const shard = name.startsWith('model.layers.1.') || name === 'lm_head.weight' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
      shards[shard].set(name, t);
      weightMap[name] = shard;
    }
    for (const [file, m] of Object.entries(shards)) writeSafetensors(path.join(dir, file), m);
    const index = { metadata: {}, weight_map: weightMap };
    edit(index, dir);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    return dir;
  }

  it('a good sharded folder passes, and its weights are the same', () => {
    const dir = sharded();
    expect(readModelConfig(dir).numLayers).toBe(2);
    expect([...readCheckpoint(dir).keys()].sort()).toEqual([...readCheckpoint(path.join(fixtures, 'tiny-llama')).keys()].sort());
  });

  it('config.json against the shards: the index is named', () => {
    const dir = sharded();
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
    expect(errorOf(() => readModelConfig(dir))).toBe(
      `${dir}/config.json: config.json num_hidden_layers: got 3; allowed: 2 (model.safetensors.index.json holds 2 layers, model.layers.0 to model.layers.1)`);
  });

  it('a missing shard, a tensor its shard lacks and a broken index are named', () => {
    const missing = sharded((_i, dir) => fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors')));
    expect(errorOf(() => readModelConfig(missing))).toMatch(/model\.safetensors\.index\.json: shard model-00002-of-00002\.safetensors \(holding "[^"]+"\) is missing$/);
    const moved = sharded((index) => { index.weight_map['model.norm.weight'] = 'model-00002-of-00002.safetensors'; });
    expect(errorOf(() => readModelConfig(moved))).toBe(
      `${moved}/model.safetensors.index.json: weight_map puts "model.norm.weight" in model-00002-of-00002.safetensors, whose header has no such tensor`);
    const broken = sharded();
    fs.writeFileSync(path.join(broken, 'model.safetensors.index.json'), '{"weight_map": {');
    expect(errorOf(() => readModelConfig(broken))).toMatch(new RegExp(`^${broken}/model\\.safetensors\\.index\\.json: not valid JSON \\(`));
  });
});

describe('tokenizer.json faults name the file and what is wrong', () => {
  const good = JSON.parse(fs.readFileSync(path.join(hiloBase, 'tokenizer.json'), 'utf8'));
  const cases: Array<[string, (t: any) => unknown, string]> = [
    ['unknown model type', (t) => ({ ...t, model: { ...t.model, type: 'SentencePiece' } }),
      'tokenizer.json model.type: got "SentencePiece"; allowed: "BPE" | "WordPiece" | "Unigram" (what @huggingface/tokenizers implements)'],
    ['no model', ({ model: _m, ...t }) => t,
      'tokenizer.json model: got nothing; allowed: an object {type, vocab, ...} (is this a Hugging Face tokenizers file? save one with tokenizer.save_pretrained)'],
    ['no vocab', (t) => ({ ...t, model: { ...t.model, vocab: undefined } }),
      'tokenizer.json model.vocab: got nothing; allowed: an object {token: id} or, for Unigram, a list of [token, score]'],
    ['a list, not an object', () => [1, 2], 'tokenizer.json: got [1,2]; allowed: a JSON object as Hugging Face tokenizers saves it'],
    ['unknown decoder', (t) => ({ ...t, decoder: { type: 'Nope' } }),
      'not a tokenizer hilo can read (@huggingface/tokenizers says: Unknown Decoder type: Nope)'],
    ['bad merge', (t) => ({ ...t, model: { ...t.model, merges: [5] } }), 'tokenizer.json model.merges[0]: got 5; allowed: "a b" or ["a", "b"]'],
  ];
  it.each(cases)('%s', (_name, edit, message) => {
    const dir = path.join(tmp, `tok${made++}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(edit(structuredClone(good))));
    expect(errorOf(() => loadTokenizer(dir))).toBe(`${dir}/tokenizer.json: ${message}`);
  });

  it('a file without the optional parts (decoder, normalizer, ...) reads them as null, as the Rust tokenizers does', () => {
    const dir = path.join(tmp, `tok${made++}`);
    fs.mkdirSync(dir);
    const { decoder: _d, normalizer: _n, ...rest } = good;
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(rest));
    expect(loadTokenizer(dir).encode('hello', false)).toEqual(loadTokenizer(hiloBase).encode('hello', false));
  });

  it('hilo generate with such a tokenizer: one line naming the file, exit 2, no stack', () => {
    const dir = variant(hiloBase);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...good, model: { ...good.model, type: 'Tiktoken' } }));
    const r = hilo(['generate', '--model', dir, '--prompt', 'hi', '--backend', 'wasm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir}/tokenizer.json: tokenizer.json model.type: got "Tiktoken"`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe('data.max_length against what the model supports', () => {
  const gpt2 = readModelConfig(path.join(fixtures, 'tiny-gpt2')); // n_positions 32
  const llama = readModelConfig(hiloBase); // max_position_embeddings 256
  it('learned positions (GPT-2): past n_positions is an error', () => {
    expect(checkMaxLength(32, gpt2, 'gpt2dir')).toBeNull();
    expect(errorOf(() => checkMaxLength(33, gpt2, 'gpt2dir'))).toBe(
      'recipe.data.max_length: got 33; allowed: at most 32, the n_positions of gpt2dir/config.json (GPT-2 learned one position embedding per position and has none past it)');
  });
  it('RoPE (Llama family): past max_position_embeddings is a warning that says so', () => {
    expect(checkMaxLength(256, llama, 'base')).toBeNull();
    expect(checkMaxLength(512, llama, 'base')).toBe('warning: recipe.data.max_length 512 is past max_position_embeddings 256 of base/config.json: ' +
      'RoPE runs there, but the model never saw positions past 256 in pretraining, so expect worse predictions on them (data.max_length=256 stays inside)');
  });
  it('past what attention can hold is an error for every model', () => {
    const long = normaliseConfig({ model_type: 'llama', vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 1, max_position_embeddings: 1_000_000 });
    expect(checkMaxLength(MAX_ATTENTION_TOKENS, long, 'x')).toBeNull();
    expect(errorOf(() => checkMaxLength(100_000, long, 'x'))).toBe(
      'recipe.data.max_length: got 100000; allowed: at most 16384 (attention holds each head\'s [T, T] scores whole: 37.3 GiB per head and sequence at 100000 tokens)');
  });

  it('hilo train data.max_length=100000: the sentence, exit 2, no RangeError, nothing trained', () => {
    const out = path.join(tmp, 'run-long');
    const r = hilo(['train', 'recipes/moby/lora.yaml', 'data.max_length=100000', 'train.max_steps=1', `output_dir=${out}`, 'backend=wasm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('recipe.data.max_length: got 100000; allowed: at most 16384');
    expect(r.stderr).not.toMatch(/RangeError|^\s+at /m);
    expect(fs.existsSync(path.join(out, 'adapter'))).toBe(false);
  });
});

describe('CLI: the model folder is checked before anything big is allocated', () => {
  /** A recipe folder whose model is `model` (a copy of hilo-base with config changes) and a tiny JSONL. */
  function recipeWith(change: Record<string, unknown>, files?: string[]): string {
    const model = variant(hiloBase, change, files);
    const dir = path.join(tmp, `r${made++}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'r.yaml'), `model: {path: ${model}}\ndata: {task: sentiment}\nadapter: {method: lora}\noutput_dir: ${path.join(dir, 'run')}\n`);
    return dir;
  }

  it('hilo plan with num_hidden_layers 1e9 stops at once with the field, value and the weights\' count', () => {
    const dir = recipeWith({ num_hidden_layers: 1e9 });
    const t0 = Date.now();
    const r = hilo(['plan', 'r.yaml'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.json: config\.json num_hidden_layers: got 1000000000; allowed: 4 \(model\.safetensors holds 4 layers/);
    expect(Date.now() - t0).toBeLessThan(30_000); // a bound for a stuck check, not a timing claim
  });

  it('hilo plan with hidden_size 1e9 and no weights: refused, no parameter count printed', () => {
    const dir = recipeWith({ hidden_size: 1e9 }, ['tokenizer.json']);
    const r = hilo(['plan', 'r.yaml'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config.json hidden_size: got 1000000000; allowed: at most 65,536');
    expect(r.stdout).toBe('');
  });

  it('hilo train with num_hidden_layers 1e9: the same sentence, exit 2', () => {
    const dir = recipeWith({ num_hidden_layers: 1e9 });
    const r = hilo(['train', 'r.yaml', 'train.max_steps=1', 'backend=wasm'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config.json num_hidden_layers: got 1000000000; allowed: 4 (model.safetensors holds 4 layers, model.layers.0 to model.layers.3)');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe('tensor paths', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('attention longer than it can hold is a sentence, before the [T, T] mask is allocated', () => {
    expect(errorOf(() => additiveMask(1, 100_000))).toBe(
      'attention over 100000 tokens: at most 16384 (each head\'s [T, T] scores are held whole); give a shorter sequence');
  });

  it('a model with 1M positions builds RoPE tables for what it runs, not 1M rows (64 MB here)', () => {
    const config = normaliseConfig({
      model_type: 'llama', vocab_size: 16, hidden_size: 16, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 1_000_000,
    });
    const before = tf.memory().numBytes;
    const model = createRandomModel(config, 0, { trainable: false });
    try {
      expect(tf.memory().numBytes - before).toBeLessThan(1_000_000);
      const logits = tf.tidy(() => model.forward(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32') as tf.Tensor2D).arraySync());
      expect(logits[0]).toHaveLength(3);
    } finally {
      model.dispose();
    }
  });

  it('RoPE tables grown inside a caller\'s tidy survive it (a sequence past max_position_embeddings, twice)', async () => {
    const model = await loadModel(path.join(fixtures, 'tiny-llama')); // max_position_embeddings 64
    try {
      const ids = Array.from({ length: 70 }, (_, i) => i % 128);
      const run = () => tf.tidy(() => model.forward(tf.tensor2d([ids], [1, 70], 'int32') as tf.Tensor2D).slice([0, 69, 0], [1, 1, 128]).dataSync()[0]);
      const first = run();
      const before = tf.memory().numTensors;
      expect(run()).toBe(first);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

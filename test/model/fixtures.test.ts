/**
 * Parity with an independent implementation: tiny random models written by
 * scripts/make-model-fixtures.py with ../shared/bench/ref_model.py (PyTorch), and the logits it
 * computed for a right-padded batch.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { loadModel } from '../../src/model/load.ts';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../fixtures/models');
interface Ref { input_ids: number[][]; attention_mask: number[][]; logits: number[][][] }
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-fx-'));

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Largest |logit - reference| over the real (unpadded) positions. */
function maxDiffOnRealPositions(model: CausalLM, ref: Ref): number {
  const got = tf.tidy(() => model.forward(tf.tensor2d(ref.input_ids, undefined, 'int32') as tf.Tensor2D, {
    attentionMask: tf.tensor2d(ref.attention_mask) as tf.Tensor2D,
  }).arraySync());
  let max = 0;
  ref.logits.forEach((rows, b) => rows.forEach((row, t) => {
    if (!ref.attention_mask[b][t]) return;
    row.forEach((x, v) => { max = Math.max(max, Math.abs(x - got[b][t][v])); });
  }));
  return max;
}

const readRef = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Ref;

describe.each([
  ['tiny-llama', 'llama', 14, false],
  ['tiny-qwen2', 'qwen2', 14, true],
  ['tiny-gpt2', 'gpt2', 8, true],
])('%s', (name, modelType, modules, tied) => {
  const dir = path.join(fixtures, name);
  it('matches the PyTorch reference logits within 1e-4 on real positions, without leaking', async () => {
    const model = await loadModel(dir);
    expect(model.config.modelType).toBe(modelType);
    expect(model.config.tieWordEmbeddings).toBe(tied);
    expect(model.modules.size).toBe(modules);
    const before = tf.memory().numTensors;
    const diff = maxDiffOnRealPositions(model, readRef(dir));
    expect(tf.memory().numTensors).toBe(before);
    expect(diff).toBeLessThan(1e-4);
    model.dispose();
  });
});

describe('loading variants', () => {
  it('qwen2: q/k/v carry biases and o_proj none', async () => {
    const model = await loadModel(path.join(fixtures, 'tiny-qwen2'));
    expect(model.baseModules.get('model.layers.0.self_attn.q_proj')!.bias?.shape).toEqual([32]);
    expect(model.baseModules.get('model.layers.0.self_attn.v_proj')!.bias?.shape).toEqual([8]);
    expect(model.baseModules.get('model.layers.0.self_attn.o_proj')!.bias).toBeNull();
    model.dispose();
  });

  it('gpt2 in the original openai layout (no transformer. prefix, attn.bias buffers) gives the same logits', async () => {
    const src = path.join(fixtures, 'tiny-gpt2');
    const dir = path.join(tmp, 'gpt2-openai');
    const { tensors } = readSafetensors(path.join(src, 'model.safetensors'));
    const old = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, t] of tensors) old.set(k.replace(/^transformer\./, ''), t as { shape: number[]; data: Float32Array });
    for (let l = 0; l < 2; l++) old.set(`h.${l}.attn.bias`, { shape: [1, 1, 32, 32], data: new Float32Array(32 * 32).fill(1) });
    writeSafetensors(path.join(dir, 'model.safetensors'), old);
    fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
    const model = await loadModel(dir);
    expect(maxDiffOnRealPositions(model, readRef(src))).toBeLessThan(1e-4);
    model.dispose();
  });

  const broken: Array<[string, (t: Map<string, { shape: number[]; data: Float32Array }>) => void, RegExp]> = [
    ['a missing tensor', (t) => t.delete('model.norm.weight'), /missing tensor "model.norm.weight" \[32\]/],
    ['a wrong shape', (t) => t.set('model.norm.weight', { shape: [31], data: new Float32Array(31) }), /tensor "model.norm.weight" has shape \[31\]; config.json implies \[32\]/],
    ['an unexpected tensor', (t) => t.set('model.extra.weight', { shape: [1], data: new Float32Array(1) }), /unexpected tensors for a llama model: "model.extra.weight"/],
  ];
  it.each(broken)('refuses %s and frees what it had built', async (_what, edit, msg) => {
    const src = path.join(fixtures, 'tiny-llama');
    const dir = path.join(tmp, `broken-${Math.random().toString(36).slice(2)}`);
    const { tensors } = readSafetensors(path.join(src, 'model.safetensors'));
    edit(tensors as Map<string, { shape: number[]; data: Float32Array }>);
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors as Map<string, { shape: number[]; data: Float32Array }>);
    fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
    const before = tf.memory().numTensors;
    await expect(loadModel(dir)).rejects.toThrow(msg);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names the directory when there is no checkpoint or config', async () => {
    await expect(loadModel(tmp)).rejects.toThrow(`${tmp}: no config.json`);
    const dir = path.join(tmp, 'config-only');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(fixtures, 'tiny-llama', 'config.json'), path.join(dir, 'config.json'));
    await expect(loadModel(dir)).rejects.toThrow(`${dir}: no model.safetensors or model.safetensors.index.json`);
  });
});

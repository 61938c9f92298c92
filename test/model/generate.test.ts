import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { type BaseCausalLM, createKvCache, disposeKvCache } from '../../src/model/causal-lm.ts';
import { generate, scoreIds } from '../../src/model/generate.ts';
import { argmax, sampleIndex } from '../../src/model/sampling.ts';
import { loadModel } from '../../src/model/load.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const stories = STORIES260K;
interface PromptRef { prompt: string; prompt_ids: number[]; generated_ids: number[]; full_text: string; last_prompt_position_logits: number[] }
const reference = JSON.parse(fs.readFileSync(path.join(stories, 'reference.json'), 'utf8')) as {
  prompts: PromptRef[]; tokenizer_cases: Array<{ text: string; ids: number[] }>;
};

let model: BaseCausalLM;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(stories);
});
afterAll(() => model?.dispose());

describe('greedy generation on stories260K', () => {
  it.each([0, 1, 2])('prompt %i reproduces run.c token for token, without leaking', async (i) => {
    const p = reference.prompts[i];
    const before = tf.memory().numTensors;
    const r = await generate(model, p.prompt_ids, { maxNewTokens: 32, temperature: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.ids).toEqual(p.generated_ids);
    expect(r.stoppedBy).toBe('max-new-tokens');
    expect(loadTokenizer(stories).decode([...p.prompt_ids, ...r.ids])).toBe(p.full_text);
  });

  it('the KV cache changes nothing: same ids as recomputing the prefix, for GQA Llama and GPT-2', async () => {
    const p = reference.prompts[1];
    const uncached = await generate(model, p.prompt_ids, { maxNewTokens: 12, useCache: false });
    expect(uncached.ids).toEqual(p.generated_ids.slice(0, 12));
    const gpt2 = await loadModel(path.resolve(here, '../fixtures/models/tiny-gpt2'));
    const before = tf.memory().numTensors;
    const a = await generate(gpt2, [5, 17, 3], { maxNewTokens: 10, temperature: 0.8, seed: 1, useCache: true });
    const b = await generate(gpt2, [5, 17, 3], { maxNewTokens: 10, temperature: 0.8, seed: 1, useCache: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(a.ids).toEqual(b.ids);
    gpt2.dispose();
  });

  // logits are ~±20 and the cached path sums in a different order: float32 noise is ~1e-5
  it('cached logits equal full-prefix logits within 1e-4', () => {
    const ids = reference.prompts[2].prompt_ids;
    const cache = createKvCache();
    const before = tf.memory().numTensors;
    const full = tf.tidy(() => model.forward(tf.tensor2d([ids], undefined, 'int32') as tf.Tensor2D).arraySync()[0]);
    const steps = tf.tidy(() => [
      ...model.forward(tf.tensor2d([ids.slice(0, 6)], undefined, 'int32') as tf.Tensor2D, { cache }).arraySync()[0],
      ...model.forward(tf.tensor2d([ids.slice(6, 7)], undefined, 'int32') as tf.Tensor2D, { cache }).arraySync()[0],
      ...model.forward(tf.tensor2d([ids.slice(7)], undefined, 'int32') as tf.Tensor2D, { cache }).arraySync()[0],
    ]);
    expect(cache.length).toBe(ids.length);
    disposeKvCache(cache);
    expect(tf.memory().numTensors).toBe(before);
    let max = 0;
    full.forEach((row, t) => row.forEach((x, v) => { max = Math.max(max, Math.abs(x - steps[t][v])); }));
    expect(max).toBeLessThan(1e-4);
  });

  it('stops on a stop id and includes it', async () => {
    const p = reference.prompts[0];
    const r = await generate(model, p.prompt_ids, { maxNewTokens: 32, stopIds: [p.generated_ids[3]] });
    expect(r).toEqual({ ids: p.generated_ids.slice(0, 4), stoppedBy: 'stop-id' });
  });

  it('sampling is reproducible per seed and differs across seeds', async () => {
    const ids = reference.prompts[0].prompt_ids;
    const a = await generate(model, ids, { maxNewTokens: 12, temperature: 1.5, seed: 7 });
    const b = await generate(model, ids, { maxNewTokens: 12, temperature: 1.5, seed: 7 });
    const c = await generate(model, ids, { maxNewTokens: 12, temperature: 1.5, seed: 8 });
    expect(a.ids).toEqual(b.ids);
    expect(c.ids).not.toEqual(a.ids);
  });
});

describe('scoring', () => {
  it('log-probabilities equal log_softmax of the reference logits, rows equal forward', async () => {
    const p = reference.prompts[0];
    const ids = [...p.prompt_ids, p.generated_ids[0]];
    const before = tf.memory().numTensors;
    const r = await scoreIds(model, ids, { logits: true });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.logprobs[0]).toBeNull();
    const ref = p.last_prompt_position_logits;
    const max = Math.max(...ref);
    const lse = max + Math.log(ref.reduce((s, x) => s + Math.exp(x - max), 0));
    expect(r.logprobs[ids.length - 1]).toBeCloseTo(ref[p.generated_ids[0]] - lse, 4);
    expect(r.logits![p.prompt_ids.length - 1][7]).toBeCloseTo(ref[7], 4);
    expect(r.logprobs.slice(1).every((x) => x! < 0)).toBe(true);
  });
});

describe('picking tokens', () => {
  it.each([
    [[1, 3, 3, 2], 1],
    [[5, 5], 0],
    [[-1, -0.5, -2], 1],
  ])('argmax %j -> first max %i', (row, want) => expect(argmax(row)).toBe(want));

  it.each([
    [[0, 0], 0.49, 0], [[0, 0], 0.51, 1], [[0, Math.log(3)], 0.26, 1], [[0, Math.log(3)], 0.24, 0],
  ])('sampleIndex(%j, T=1, u=%d) = %i', (row, u, want) => expect(sampleIndex(row, 1, u)).toBe(want));
});

describe('stories260K tokenizer', () => {
  const tok = loadTokenizer(stories);
  it('knows its special ids', () => {
    expect([tok.bosId, tok.eosId, tok.padId, tok.vocabSize, tok.available]).toEqual([1, 2, null, 512, true]);
  });
  it.each(reference.tokenizer_cases.map((c) => [c.text, c.ids] as const))('encodes %j like run.c (BOS included)', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.decode(ids)).toBe(text);
  });
});

/** The data path on real data with the real stories260K tokenizer: masks stay exact after templating and truncation. */
import { describe, expect, it } from 'vitest';
import { encodeDataset, loadDataset, type DataRecipe } from '../../src/data/dataset.ts';
import { encodeContinuation, IGNORE_INDEX } from '../../src/data/encode.ts';
import { makeBatches } from '../../src/data/batch.ts';
import { storiesTokenizer } from './helpers.ts';

const base: DataRecipe = {
  task: null, train_path: null, eval_path: null, test_path: null, format: null, template: null, label_words: null,
  max_length: 48, train_on_inputs: false, eval_fraction: 0.1, max_train_examples: null, max_eval_examples: null,
};

describe('stories260K tokenizer on built-in tasks', () => {
  const tok = storiesTokenizer();

  const ds = loadDataset({ ...base, task: 'sentiment' }, '.', 0);
  const enc = encodeDataset(ds, tok, base);

  it('sentiment: every sequence is BOS-led, within max_length, loss exactly on its label word', () => {
    expect([ds.train.length, ds.eval.length, ds.test.length]).toEqual([2160, 240, 600]);
    const words = { negative: encodeContinuation(tok, ' negative'), positive: encodeContinuation(tok, ' positive') };
    let truncated = 0;
    enc.train.forEach((e, k) => {
      const ex = ds.train[k];
      if (ex.format !== 'classification') throw new Error('format');
      const want = words[ex.label as 'negative' | 'positive'];
      expect(e.inputIds[0]).toBe(1);
      expect(e.inputIds.length).toBeLessThanOrEqual(48);
      expect(e.labels.slice(-want.length)).toEqual(want);
      expect(e.labels.slice(0, -want.length).every((l) => l === IGNORE_INDEX)).toBe(true);
      if (e.inputIds.length === 48) truncated++;
    });
    expect(truncated).toBeGreaterThan(100); // max_length 48 truncates the longer reviews
    // Candidates: both label words, answer at the gold label, shared prompt.
    const item = enc.testItems![0];
    expect(item.candidates.map((c) => c.labels.filter((l) => l !== IGNORE_INDEX))).toEqual([words.negative, words.positive]);
    const gold = ds.test[0].format === 'classification' && ds.test[0].label;
    expect(item.answer).toBe(gold === 'negative' ? 0 : 1);
  });

  it('a truncated review keeps "Review:" at the start and "\\nSentiment: <word>" at the end', () => {
    const k = enc.train.findIndex((e) => e.inputIds.length === 48);
    const text = tok.decode(enc.train[k].inputIds, true);
    expect(text.startsWith('Review:')).toBe(true);
    expect(text).toMatch(/\nSentiment: (negative|positive)$/);
  });

  it('moby-lm: text windows, loss on every token but BOS; batches reproducible', () => {
    const moby = loadDataset({ ...base, task: 'moby-lm', max_length: 128, max_train_examples: 50, eval_fraction: 0 }, '.', 0);
    const menc = encodeDataset(moby, tok, { max_length: 128, train_on_inputs: false });
    expect(menc.train.length).toBeGreaterThan(50); // 1000-char chunks need more than 127 tokens at 512 ids
    for (const e of menc.train) {
      expect(e.inputIds[0]).toBe(1);
      expect(e.labels).toEqual([IGNORE_INDEX, ...e.inputIds.slice(1)]);
    }
    const a = makeBatches(menc.train, { batchSize: 8, seed: 1, padId: 0 }).next().value!;
    const b = makeBatches(menc.train, { batchSize: 8, seed: 1, padId: 0 }).next().value!;
    expect(a.batch).toEqual(b.batch);
    expect(a.batch.seqLen).toBe(128);
  });
});

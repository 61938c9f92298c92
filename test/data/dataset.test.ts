import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeDataset, loadDataset, summarizeDataset, type DataRecipe } from '../../src/data/dataset.ts';
import { IGNORE_INDEX } from '../../src/data/encode.ts';
import { flattenCandidates, pickAnswers } from '../../src/data/score.ts';
import { HiloError } from '../../src/errors.ts';
import { charTokenizer, FIXTURES, ids } from './helpers.ts';

const base: DataRecipe = {
  task: null, train_path: null, eval_path: null, test_path: null, format: null, template: null, label_words: null,
  max_length: 128, train_on_inputs: false, eval_fraction: 0.1, max_train_examples: null, max_eval_examples: null,
};
const tok = charTokenizer();

describe('loadDataset: user JSONL', () => {
  it('carves a stratified eval split from train, seeded', () => {
    const data = { ...base, train_path: 'cls-train.jsonl', format: 'classification' as const, eval_fraction: 0.2, test_path: 'cls-train.jsonl' };
    const ds = loadDataset(data, FIXTURES, 3);
    expect(ds.labelWords).toEqual({ negative: ' negative', positive: ' positive' }); // derived, sorted
    expect(ds.train).toHaveLength(8);
    expect(ds.eval).toHaveLength(2);
    expect(ds.eval.map((e) => e.format === 'classification' && e.label).sort()).toEqual(['negative', 'positive']);
    expect(ds.test).toHaveLength(10);
    expect(loadDataset(data, FIXTURES, 3).eval).toEqual(ds.eval);
    const other = [4, 5, 6, 7].map((s) => JSON.stringify(loadDataset(data, FIXTURES, s).eval));
    expect(other.some((e) => e !== JSON.stringify(ds.eval))).toBe(true);
    expect(ds.metric).toBe('accuracy');
  });

  it('caps train and eval with a seeded sample', () => {
    const ds = loadDataset({ ...base, train_path: 'cls-train.jsonl', format: 'classification', eval_fraction: 0.2, max_train_examples: 3, max_eval_examples: 1 }, FIXTURES);
    expect([ds.train.length, ds.eval.length]).toEqual([3, 1]);
  });

  it('refuses bad data with every problem of every file, as file:line', () => {
    const data = { ...base, train_path: 'cls-bad.jsonl', eval_path: 'mc.jsonl', format: 'classification' as const, label_words: { negative: ' no', positive: ' yes' } };
    let err: unknown;
    try { loadDataset(data, FIXTURES); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(HiloError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^recipe\.data: 12 problems; fix them before training:/);
    expect(msg).toContain(`${path.join(FIXTURES, 'cls-bad.jsonl')}:5: unknown label "neutral"; allowed: "negative" | "positive"`);
    expect(msg).toContain(`${path.join(FIXTURES, 'mc.jsonl')}:1: missing field "text"`); // 6 in cls-bad + 2 per mc line
  });

  it('names the field for recipe mistakes', () => {
    expect(() => loadDataset({ ...base, train_path: 'cls-train.jsonl' }, FIXTURES)).toThrow(/recipe\.data\.format: got null/);
    expect(() => loadDataset(base, FIXTURES)).toThrow(/recipe\.data: got "neither task nor train_path"/);
    expect(() => loadDataset({ ...base, task: 'sentimnet' }, FIXTURES)).toThrow(/recipe\.data\.task: got "sentimnet"; allowed: "sentiment" \| "sentiment-cross"/);
    expect(() => loadDataset({ ...base, task: 'sentiment', format: 'text' }, FIXTURES)).toThrow(/recipe\.data\.format: got "text"/);
    expect(() => loadDataset({ ...base, task: 'sentiment', label_words: { good: ' good' } }, FIXTURES)).toThrow(/recipe\.data\.label_words/);
    expect(() => loadDataset({ ...base, task: 'sentiment', template: '{title}: {text}' }, FIXTURES)).toThrow(/recipe\.data\.template/);
    expect(() => loadDataset({ ...base, train_path: 'cls-train.jsonl', format: 'classification', label_words: { negative: ' x', positive: ' x' } }, FIXTURES))
      .toThrow(/recipe\.data\.label_words\.positive: got " x"/);
  });

  it('a task takes recipe label words and template', () => {
    const ds = loadDataset({ ...base, task: 'sentiment-cross', label_words: { positive: ' good', negative: ' bad' }, template: '{text} =>' }, FIXTURES);
    expect(ds.labelWords).toEqual({ negative: ' bad', positive: ' good' }); // the task's label order
    expect(ds.template).toBe('{text} =>');
    expect(summarizeDataset(ds)).toEqual({
      name: 'sentiment-cross', format: 'classification', metric: 'accuracy', sizes: { train: 1800, eval: 200, test: 1000 },
      labels: { train: { negative: 900, positive: 900 }, eval: { negative: 100, positive: 100 }, test: { negative: 500, positive: 500 } },
    });
    expect(ds.train.length + ds.eval.length).toBe(2000);
    expect(ds.eval).toHaveLength(200);
  });
});

describe('encodeDataset', () => {
  it('classification: training sequences, and candidates whose best score gives accuracy', () => {
    const ds = loadDataset({ ...base, train_path: 'cls-train.jsonl', format: 'classification', label_words: { negative: ' no', positive: ' yes' }, eval_fraction: 0.2 }, FIXTURES);
    const enc = encodeDataset(ds, tok, { max_length: 128, train_on_inputs: false });
    expect(enc.train).toHaveLength(8);
    for (const [k, e] of enc.train.entries()) {
      const label = ds.train[k].format === 'classification' && ds.train[k].label;
      expect(e.labels.filter((l) => l !== IGNORE_INDEX)).toEqual(ids(tok, label === 'positive' ? ' yes' : ' no'));
    }
    expect(enc.evalItems).toHaveLength(2);
    expect(enc.testItems).toEqual([]);
    // An oracle scorer that likes the right answer gets 100%; one that always says " no" gets 50%.
    const items = enc.evalItems!;
    const rows = flattenCandidates(items);
    expect(pickAnswers(items, rows, rows.choice.map((c, k) => (c === items[rows.item[k]].answer ? 0 : -1))).accuracy).toBe(1);
    expect(pickAnswers(items, rows, rows.choice.map((c) => (c === 0 ? 0 : -1))).accuracy).toBe(0.5);
  });

  it('label words the tokenizer cannot tell apart are refused', () => {
    const ds = loadDataset({ ...base, train_path: 'cls-train.jsonl', format: 'classification', label_words: { negative: ' no', positive: ' no ' } }, FIXTURES);
    const lossy = { ...tok, encode: (t: string, s?: boolean) => tok.encode(t.trimEnd(), s) };
    expect(() => encodeDataset(ds, lossy, { max_length: 64, train_on_inputs: false })).toThrow(/tells apart/);
  });

  it('text: perplexity data without candidates; instruction: output-only loss', () => {
    const text = encodeDataset(loadDataset({ ...base, train_path: 'text.jsonl', format: 'text', eval_fraction: 0 }, FIXTURES), tok, { max_length: 32, train_on_inputs: false });
    expect(text.train.map((e) => e.inputIds.length)).toEqual([17, 32, 32, 24]); // 16 chars + BOS; 85 chars in windows of 31 + BOS
    expect(text.evalItems).toBeNull();
    const ins = loadDataset({ ...base, train_path: 'instr.jsonl', format: 'instruction', eval_fraction: 0 }, FIXTURES);
    expect(ins.metric).toBe('perplexity');
    const enc = encodeDataset(ins, tok, { max_length: 512, train_on_inputs: false });
    expect(enc.train.map((e) => tok.decode(e.labels.filter((l) => l !== IGNORE_INDEX)))).toEqual(['glad', '5', 'blue']);
  });

  it('multiple choice from JSONL', () => {
    const ds = loadDataset({ ...base, train_path: 'mc.jsonl', format: 'multiple_choice', eval_fraction: 0, test_path: 'mc.jsonl' }, FIXTURES);
    const enc = encodeDataset(ds, tok, { max_length: 64, train_on_inputs: false });
    expect(enc.testItems!.map((i) => i.candidates.length)).toEqual([3, 2, 4]);
    expect(enc.train.map((e) => tok.decode(e.labels.filter((l) => l !== IGNORE_INDEX)))).toEqual([' blue', ' 4', ' Paris']);
  });
});

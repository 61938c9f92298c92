import { describe, expect, it } from 'vitest';
import {
  encodeCandidates, encodeContinuation, encodeForTraining, IGNORE_INDEX, middleCut, promptText, tokenizerTraits,
  type EncodeOptions,
} from '../../src/data/encode.ts';
import type { ClassificationExample, InstructionExample, MultipleChoiceExample } from '../../src/data/formats.ts';
import { ALPACA_NO_INPUT } from '../../src/data/template.ts';
import { BOS, charTokenizer, EOS, ids, storiesTokenizer } from './helpers.ts';

const tok = charTokenizer();
const cls = (text: string, label: string): ClassificationExample => ({ format: 'classification', text, label, fields: { text } });
const clsOpts: EncodeOptions = {
  format: 'classification', template: 'Review: {text}\nSentiment:', labelWords: { negative: ' bad', positive: ' good' },
  maxLength: 64, trainOnInputs: false,
};
/** The ids that carry loss, in order. */
const lossIds = (e: { labels: number[] }) => e.labels.filter((l) => l !== IGNORE_INDEX);

describe('encoding with exact loss masks', () => {
  it('classification: loss exactly on the label word after the prompt', () => {
    const [e] = encodeForTraining(cls('fun', 'positive'), tok, clsOpts);
    const prompt = [BOS, ...ids(tok, 'Review: fun\nSentiment:')];
    expect(e.inputIds).toEqual([...prompt, ...ids(tok, ' good')]);
    expect(e.labels).toEqual([...prompt.map(() => IGNORE_INDEX), ...ids(tok, ' good')]);
    // train_on_inputs: loss on the prompt too, never on BOS
    const [all] = encodeForTraining(cls('fun', 'positive'), tok, { ...clsOpts, trainOnInputs: true });
    expect(all.labels).toEqual([IGNORE_INDEX, ...all.inputIds.slice(1)]);
  });

  it('instruction: Alpaca prompt with or without input, loss on output + EOS', () => {
    const noInput: InstructionExample = { format: 'instruction', instruction: 'Say hi.', input: '', output: 'hi', fields: { instruction: 'Say hi.', input: '', output: 'hi' } };
    const opts: EncodeOptions = { format: 'instruction', template: null, labelWords: null, maxLength: 512, trainOnInputs: false };
    expect(promptText(noInput, null)).toBe(ALPACA_NO_INPUT.replace('{instruction}', 'Say hi.'));
    const [e] = encodeForTraining(noInput, tok, opts);
    expect(lossIds(e)).toEqual([...ids(tok, 'hi'), EOS]);
    expect(e.labels.slice(0, e.labels.length - 3).every((l) => l === IGNORE_INDEX)).toBe(true);
    const withInput: InstructionExample = { ...noInput, input: 'Bob', fields: { ...noInput.fields, input: 'Bob' } };
    expect(promptText(withInput, null)).toContain('paired with an input');
    expect(promptText(withInput, null)).toContain('### Input:\nBob\n\n### Response:\n');
    expect(promptText(noInput, null)).not.toContain('### Input:');
  });

  it('text: loss on every token but BOS; long texts become BOS-led windows', () => {
    const text = 'abcdefghij';
    const [e] = encodeForTraining({ format: 'text', text, fields: { text } }, tok, { ...clsOpts, format: 'text', maxLength: 64 });
    expect(e.inputIds).toEqual([BOS, ...ids(tok, text)]);
    expect(e.labels).toEqual([IGNORE_INDEX, ...ids(tok, text)]);
    const windows = encodeForTraining({ format: 'text', text, fields: { text } }, tok, { ...clsOpts, format: 'text', maxLength: 5 });
    expect(windows.map((w) => tok.decode(w.inputIds))).toEqual(['abcd', 'efgh', 'ij']);
    expect(windows.every((w) => w.inputIds[0] === BOS && w.inputIds.length <= 5)).toBe(true);
  });

  it('multiple choice: candidates are " " + each choice; loss only on the candidate', () => {
    const ex: MultipleChoiceExample = { format: 'multiple_choice', question: 'Sky?', choices: ['green', 'blue'], answer: 1, fields: { question: 'Sky?' } };
    const opts: EncodeOptions = { format: 'multiple_choice', template: null, labelWords: null, maxLength: 64, trainOnInputs: true };
    const item = encodeCandidates(ex, tok, opts);
    expect(item.answer).toBe(1);
    expect(item.candidates.map(lossIds)).toEqual([ids(tok, ' green'), ids(tok, ' blue')]);
    expect(tok.decode(item.candidates[1].inputIds)).toBe('Question: Sky?\nAnswer: blue');
    const [train] = encodeForTraining(ex, tok, { ...opts, trainOnInputs: false });
    expect(train).toEqual(item.candidates[1]);
    // the {choices} slot lists them with letters
    expect(promptText(ex, '{question}\n{choices}\nAnswer:')).toBe('Sky?\nA. green\nB. blue\nAnswer:');
  });

  it('classification candidates follow label order; the training sequence is the answer candidate', () => {
    const item = encodeCandidates(cls('dull', 'negative'), tok, clsOpts);
    expect(item.answer).toBe(0);
    expect(item.candidates.map(lossIds)).toEqual([ids(tok, ' bad'), ids(tok, ' good')]);
    expect(encodeForTraining(cls('dull', 'negative'), tok, clsOpts)[0]).toEqual(item.candidates[0]);
  });
});

describe('truncation keeps the response and cuts the prompt in the middle', () => {
  it('middleCut keeps the head and the tail', () => {
    expect(middleCut([1, 2, 3, 4, 5, 6, 7], 4)).toEqual([1, 2, 6, 7]);
    expect(middleCut([1, 2, 3, 4, 5, 6, 7], 5)).toEqual([1, 2, 3, 6, 7]);
    expect(middleCut([1, 2, 3], 5)).toEqual([1, 2, 3]);
  });

  it('a long classification prompt is cut to max_length with BOS, header, question and label word kept', () => {
    const long = 'x'.repeat(200);
    const [e] = encodeForTraining(cls(long, 'positive'), tok, { ...clsOpts, maxLength: 40 });
    expect(e.inputIds).toHaveLength(40);
    const text = tok.decode(e.inputIds);
    // prompt budget 40 - 5 (" good") = 35: first 18 and last 17 prompt tokens
    expect(e.inputIds[0]).toBe(BOS);
    expect(text).toBe(`Review: ${'x'.repeat(9)}${'x'.repeat(6)}\nSentiment: good`);
    expect(lossIds(e)).toEqual(ids(tok, ' good'));
    expect(e.labels.slice(35).every((l) => l !== IGNORE_INDEX)).toBe(true);
  });

  it('a response longer than the budget keeps its start and leaves the prompt ceil(max/4) tokens', () => {
    const out = 'y'.repeat(100);
    const ex: InstructionExample = { format: 'instruction', instruction: 'Repeat.', input: '', output: out, fields: { instruction: 'Repeat.', input: '', output: out } };
    const [e] = encodeForTraining(ex, tok, { format: 'instruction', template: '{instruction}\n', labelWords: null, maxLength: 20, trainOnInputs: false });
    expect(e.inputIds).toHaveLength(20);
    expect(e.labels.filter((l) => l === IGNORE_INDEX)).toHaveLength(5); // ceil(20/4) prompt tokens
    expect(lossIds(e)).toEqual(ids(tok, 'y'.repeat(15)));
  });

  it('candidates share one prompt cut, sized by the longest candidate', () => {
    const item = encodeCandidates(cls('z'.repeat(100), 'positive'), tok, { ...clsOpts, labelWords: { negative: ' no', positive: ' absolutely' }, maxLength: 30 });
    const prompts = item.candidates.map((c) => c.inputIds.slice(0, c.labels.findIndex((l) => l !== IGNORE_INDEX)));
    expect(prompts[0]).toEqual(prompts[1]);
    expect(Math.max(...item.candidates.map((c) => c.inputIds.length))).toBe(30);
  });
});

describe('tokenizer behaviour at sequence starts and continuations', () => {
  it('detects BOS and the sentencepiece dummy prefix', () => {
    expect(tokenizerTraits(charTokenizer())).toEqual({ specialPrefix: [BOS], dummyPrefix: false });
    expect(tokenizerTraits(charTokenizer({ bos: false }))).toEqual({ specialPrefix: [], dummyPrefix: false });
    const sp = charTokenizer({ dummyPrefix: true });
    expect(tokenizerTraits(sp)).toEqual({ specialPrefix: [BOS], dummyPrefix: true });
    // " good" after a prompt is "▁good", not "▁▁good"
    expect(encodeContinuation(sp, ' good')).toEqual(ids(sp, 'good'));
  });

  it('real stories260K tokenizer: BOS first, label word without a doubled "▁", mask exact', () => {
    const st = storiesTokenizer();
    expect(tokenizerTraits(st)).toEqual({ specialPrefix: [1], dummyPrefix: true });
    const pos = encodeContinuation(st, ' positive');
    expect(pos).toEqual([282, 414, 419, 275, 417, 360]); // ▁p o s it i ve
    const [e] = encodeForTraining(cls('I loved it.', 'positive'), st, { ...clsOpts, labelWords: { negative: ' negative', positive: ' positive' } });
    expect(e.inputIds[0]).toBe(1);
    expect(e.inputIds.slice(-pos.length)).toEqual(pos);
    expect(lossIds(e)).toEqual(pos);
    expect(st.decode(e.inputIds, true)).toBe('Review: I loved it.\nSentiment: positive');
  });
});

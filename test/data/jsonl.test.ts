import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HiloError } from '../../src/errors.ts';
import { MAX_SHOWN, parseJsonl, readJsonl, throwIfProblems } from '../../src/data/jsonl.ts';
import type { RecordRules } from '../../src/data/formats.ts';
import { FIXTURES } from './helpers.ts';

const cls: RecordRules = { format: 'classification', labels: ['negative', 'positive'], extraSlots: [] };

describe('JSONL reading', () => {
  it('reports every malformed line as file:line: reason', () => {
    const file = path.join(FIXTURES, 'cls-bad.jsonl');
    const { examples, problems } = readJsonl(file, cls);
    expect(examples.map((e) => e.format === 'classification' && e.text)).toEqual(['fine', 'also fine']);
    expect(problems).toHaveLength(6);
    expect(problems[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: bad JSON`));
    expect(problems.slice(1)).toEqual([
      `${file}:3: missing field "text"`,
      `${file}:4: field "text" must be a string, got number 42`,
      `${file}:5: unknown label "neutral"; allowed: "negative" | "positive"`,
      `${file}:6: expected a JSON object, got an array`,
      `${file}:7: field "label" must be a string or an integer, got number 1.5`,
    ]);
  });

  it('multiple choice: too few choices, answer out of range, wrong types', () => {
    const file = path.join(FIXTURES, 'mc-bad.jsonl');
    const { examples, problems } = readJsonl(file, { format: 'multiple_choice', labels: null, extraSlots: [] });
    expect(examples).toHaveLength(0);
    expect(problems).toEqual([
      `${file}:1: field "choices" needs at least 2 choices, got 1`,
      `${file}:2: field "answer" 5 is out of range for 2 choices`,
      `${file}:3: field "choices" must be an array of strings, got string "a,b"`,
      `${file}:4: field "answer" must be a choice index or letter, got string "AB"`,
    ]);
  });

  it('reads each format; letters and integer labels are normalised', () => {
    const mc = readJsonl(path.join(FIXTURES, 'mc.jsonl'), { format: 'multiple_choice', labels: null, extraSlots: [] });
    expect(mc.problems).toEqual([]);
    expect(mc.examples.map((e) => e.format === 'multiple_choice' && e.answer)).toEqual([1, 1, 0]);
    const ins = readJsonl(path.join(FIXTURES, 'instr.jsonl'), { format: 'instruction', labels: null, extraSlots: [] });
    expect(ins.examples.map((e) => e.format === 'instruction' && e.input)).toEqual(['', '2 and 3', '']);
    const num = parseJsonl('{"text":"a","label":1}\n', 'x.jsonl', { format: 'classification', labels: ['0', '1'], extraSlots: [] });
    expect(num.examples[0]).toMatchObject({ label: '1' });
    const bomCrlf = parseJsonl('\uFEFF{"text":"a"}\r\n{"text":"b"}\r\n', 'w.jsonl', { format: 'text', labels: null, extraSlots: [] });
    expect(bomCrlf).toEqual({ examples: [{ format: 'text', text: 'a', fields: { text: 'a' } }, { format: 'text', text: 'b', fields: { text: 'b' } }], problems: [] });
  });

  it('template slots beyond the format must be in every record', () => {
    const r = parseJsonl('{"text":"a","label":"x","title":"T"}\n{"text":"b","label":"x"}\n', 'f.jsonl', { format: 'classification', labels: null, extraSlots: ['title'] });
    expect(r.problems).toEqual(['f.jsonl:2: missing field "title" (used by the template)']);
  });

  it('a missing or empty file is a problem too', () => {
    expect(readJsonl('/nonexistent/x.jsonl', cls).problems).toEqual(['/nonexistent/x.jsonl: cannot read (ENOENT)']);
    expect(parseJsonl('\n\n', 'e.jsonl', cls).problems).toEqual(['e.jsonl: no records (the file is empty)']);
  });

  it('one error lists the first problems and counts the rest', () => {
    const { problems } = readJsonl(path.join(FIXTURES, 'many-bad.jsonl'), { format: 'text', labels: null, extraSlots: [] });
    expect(problems).toHaveLength(30);
    let err: unknown;
    try { throwIfProblems(problems, 'recipe.data'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(HiloError);
    const lines = (err as Error).message.split('\n');
    expect(lines[0]).toBe('recipe.data: 30 problems; fix them before training:');
    expect(lines).toHaveLength(1 + MAX_SHOWN + 1);
    expect(lines.at(-1)).toBe(`  ... and ${30 - MAX_SHOWN} more`);
    expect(() => throwIfProblems([])).not.toThrow();
  });
});

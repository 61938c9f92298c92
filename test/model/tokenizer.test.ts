import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer, normaliseMerges } from '../../src/model/tokenizer.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const stories = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-tok-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('loadTokenizer', () => {
  it('accepts merges as "a b" strings or as pairs, with the same ids', () => {
    const json = JSON.parse(fs.readFileSync(path.join(stories, 'tokenizer.json'), 'utf8'));
    expect(typeof json.model.merges[0]).toBe('string');
    const dir = path.join(tmp, 'pairs');
    fs.mkdirSync(dir);
    json.model.merges = json.model.merges.map((m: string) => m.split(' '));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    fs.copyFileSync(path.join(stories, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    const text = 'Once upon a time, Lily saw a big dog. "Hi!" she said.';
    const want = loadTokenizer(stories).encode(text);
    expect(want.length).toBeGreaterThan(10);
    expect(loadTokenizer(dir).encode(text)).toEqual(want);
  });

  it.each([
    [['a b', 'ab c'], [['a', 'b'], ['ab', 'c']]],
    [[['▁', 't'], ['h', 'e']], [['▁', 't'], ['h', 'e']]],
  ])('normaliseMerges(%j)', (input, want) => expect(normaliseMerges(input)).toEqual(want));

  it('refuses a merge that is neither', () => {
    expect(() => normaliseMerges(['ab'])).toThrow('tokenizer.json model.merges[0]: got "ab"');
  });

  it('a directory without tokenizer.json loads, and text use says what is missing', () => {
    const tok = loadTokenizer(tmp);
    expect(tok.available).toBe(false);
    expect(() => tok.encode('hi')).toThrow(`${tmp} has no tokenizer.json: --text needs tokenizer.json`);
    expect(() => tok.decode([1])).toThrow(/pass token ids instead, e.g. --ids 1,2,3/);
  });

  it('encode without special tokens drops BOS; decode can keep specials', () => {
    const tok = loadTokenizer(stories);
    expect(tok.encode('Once upon a time', false)).toEqual([403, 407, 261, 378]);
    expect(tok.decode([1, 403], false)).toContain('<s>');
    expect(tok.tokenText(403)).toBe('▁Once');
  });
});

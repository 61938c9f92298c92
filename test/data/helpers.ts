/** Deterministic test tokenizers: one id per character, so a token position is a character position. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import type { TextTokenizer } from '../../src/model/types.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

export const BOS = 1;
export const EOS = 2;

/**
 * Char-level tokenizer: id = code point + 3 (0..2 reserved). With `dummyPrefix` it behaves like a
 * legacy sentencepiece tokenizer: it prepends "▁" and maps spaces to "▁" before encoding.
 */
export function charTokenizer(opts: { bos?: boolean; eos?: boolean; dummyPrefix?: boolean } = {}): TextTokenizer {
  const { bos = true, eos = true, dummyPrefix = false } = opts;
  return {
    vocabSize: 0x2600,
    bosId: bos ? BOS : null,
    eosId: eos ? EOS : null,
    padId: null,
    encode(text: string, addSpecialTokens = true): number[] {
      const t = dummyPrefix ? `▁${text.replace(/ /g, '▁')}` : text;
      const ids = [...t].map((c) => c.codePointAt(0)! + 3);
      return addSpecialTokens && bos ? [BOS, ...ids] : ids;
    },
    decode(ids: number[]): string {
      return ids.filter((i) => i > 2).map((i) => String.fromCodePoint(i - 3)).join('');
    },
  };
}

export const STORIES = STORIES260K;
export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/data');

/** The real stories260K tokenizer (legacy Llama sentencepiece BPE, 512 ids), as the model stage loads it. */
export function storiesTokenizer(dir = STORIES): TextTokenizer {
  return loadTokenizer(dir);
}

export const ids = (tok: TextTokenizer, s: string) => tok.encode(s, false);

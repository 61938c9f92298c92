/**
 * Trains the embedded base model's byte-level BPE tokenizer (GPT-2 style) on the base corpus
 * and writes it as a Hugging Face tokenizer.json (+ tokenizer_config.json,
 * special_tokens_map.json), loadable by @huggingface/tokenizers and transformers.
 *
 *   npx tsx scripts/train-tokenizer.ts models/hilo-base [vocab=4096] [corpus-ids.bin]
 *
 * With a third argument it also writes the whole corpus as uint16 token ids (documents joined
 * by <|bos|>), which scripts/pretrain-base.py trains on.
 * Deterministic: merges are chosen by highest pair count, ties broken by the pair's string.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { baseCorpus } from './base-corpus.ts';

// GPT-2's pre-tokenizer split (the ByteLevel pre-tokenizer with use_regex).
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible byte -> printable unicode map. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map: string[] = new Array(256);
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

export const SPECIAL = ['<|pad|>', '<|bos|>', '<|eos|>'];

export function trainBpe(texts: string[], vocabSize: number): { vocab: Map<string, number>; merges: [string, string][] } {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(SPLIT)) {
      const w = Array.from(enc.encode(m[0]), (b) => b2u[b]).join('');
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  const words = [...wordCounts.entries()].map(([w, c]) => ({ symbols: Array.from(w), count: c }));
  const vocab = new Map<string, number>();
  for (const s of SPECIAL) vocab.set(s, vocab.size);
  for (const ch of [...b2u].sort()) vocab.set(ch, vocab.size);
  // Pair counts and, per pair, the words that contain it; updated incrementally per merge.
  const pairCount = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const key = (a: string, b: string) => `${a}\u0000${b}`;
  const addWord = (wi: number, sign: number) => {
    const { symbols, count } = words[wi];
    for (let i = 0; i + 1 < symbols.length; i++) {
      const k = key(symbols[i], symbols[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * count);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(wi);
      }
    }
  };
  words.forEach((_, wi) => addWord(wi, 1));
  const merges: [string, string][] = [];
  while (vocab.size < vocabSize) {
    let best = '';
    let bestCount = 0;
    for (const [k, c] of pairCount) {
      if (c > bestCount || (c === bestCount && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (bestCount < 2) break;
    const [a, b] = best.split('\u0000');
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const wi of [...(pairWords.get(best) ?? [])]) {
      const w = words[wi];
      addWord(wi, -1);
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(w.symbols[i]);
      }
      w.symbols = out;
      addWord(wi, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }
  return { vocab, merges };
}

export function tokenizerJson(vocab: Map<string, number>, merges: [string, string][]): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [1], tokens: ['<|bos|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(vocab), merges,
    },
  };
}

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? 'models/hilo-base';
  const vocabSize = Number(process.argv[3] ?? 4096);
  const docs = baseCorpus();
  const t0 = performance.now();
  const { vocab, merges } = trainBpe(docs.map((d) => d.text), vocabSize);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify(tokenizerJson(vocab, merges)));
  writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify({
    tokenizer_class: 'PreTrainedTokenizerFast', add_bos_token: true, add_eos_token: false,
    bos_token: '<|bos|>', eos_token: '<|eos|>', pad_token: '<|pad|>', model_max_length: 256,
    clean_up_tokenization_spaces: false,
  }, null, 2));
  writeFileSync(path.join(outDir, 'special_tokens_map.json'), JSON.stringify({
    bos_token: '<|bos|>', eos_token: '<|eos|>', pad_token: '<|pad|>',
  }, null, 2));
  const idsOut = process.argv[4];
  if (idsOut) {
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const tok = new Tokenizer(tokenizerJson(vocab, merges) as never, {});
    const ids: number[] = [];
    for (const d of docs) ids.push(...tok.encode(d.text).ids); // each document starts with <|bos|>
    writeFileSync(idsOut, Buffer.from(Uint16Array.from(ids).buffer));
    console.log(`${ids.length} corpus tokens -> ${idsOut}`);
  }
  console.log(`${vocab.size} tokens, ${merges.length} merges from ${docs.length} documents in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${outDir}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

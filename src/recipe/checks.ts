/**
 * Checks that involve more than one field, or the filesystem. They run on the parsed recipe
 * even when the schema rejected some fields (those fall back to their defaults), skipping each
 * rule that reads a rejected field, so one typo does not hide the other problems.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { showValue } from '../errors.ts';
import { problem, type Problem } from './problems.ts';
import { FORMATS } from '../data/formats.ts';
import { TASKS } from '../data/tasks/index.ts';
import type { ParsedRecipe } from './schema.ts';

/** A check and the fields it reads; it is skipped when one of them is itself invalid. */
interface Rule {
  reads: string[];
  check: (r: ParsedRecipe, baseDir: string) => Problem[];
}

/** A path that must exist: a file or a directory. */
function mustExist(field: string, given: string | null, baseDir: string, kind: 'file' | 'directory'): Problem[] {
  if (given === null) return [];
  const abs = path.resolve(baseDir, given);
  const ok = existsSync(abs) && (kind === 'file' ? statSync(abs).isFile() : statSync(abs).isDirectory());
  return ok ? [] : [problem(field, given, `an existing ${kind} (looked for ${abs})`)];
}

const when = (cond: boolean, p: () => Problem): Problem[] => (cond ? [p()] : []);
const DATA_PATHS = ['train_path', 'eval_path', 'test_path'] as const;
const LABEL_WORDS_EXAMPLE = 'a map from each label to the word the model says for it, e.g. {positive: " good", negative: " bad"}';

const RULES: Rule[] = [
  {
    reads: ['model.path'],
    check: ({ model }, dir) => when(!existsSync(path.resolve(dir, model.path, 'config.json')), () => problem('recipe.model.path', model.path,
      `an HF model directory with config.json (looked in ${path.resolve(dir, model.path)})`)),
  },
  {
    reads: ['data.task', 'data.train_path'],
    check: ({ data }) => when(data.task === null && data.train_path === null, () => problem('recipe.data.task', null,
      `${Object.keys(TASKS).map(showValue).join(' | ')}, or your own JSONL in recipe.data.train_path`)),
  },
  ...DATA_PATHS.map((key): Rule => ({
    reads: ['data.task', `data.${key}`],
    check: ({ data }) => when(data.task !== null && data[key] !== null, () => problem(`recipe.data.${key}`, data[key],
      `null when recipe.data.task is set (task ${data.task} brings its own splits)`)),
  })),
  {
    reads: ['data.task', 'data.format'],
    check: ({ data }) => when(data.task !== null && data.format !== null && data.format !== TASKS[data.task].format, () =>
      problem('recipe.data.format', data.format, `${showValue(TASKS[data.task!].format)} (the format of task ${data.task})`)),
  },
  {
    reads: ['data.task', 'data.format', 'data.train_path'],
    check: ({ data }) => when(data.task === null && data.train_path !== null && data.format === null, () =>
      problem('recipe.data.format', null, `${FORMATS.map(showValue).join(' | ')} (required with recipe.data.train_path)`)),
  },
  {
    reads: ['data.task', 'data.format', 'data.label_words'],
    check: ({ data }) => when(data.format === 'classification' && data.label_words === null && !(data.task && TASKS[data.task].labelWords), () =>
      problem('recipe.data.label_words', null, `${LABEL_WORDS_EXAMPLE} (required for classification without a task)`)),
  },
  {
    reads: ['data.task', 'data.label_words'],
    check: ({ data }) => {
      const want = data.task ? Object.keys(TASKS[data.task].labelWords ?? {}) : [];
      const given = Object.keys(data.label_words ?? {});
      return when(want.length > 0 && given.length > 0 && [...given].sort().join('\n') !== [...want].sort().join('\n'), () =>
        problem('recipe.data.label_words', data.label_words, `one word for each label of task ${data.task}: ${want.map(showValue).join(', ')}`));
    },
  },
  {
    reads: ['data.format', 'data.label_words'],
    check: ({ data }) => when(data.label_words !== null && data.format !== null && data.format !== 'classification', () =>
      problem('recipe.data.label_words', data.label_words, `null (label words belong to format classification, not ${data.format})`)),
  },
  {
    reads: ['data.label_words'],
    check: ({ data }) => when(data.label_words !== null && Object.keys(data.label_words).length < 2, () =>
      problem('recipe.data.label_words', data.label_words, `${LABEL_WORDS_EXAMPLE}, with at least two labels`)),
  },
  ...DATA_PATHS.map((key): Rule => ({
    reads: [`data.${key}`],
    check: ({ data }, dir) => mustExist(`recipe.data.${key}`, data[key], dir, 'file'),
  })),
  {
    reads: ['adapter.method', 'adapter.plan_path'],
    check: ({ adapter: a }) => [
      ...when(a.method === 'manual' && a.plan_path === null, () =>
        problem('recipe.adapter.plan_path', null, 'a plan.json path (required by method manual; `hilo plan` writes one)')),
      ...when(a.method !== 'manual' && a.plan_path !== null, () =>
        problem('recipe.adapter.plan_path', a.plan_path, `null (a plan file is read only by method manual, not ${a.method})`)),
    ],
  },
  {
    reads: ['adapter.budget'],
    check: ({ adapter: { budget } }) => when(budget !== null && Object.values(budget).filter((v) => v !== undefined).length !== 1, () =>
      problem('recipe.adapter.budget', budget, 'exactly one of {trainable: N} | {percent: P} | {active: N}')),
  },
  {
    reads: ['adapter.method', 'adapter.budget'],
    check: ({ adapter: a }) => when(a.budget !== null && (a.method === 'none' || a.method === 'manual'), () =>
      problem('recipe.adapter.budget', a.budget, `null (method ${a.method} has no sizes to fit to a budget)`)),
  },
  {
    reads: ['adapter.rank.min', 'adapter.rank.max'],
    check: ({ adapter: { rank } }) => when(rank.min > rank.max, () =>
      problem('recipe.adapter.rank.min', rank.min, `an integer <= recipe.adapter.rank.max (${rank.max})`)),
  },
  { reads: ['adapter.plan_path'], check: ({ adapter: a }, dir) => mustExist('recipe.adapter.plan_path', a.plan_path, dir, 'file') },
  { reads: ['adapter.probe_path'], check: ({ adapter: a }, dir) => mustExist('recipe.adapter.probe_path', a.probe_path, dir, 'file') },
  { reads: ['adapter.init_from'], check: ({ adapter: a }, dir) => mustExist('recipe.adapter.init_from', a.init_from, dir, 'directory') },
  {
    reads: ['adapter.method', 'adapter.init_from'],
    check: ({ adapter: a }) => when(a.method === 'none' && a.init_from !== null, () =>
      problem('recipe.adapter.init_from', a.init_from, 'null when adapter.method is "none" (full training has no adapter to start from)')),
  },
  {
    reads: ['train.warmup_steps'],
    check: ({ train: t }) => when(t.warmup_steps >= 1 && !Number.isInteger(t.warmup_steps), () =>
      problem('recipe.train.warmup_steps', t.warmup_steps, 'a whole number of steps, or a fraction < 1 of the total')),
  },
  {
    reads: ['train.resume'],
    check: ({ train: t }, dir) => (typeof t.resume === 'string' ? mustExist('recipe.train.resume', t.resume, dir, 'directory') : []),
  },
];

/** Whether one dotted path lies inside the other (a bad section spoils its fields and vice versa). */
const overlaps = (a: string, b: string): boolean => a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);

/**
 * The cross-field and file problems of a recipe. `invalid` lists the dotted fields the schema
 * rejected (they hold defaults in `r`); rules that read them are skipped.
 */
export function crossChecks(r: ParsedRecipe, baseDir: string, invalid: readonly string[] = []): Problem[] {
  return RULES.filter((rule) => !rule.reads.some((f) => invalid.some((bad) => overlaps(f, bad))))
    .flatMap((rule) => rule.check(r, baseDir));
}

/**
 * The recipe's `data:` section -> checked examples (loadDataset) -> token ids (encodeDataset).
 * Built-in tasks and user JSONL files end in the same Dataset; nothing here touches tfjs.
 *
 * Eval: a task's own eval split or eval_path if there is one, else round(eval_fraction * n) of
 * train (stratified by label for classification), drawn with the run's seed. max_train_examples
 * and max_eval_examples keep a seeded sample; the test split is never capped, so results stay
 * comparable across runs.
 */
import { resolve } from 'node:path';
import { fieldError, HiloError } from '../errors.ts';
import type { TextTokenizer } from '../model/types.ts';
import { encodeCandidates, encodeForTraining, type EncodedExample, type EncodeOptions, type ScoringItem } from './encode.ts';
import type { ClassificationExample, Example, Format, RecordRules } from './formats.ts';
import { readJsonl, throwIfProblems } from './jsonl.ts';
import { mixSeed, SEED_TAG, seededShuffle } from '../rng.ts';
import { randomSplit, stratifiedSplit } from './split.ts';
import { getTask } from './tasks/index.ts';
import type { Metric } from './tasks/types.ts';
import { templateSlots } from './template.ts';

/** The fields of the recipe's `data:` section this module reads (Recipe['data'] fits it). */
export interface DataRecipe {
  task: string | null;
  train_path: string | null;
  eval_path: string | null;
  test_path: string | null;
  format: Format | null;
  template: string | null;
  label_words: Record<string, string> | null;
  max_length: number;
  train_on_inputs: boolean;
  eval_fraction: number;
  max_train_examples: number | null;
  max_eval_examples: number | null;
}

export interface Dataset {
  /** The task name, or the training file's path. */
  name: string;
  format: Format;
  metric: Metric;
  /** null = the format's default template. */
  template: string | null;
  /** classification: label -> label word, in candidate order; null otherwise. */
  labelWords: Record<string, string> | null;
  train: Example[];
  eval: Example[];
  test: Example[];
}

/** Fields each format always provides to a template (other slots must be in every record). */
const FORMAT_FIELDS: Record<Format, string[]> = {
  text: ['text'],
  instruction: ['instruction', 'input', 'output'],
  classification: ['text'],
  multiple_choice: ['question', 'choices'],
};

export function loadDataset(data: DataRecipe, baseDir: string, seed = 0): Dataset {
  const ds = data.task !== null ? taskDataset(data) : fileDataset(data, baseDir);
  let { train, eval: evalSet } = ds;
  if (ds.evalFromTrain && data.eval_fraction > 0) {
    const carveSeed = mixSeed(seed, SEED_TAG.evalCarve);
    const split = ds.format === 'classification'
      ? stratifiedSplit(train as ClassificationExample[], (x) => x.label, data.eval_fraction, carveSeed)
      : randomSplit(train, data.eval_fraction, carveSeed);
    train = split.kept;
    evalSet = split.heldOut;
  }
  if (train.length === 0) throw new HiloError(`recipe.data: no training examples in ${ds.name}`);
  return {
    name: ds.name, format: ds.format, metric: ds.metric, template: ds.template, labelWords: ds.labelWords,
    // Fresh arrays: built-in tasks keep their examples cached for the process (never mutate examples).
    train: capSample(train, data.max_train_examples, mixSeed(seed, SEED_TAG.sample, 1)).slice(),
    eval: capSample(evalSet, data.max_eval_examples, mixSeed(seed, SEED_TAG.sample, 2)).slice(),
    test: ds.test.slice(),
  };
}

type Loaded = Dataset & { evalFromTrain: boolean };

function taskDataset(data: DataRecipe): Loaded {
  if (data.train_path !== null) throw fieldError('recipe.data.train_path', data.train_path, `null when data.task is set (task ${JSON.stringify(data.task)})`);
  const task = getTask(data.task!);
  if (data.format !== null && data.format !== task.format) throw fieldError('recipe.data.format', data.format, [task.format, null]);
  let labelWords = task.labelWords ?? null;
  if (data.label_words !== null) {
    const want = Object.keys(task.labelWords ?? {});
    const got = Object.keys(data.label_words);
    if (got.length !== want.length || want.some((l) => !(l in data.label_words!))) {
      throw fieldError('recipe.data.label_words', data.label_words, `one word for each of the task's labels ${want.map((l) => JSON.stringify(l)).join(', ')}`);
    }
    labelWords = Object.fromEntries(want.map((l) => [l, data.label_words![l]]));
  }
  const template = data.template ?? task.template ?? null;
  if (template !== null) checkTemplate(template, task.format, []);
  const splits = task.load();
  return {
    name: task.name, format: task.format, metric: task.metric, template, labelWords,
    train: splits.train, eval: splits.eval ?? [], test: splits.test, evalFromTrain: splits.eval === undefined,
  };
}

function fileDataset(data: DataRecipe, baseDir: string): Loaded {
  if (data.train_path === null) throw fieldError('recipe.data', 'neither task nor train_path', 'a built-in task or a train_path');
  if (data.format === null) throw fieldError('recipe.data.format', null, ['text', 'instruction', 'classification', 'multiple_choice']);
  const format = data.format;
  const extraSlots = data.template === null ? [] : checkTemplate(data.template, format, null);
  let labelWords = data.label_words;
  if (labelWords) checkLabelWords(labelWords);
  const rules = (labels: string[] | null): RecordRules => ({ format, labels, extraSlots });
  const path = (p: string | null) => (p === null ? null : resolve(baseDir, p));

  const train = readJsonl(path(data.train_path)!, rules(labelWords ? Object.keys(labelWords) : null));
  if (format === 'classification' && !labelWords) {
    // No label words given: the labels seen in training, sorted, each said as " <label>".
    const labels = [...new Set((train.examples as ClassificationExample[]).map((x) => x.label))].sort();
    labelWords = Object.fromEntries(labels.map((l) => [l, ` ${l}`]));
  }
  const labels = labelWords ? Object.keys(labelWords) : null;
  const evalFile = data.eval_path === null ? null : readJsonl(path(data.eval_path)!, rules(labels));
  const testFile = data.test_path === null ? null : readJsonl(path(data.test_path)!, rules(labels));
  throwIfProblems([...train.problems, ...(evalFile?.problems ?? []), ...(testFile?.problems ?? [])], 'recipe.data');
  return {
    name: data.train_path, format, metric: format === 'classification' || format === 'multiple_choice' ? 'accuracy' : 'perplexity',
    template: data.template, labelWords: format === 'classification' ? labelWords : null,
    train: train.examples, eval: evalFile?.examples ?? [], test: testFile?.examples ?? [], evalFromTrain: evalFile === null,
  };
}

/**
 * The template's slots beyond the format's own fields (each record must then provide them).
 * With `allowExtra` = [] (built-in tasks) every slot must be one of the format's fields.
 */
function checkTemplate(template: string, format: Format, allowExtra: string[] | null): string[] {
  const extra = templateSlots(template).filter((s) => !FORMAT_FIELDS[format].includes(s));
  if (allowExtra !== null && extra.some((s) => !allowExtra.includes(s))) {
    throw fieldError('recipe.data.template', template, `slots among ${FORMAT_FIELDS[format].map((f) => `{${f}}`).join(', ')}`);
  }
  return extra;
}

function checkLabelWords(words: Record<string, string>): void {
  const seen = new Map<string, string>();
  for (const [label, word] of Object.entries(words)) {
    if (word.trim() === '') throw fieldError(`recipe.data.label_words.${label}`, word, 'a non-empty word such as " positive"');
    if (seen.has(word)) throw fieldError(`recipe.data.label_words.${label}`, word, `a word different from label ${JSON.stringify(seen.get(word))}'s`);
    seen.set(word, label);
  }
}

function capSample<T>(items: T[], max: number | null, seed: number): T[] {
  if (max === null || items.length <= max) return items;
  const keep = new Set(seededShuffle(items.map((_, i) => i), seed).slice(0, max));
  return items.filter((_, i) => keep.has(i));
}

/** A dataset as token ids: sequences for loss, and candidates for accuracy where the format has them. */
export interface EncodedDataset {
  train: EncodedExample[];
  eval: EncodedExample[];
  test: EncodedExample[];
  /** classification / multiple_choice only, else null. */
  evalItems: ScoringItem[] | null;
  testItems: ScoringItem[] | null;
}

export function encodeOptions(ds: Dataset, data: Pick<DataRecipe, 'max_length' | 'train_on_inputs'>): EncodeOptions {
  return { format: ds.format, template: ds.template, labelWords: ds.labelWords, maxLength: data.max_length, trainOnInputs: data.train_on_inputs };
}

export function encodeDataset(ds: Dataset, tok: TextTokenizer, data: Pick<DataRecipe, 'max_length' | 'train_on_inputs'>): EncodedDataset {
  const opts = encodeOptions(ds, data);
  if (ds.labelWords) checkLabelTokens(ds.labelWords, tok);
  const seqs = (xs: Example[]) => xs.flatMap((x) => encodeForTraining(x, tok, opts));
  const scored = ds.format === 'classification' || ds.format === 'multiple_choice';
  const items = (xs: Example[]) => (scored ? xs.map((x) => encodeCandidates(x, tok, opts)) : null);
  return { train: seqs(ds.train), eval: seqs(ds.eval), test: seqs(ds.test), evalItems: items(ds.eval), testItems: items(ds.test) };
}

/** Label words that tokenize identically could never be told apart. */
function checkLabelTokens(words: Record<string, string>, tok: TextTokenizer): void {
  const seen = new Map<string, string>();
  for (const [label, word] of Object.entries(words)) {
    const key = tok.encode(word, false).join(',');
    if (seen.has(key)) {
      throw fieldError(`recipe.data.label_words.${label}`, word, `a word the tokenizer tells apart from label ${JSON.stringify(seen.get(key))}'s`);
    }
    seen.set(key, label);
  }
}

/** Sizes and label counts, for the run log and results files. */
export interface DatasetSummary {
  name: string;
  format: Format;
  metric: Metric;
  sizes: { train: number; eval: number; test: number };
  /** classification only: per split, label -> count in label order. */
  labels: { train: Record<string, number>; eval: Record<string, number>; test: Record<string, number> } | null;
}

export function summarizeDataset(ds: Dataset): DatasetSummary {
  const count = (xs: Example[]) => {
    const c: Record<string, number> = Object.fromEntries(Object.keys(ds.labelWords ?? {}).map((l) => [l, 0]));
    for (const x of xs) if (x.format === 'classification') c[x.label] += 1;
    return c;
  };
  return {
    name: ds.name, format: ds.format, metric: ds.metric,
    sizes: { train: ds.train.length, eval: ds.eval.length, test: ds.test.length },
    labels: ds.format === 'classification' ? { train: count(ds.train), eval: count(ds.eval), test: count(ds.test) } : null,
  };
}

/**
 * The grid file of `hilo compare`: one base recipe, and the lists whose product is the set of
 * runs (methods x budgets x tasks x seeds). Each field's type, default and doc live here, once.
 */
import { z } from 'zod';
import { FORMATS } from '../data/formats.ts';
import { TASKS } from '../data/tasks/index.ts';
import { GRID_METHODS, type Budget, type GridMethod } from '../names.ts';
import { RecipeError } from '../recipe/problems.ts';
import { budgetKeys } from '../recipe/schema.ts';

export { GRID_METHODS, type GridMethod };
export const METRICS = ['accuracy', 'perplexity'] as const;
export type MetricName = (typeof METRICS)[number];

const TASK_NAMES = Object.keys(TASKS) as [string, ...string[]];
const path = () => z.string().min(1).meta({ allowed: "a path (relative to the grid file's folder)", isPath: true });
const optionalPath = (doc: string) => path().nullable().default(null).describe(doc);
/** Names become folder names: letters, digits, dot, dash, underscore. */
const slug = z.string().regex(/^[A-Za-z0-9][\w.-]*$/).meta({ allowed: 'a name of letters, digits, ".", "-", "_" (it names a folder)' });

/** Recipe keys (dotted, as on the command line) to values, applied as `key=value` overrides. */
const recipeOverrides = z.record(z.string().regex(/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/), z.unknown())
  .meta({ allowed: 'a map of dotted recipe keys to values, e.g. {train.max_steps: 100, adapter.top_k: 1}' });

const budget = budgetKeys.refine((b) => Object.keys(b).length === 1).nullable()
  .meta({ allowed: 'exactly one of {trainable: N} | {percent: P} | {active: N}, or null (the method\'s own sizes)' });
export type GridBudget = Budget | null;

const userTask = z.strictObject({
  name: slug.describe('What the task is called in tables, plots and run folders.'),
  train_path: path().describe('Training data, JSONL in `format`.'),
  eval_path: optionalPath('Eval JSONL; null = carved from train_path by the recipe\'s data.eval_fraction.'),
  test_path: optionalPath('Test JSONL the comparison scores; null = the eval split is scored instead.'),
  format: z.enum(FORMATS).describe('Record format: text | instruction | classification | multiple_choice.'),
  label_words: z.record(z.string(), z.string().min(1)).nullable().default(null).describe(
    'classification: the word the model says for each label, e.g. {positive: " good", negative: " bad"}.'),
  template: z.string().nullable().default(null).describe('Prompt template with {field} slots; null = the format\'s default.'),
  metric: z.enum(METRICS).nullable().default(null).describe(
    'What the table and plots show; null = accuracy for classification and multiple_choice, perplexity for text and instruction.'),
}).describe('Your own data as one task of the grid.');
export type UserTask = z.infer<typeof userTask>;

export const gridSchema = z.strictObject({
  recipe: path().describe('The base recipe every run starts from (model, data settings, adapter defaults, schedule).'),
  output_dir: optionalPath(
    'Where runs/<task>/<method>/<budget>/seed<k> and the summary go; null = runs/<grid file stem> under the current directory.'),
  methods: z.array(z.enum(GRID_METHODS)).min(1).describe('Allocation methods to compare, each run under every budget.'),
  budgets: z.array(budget).min(1).default([null]).describe(
    'Parameter budgets each method is fitted to: {trainable: N}, {percent: P} of the base model, {active: N}, or null.'),
  tasks: z.array(z.union([z.enum(TASK_NAMES), userTask])).min(1).describe(
    `Tasks: built-in names (${TASK_NAMES.join(', ')}) or blocks naming your own JSONL files.`),
  seeds: z.array(z.number().int().min(0)).min(1).default([0]).describe('Seeds; each cell runs once per seed and the table shows mean ± std.'),
  overrides: recipeOverrides.default({}).describe(
    'Recipe keys set for every run, e.g. {train.max_steps: 100}; per-method overrides, then command-line ones, then the grid\'s axes apply after.'),
  method_overrides: z.partialRecord(z.enum(GRID_METHODS), recipeOverrides).default({}).describe(
    'Recipe keys set for one method only, e.g. {mola: {adapter.experts.pattern: "8642"}}.'),
}).describe('A hilo compare grid.');

export type ParsedGrid = z.infer<typeof gridSchema>;

/** Every problem of a grid file, thrown by loadGrid (same shape and message as a recipe's). */
export class GridError extends RecipeError {
  constructor(source: string, problems: ConstructorParameters<typeof RecipeError>[1]) {
    super(source, problems);
    this.name = 'GridError';
  }
}

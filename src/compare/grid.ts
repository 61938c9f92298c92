/**
 * Loading a grid: read the YAML, check it against the schema (every problem at once, each as
 * `grid.field: got VALUE; allowed: ...`), then expand it into cells, one training run each, and
 * check every cell's recipe loads, so a typo fails before hours of training instead of in cell 37.
 * Never imports tfjs.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { fieldError, HiloError, showValue } from '../errors.ts';
import { TASKS } from '../data/tasks/index.ts';
import { allowedText, isPathField, keysOf, listFields, schemaAt } from '../recipe/describe.ts';
import { loadRecipe } from '../recipe/load.ts';
import { problem, RecipeError, type Problem } from '../recipe/problems.ts';
import { canonicalKey, isMap } from '../recipe/raw.ts';
import { GridError, gridSchema, type GridBudget, type GridMethod, type MetricName, type ParsedGrid, type UserTask } from './schema.ts';

export interface Cell {
  /** Position in the grid, 0-based; cells run in this order. */
  index: number;
  task: string;
  metric: MetricName;
  method: GridMethod;
  budget: GridBudget;
  /** The budget as a folder name: trainable-20000, percent-5, active-8000, none. */
  budgetLabel: string;
  seed: number;
  /** task/method/budget/seed<k>, the run's folder under <output_dir>/runs. */
  id: string;
  runDir: string;
  /** `key=value` recipe overrides that turn the base recipe into this cell's recipe. */
  overrides: string[];
}

export interface Grid {
  file: string;
  /** The grid file's stem, for titles. */
  name: string;
  recipe: string;
  outputDir: string;
  methods: GridMethod[];
  budgets: GridBudget[];
  tasks: string[];
  seeds: number[];
  cells: Cell[];
}

const fieldName = (keys: ReadonlyArray<PropertyKey>) => ['grid', ...keys.map(String)].join('.');

/** The value at a path of map keys and list indices (undefined when absent). */
function getAt(value: unknown, keys: ReadonlyArray<PropertyKey>): unknown {
  let v = value;
  for (const k of keys) {
    if (Array.isArray(v)) v = v[Number(k)];
    else if (isMap(v)) v = v[String(k)];
    else return undefined;
  }
  return v;
}

/** Dotted recipe keys holding paths: their relative values are taken from the grid file's folder. */
const RECIPE_PATH_KEYS = new Set(listFields().filter((f) => !f.isSection && isPathField(f.schema)).map((f) => f.path));

export function budgetLabel(b: GridBudget): string {
  if (!b) return 'none';
  const [key, value] = Object.entries(b)[0];
  return `${key}-${value}`;
}

/** The text of a `key=VALUE` override for a YAML value; relative paths made absolute from `dir`. */
export function overrideArg(key: string, value: unknown, dir: string): string {
  const canonical = canonicalKey(key);
  const v = typeof value === 'string' && RECIPE_PATH_KEYS.has(canonical) ? path.resolve(dir, value) : value;
  // JSON is YAML flow syntax, and a quoted string stays a string whatever the field.
  return `${key}=${JSON.stringify(v)}`;
}

function taskOverrides(task: string | UserTask, dir: string): string[] {
  if (typeof task === 'string') {
    const reset = ['train_path', 'eval_path', 'test_path', 'format', 'label_words', 'template'].map((k) => `data.${k}=null`);
    return [`data.task=${task}`, ...reset];
  }
  const { name: _name, metric: _metric, ...data } = task;
  return ['data.task=null', ...Object.entries(data).map(([k, v]) => overrideArg(`data.${k}`, v, dir))];
}

function metricOf(task: string | UserTask): MetricName {
  if (typeof task === 'string') return TASKS[task].metric;
  return task.metric ?? (task.format === 'text' || task.format === 'instruction' ? 'perplexity' : 'accuracy');
}

/**
 * The cells of a parsed grid, in run order: task, then method, then budget, then seed, so the
 * first finished cells already give one task's picture. `cliOverrides` sit between the grid's
 * overrides and its axes (which always win: they are what the grid compares).
 */
export function expandCells(grid: ParsedGrid, dir: string, outputDir: string, cliOverrides: readonly string[] = []): Cell[] {
  const common = Object.entries(grid.overrides).map(([k, v]) => overrideArg(k, v, dir));
  const cells: Cell[] = [];
  for (const task of grid.tasks) {
    const taskName = typeof task === 'string' ? task : task.name;
    for (const method of grid.methods) {
      const perMethod = Object.entries(grid.method_overrides[method] ?? {}).map(([k, v]) => overrideArg(k, v, dir));
      for (const budget of grid.budgets) {
        for (const seed of grid.seeds) {
          const label = budgetLabel(budget);
          const id = `${taskName}/${method}/${label}/seed${seed}`;
          const runDir = path.join(outputDir, 'runs', taskName, method, label, `seed${seed}`);
          cells.push({
            index: cells.length, task: taskName, metric: metricOf(task), method, budget, budgetLabel: label, seed, id, runDir,
            overrides: [
              ...common, ...perMethod, ...cliOverrides, ...taskOverrides(task, dir),
              `adapter.method=${method}`, `adapter.budget=${JSON.stringify(budget)}`, `seed=${seed}`,
              `output_dir=${JSON.stringify(runDir)}`, `wandb.name=${JSON.stringify(id)}`,
            ],
          });
        }
      }
    }
  }
  return cells;
}

/** zod issues as problems; a union (tasks entries) reports the issues of the branch the value was meant for. */
function issueProblems(issue: z.core.$ZodIssue, raw: unknown, prefix: PropertyKey[] = []): Problem[] {
  const keys = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    const known = keysOf(schemaAt(keys.map(String), gridSchema) ?? gridSchema) ?? [];
    return issue.keys.map((k) => problem(fieldName([...keys, k]), getAt(raw, [...keys, k]), `known keys only (${fieldName(keys)} keys: ${known.join(', ')})`));
  }
  if (issue.code === 'invalid_union' && isMap(getAt(raw, keys))) {
    const branch = issue.errors.find((errs) => errs.some((e) => e.path.length > 0 || e.code === 'unrecognized_keys'));
    if (branch) return branch.flatMap((e) => issueProblems(e, raw, keys));
  }
  const schema = schemaAt(keys.map(String), gridSchema);
  return [problem(fieldName(keys), getAt(raw, keys), schema ? allowedText(schema) : issue.message)];
}

function duplicates<T>(values: readonly T[], key: (v: T) => string): string[] {
  const seen = new Set<string>();
  return values.map(key).filter((k) => seen.has(k) || !seen.add(k));
}

function crossChecks(grid: ParsedGrid, dir: string): Problem[] {
  const problems: Problem[] = [];
  const recipe = path.resolve(dir, grid.recipe);
  if (!existsSync(recipe)) problems.push(problem('grid.recipe', grid.recipe, `an existing recipe YAML (looked for ${recipe})`));
  const lists: Array<[string, unknown[], (v: any) => string]> = [
    ['methods', grid.methods, String], ['budgets', grid.budgets, budgetLabel], ['seeds', grid.seeds, String],
    ['tasks', grid.tasks, (t: string | UserTask) => (typeof t === 'string' ? t : t.name)],
  ];
  for (const [field, values, key] of lists) {
    for (const d of new Set(duplicates(values, key))) problems.push(problem(`grid.${field}`, d, 'each entry once (it names a run folder)'));
  }
  return problems;
}

/** Each distinct recipe problem once, with the first cell it appeared in and how many others share it. */
function cellProblems(recipe: string, cells: readonly Cell[], cwd: string): string[] {
  const seen = new Map<string, { first: string; more: number }>();
  for (const cell of cells) {
    try {
      loadRecipe(recipe, cell.overrides, cwd);
    } catch (e) {
      const messages = e instanceof RecipeError ? e.problems.map((p) => p.message) : [(e as Error).message];
      for (const m of messages) {
        const s = seen.get(m);
        if (s) s.more++;
        else seen.set(m, { first: cell.id, more: 0 });
      }
    }
  }
  return [...seen].map(([m, s]) => `${m} (run ${s.first}${s.more ? ` and ${s.more} more` : ''})`);
}

export interface LoadGridOptions {
  /** Where relative paths typed on the command line are taken from (and the default output). */
  cwd?: string;
  /** Replaces the grid's output_dir (relative to cwd). */
  outputDir?: string;
}

/** Read, validate and expand a grid file; throws one GridError listing every problem. */
export function loadGrid(file: string, cliOverrides: readonly string[] = [], opts: LoadGridOptions = {}): Grid {
  const cwd = opts.cwd ?? process.cwd();
  const abs = path.resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    throw fieldError('grid', file, 'an existing YAML file');
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (e) {
    const err = e as YAML.YAMLError;
    const at = err.linePos?.[0] ? `:${err.linePos[0].line}:${err.linePos[0].col}` : '';
    throw new HiloError(`${file}${at}: ${err.message.split('\n')[0]}`);
  }
  const dir = path.dirname(abs);
  const parsed = gridSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((i) => issueProblems(i, raw));
    const seen = new Set<string>();
    throw new GridError(file, problems.filter((p) => !seen.has(p.message) && seen.add(p.message)));
  }
  const grid = parsed.data;
  const cross = crossChecks(grid, dir);
  if (cross.length) throw new GridError(file, cross);
  const name = path.parse(file).name;
  const outputDir = opts.outputDir ? path.resolve(cwd, opts.outputDir)
    : grid.output_dir ? path.resolve(dir, grid.output_dir) : path.resolve(cwd, 'runs', name);
  const cli = cliOverrides.map((arg) => absoluteOverride(arg, cwd));
  const cells = expandCells(grid, dir, outputDir, cli);
  const recipe = path.resolve(dir, grid.recipe);
  const bad = cellProblems(recipe, cells, cwd);
  if (bad.length) {
    throw new HiloError(`${file}: ${bad.length} problem${bad.length === 1 ? '' : 's'} in the runs' recipes (${grid.recipe} + overrides)\n${bad.map((m) => `  ${m}`).join('\n')}`);
  }
  return {
    file: abs, name, recipe, outputDir, methods: grid.methods, budgets: grid.budgets,
    tasks: grid.tasks.map((t) => (typeof t === 'string' ? t : t.name)), seeds: grid.seeds, cells,
  };
}

/** A command-line `key=value` whose key is a path field gets its value resolved against `cwd` now. */
function absoluteOverride(arg: string, cwd: string): string {
  const eq = arg.indexOf('=');
  if (eq <= 0) return arg;
  const key = canonicalKey(arg.slice(0, eq).trim());
  const value = arg.slice(eq + 1);
  if (!RECIPE_PATH_KEYS.has(key) || /^\s*(null|~|["']|true|false|$)/.test(value)) return arg;
  return `${arg.slice(0, eq)}=${showValue(path.resolve(cwd, value))}`;
}

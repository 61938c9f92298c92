/**
 * Grid files: every problem reported at once as `grid.field: got VALUE; allowed: ...`, problems
 * of the runs' recipes caught before anything trains, and the expansion into cells (order,
 * folders, and the overrides that make each cell's recipe).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadGrid } from '../../src/compare/grid.ts';
import { GridError } from '../../src/compare/schema.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;

function setup(grid: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-grid-'));
  fs.writeFileSync(path.join(dir, 'base.yaml'), `model: {path: ${MODEL}}\ndata: {task: sentiment}\ntrain: {max_steps: 5}\n`);
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(path.join(dir, 'data', 'train.jsonl'), '{"text": "fine", "label": "yes"}\n');
  fs.writeFileSync(path.join(dir, 'grid.yaml'), grid);
  return path.join(dir, 'grid.yaml');
}

function problemsOf(file: string): string[] {
  try {
    loadGrid(file);
  } catch (e) {
    expect(e).toBeInstanceOf(GridError);
    return (e as GridError).problems.map((p) => p.message);
  }
  throw new Error('expected a GridError');
}

describe('grid validation', () => {
  it('reports every schema problem at once, with field, value and what is allowed', () => {
    const file = setup(`recipe: base.yaml
methods: [lora, LoRA]
budgets: [{trainable: 100, percent: 1}, {percent: 0}]
tasks: [sentimnt, {name: mine, train_path: data/train.jsonl}]
seeds: [0, -1]
metods: [hilo]
`);
    expect(problemsOf(file)).toEqual([
      'grid.methods.1: got "LoRA"; allowed: "lora" | "moe-uniform" | "mola" | "alphalora" | "hilo"',
      'grid.budgets.0: got {"trainable":100,"percent":1}; allowed: exactly one of {trainable: N} | {percent: P} | {active: N}, or null (the method\'s own sizes)',
      'grid.budgets.1.percent: got 0; allowed: a number > 0 and <= 100',
      expect.stringMatching(/^grid\.tasks\.0: got "sentimnt"; allowed: "sentiment" \| "sentiment-cross" \| "spam" \| .* or a map with keys name, train_path, /),
      'grid.tasks.1.format: got nothing; allowed: "text" | "instruction" | "classification" | "multiple_choice"',
      'grid.seeds.1: got -1; allowed: an integer >= 0',
      'grid.metods: got ["hilo"]; allowed: known keys only (grid keys: recipe, output_dir, methods, budgets, tasks, seeds, overrides, method_overrides)',
    ]);
  });

  it('refuses duplicates (they would share a run folder) and a missing base recipe', () => {
    const file = setup('recipe: nope.yaml\nmethods: [lora, lora]\nbudgets: [{trainable: 10}, {trainable: 10}]\ntasks: [spam]\n');
    const dir = path.dirname(file);
    expect(problemsOf(file)).toEqual([
      `grid.recipe: got "nope.yaml"; allowed: an existing recipe YAML (looked for ${path.join(dir, 'nope.yaml')})`,
      'grid.methods: got "lora"; allowed: each entry once (it names a run folder)',
      'grid.budgets: got "trainable-10"; allowed: each entry once (it names a run folder)',
    ]);
  });

  it('checks every run\'s recipe before training: one line per problem, with the runs it hits', () => {
    const file = setup(`recipe: base.yaml
methods: [lora, mola]
tasks: [sentiment]
seeds: [0, 1]
overrides: {train.max_stepz: 5}
method_overrides: {mola: {adapter.experts.pattern: "20"}}
`);
    expect(() => loadGrid(file)).toThrow(
      `${file}: 2 problems in the runs\' recipes (base.yaml + overrides)\n` +
      '  recipe.train.max_stepz: got 5; allowed: known keys only; did you mean recipe.train.max_steps? (recipe.train keys: learning_rate, batch_size, eval_batch_size, gradient_accumulation_steps, max_steps, num_train_epochs, warmup_steps, lr_scheduler_type, weight_decay, max_grad_norm, logging_steps, eval_steps, save_steps, data_parallel, gradient_checkpointing, resume, overwrite_output_dir) (run sentiment/lora/none/seed0 and 3 more)\n' +
      '  recipe.adapter.experts.pattern: got "20"; allowed: a digit string such as "2468" or a comma list such as "10,8,6,4" (every count >= 1) or null (run sentiment/mola/none/seed0 and 1 more)',
    );
  });

  it('names a YAML syntax error by line', () => {
    expect(() => loadGrid(setup('methods: [lora\n'))).toThrow(/grid\.yaml:2:1: /);
  });
});

describe('grid cells', () => {
  const file = setup(`recipe: base.yaml
output_dir: out
methods: [lora, hilo]
budgets: [{trainable: 20000}, {percent: 5}]
tasks:
  - sentiment
  - {name: mine, train_path: data/train.jsonl, format: classification, label_words: {yes: " yes", no: " no"}}
seeds: [0, 3]
overrides: {train.max_steps: 7}
method_overrides: {hilo: {adapter.probe: depth}}
`);
  const dir = path.dirname(file);
  const grid = loadGrid(file, ['train.batch_size=4', 'seed=99']);

  it('are task x method x budget x seed, in that order, each in its own folder', () => {
    expect(grid.cells).toHaveLength(16);
    expect(grid.cells.slice(0, 5).map((c) => c.id)).toEqual([
      'sentiment/lora/trainable-20000/seed0', 'sentiment/lora/trainable-20000/seed3',
      'sentiment/lora/percent-5/seed0', 'sentiment/lora/percent-5/seed3', 'sentiment/hilo/trainable-20000/seed0',
    ]);
    expect(grid.cells[15].id).toBe('mine/hilo/percent-5/seed3');
    expect(grid.cells[15].runDir).toBe(path.join(dir, 'out', 'runs', 'mine', 'hilo', 'percent-5', 'seed3'));
    expect(grid.cells.map((c) => c.metric)).toEqual([...Array(8).fill('accuracy'), ...Array(8).fill('accuracy')]);
  });

  it('turn the base recipe into each run\'s recipe; the grid\'s axes win over command-line overrides', () => {
    const sentiment = loadRecipe(grid.recipe, grid.cells[6].overrides);
    expect(sentiment).toMatchObject({
      seed: 0, output_dir: grid.cells[6].runDir,
      adapter: { method: 'hilo', budget: { percent: 5 }, probe: 'depth' },
      data: { task: 'sentiment', train_path: null, format: 'classification' },
      train: { max_steps: 7, batch_size: 4 },
      wandb: { name: 'sentiment/hilo/percent-5/seed0' },
    });
    const mine = loadRecipe(grid.recipe, grid.cells[9].overrides);
    expect(mine).toMatchObject({
      seed: 3, adapter: { method: 'lora', budget: { trainable: 20000 }, probe: 'depth' },
      data: { task: null, train_path: path.join(dir, 'data', 'train.jsonl'), label_words: { yes: ' yes', no: ' no' } },
    });
  });
});

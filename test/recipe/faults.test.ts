/**
 * Fault matrix of recipes: one setting spelled two ways (overrides and YAML), and `hilo validate`
 * reading the data files it would train on. CLI cases run bin/hilo.js with tfjs blocked, as
 * test/recipe/cli.test.ts does.
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRecipeData } from '../../src/data/check.ts';
import { applyOverrides, loadRecipe } from '../../src/recipe/load.ts';
import { makeRecipeDir, minimal } from './fixture.ts';

const root = path.resolve(import.meta.dirname, '../..');
const blocker = path.join(import.meta.dirname, 'block-tfjs.mjs');
const dir = makeRecipeDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function validate(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', blocker, path.join(root, 'bin', 'hilo.js'), 'validate', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('one setting spelled two ways', () => {
  const pairs: Array<[string, string, string]> = [
    ['lr=0.1', 'learning_rate=0.2', 'recipe.train.learning_rate'],
    ['lr=0.1', 'train.learning_rate=0.2', 'recipe.train.learning_rate'],
    ['train.learning_rate=0.1', 'recipe.train.lr=0.2', 'recipe.train.learning_rate'],
    ['lora_r=4', 'adapter.rank.r=8', 'recipe.adapter.rank.r'],
    ['micro_batch_size=2', 'train.batch_size=4', 'recipe.train.batch_size'],
  ];
  it.each(pairs)('overrides %s and %s: an error naming both', (a, b, canonical) => {
    expect(applyOverrides(minimal(), [a, b], dir).problems.map((p) => p.message)).toEqual([
      `override 2: got ${JSON.stringify(b)}; allowed: one spelling per setting: ${JSON.stringify(a)} also sets ${canonical}`,
    ]);
  });

  it('the same spelling twice still layers (the later wins), as grids rely on', () => {
    const { value, problems } = applyOverrides(minimal(), ['lr=0.1', 'train.max_steps=5', 'lr=0.2'], dir) as { value: any; problems: unknown[] };
    expect(problems).toEqual([]);
    expect(value.train.learning_rate).toBe(0.2);
  });

  it('an override still replaces the YAML\'s spelling (the command line wins over the file)', () => {
    writeFileSync(path.join(dir, 'lr.yaml'), 'model: {path: model}\ndata: {task: sentiment}\nlr: 0.1\n');
    expect(loadRecipe('lr.yaml', ['train.learning_rate=0.3'], dir).train.learning_rate).toBe(0.3);
  });

  it('hilo validate: both in overrides, and both in the YAML, exit 2 naming both', () => {
    writeFileSync(path.join(dir, 'plain.yaml'), 'model: {path: model}\ndata: {task: sentiment}\n');
    const cli = validate('plain.yaml', 'lr=1e-3', 'learning_rate=2e-3');
    expect(cli.code).toBe(2);
    expect(cli.err).toBe('hilo: plain.yaml: 1 problem\n  override 2: got "learning_rate=2e-3"; allowed: one spelling per setting: "lr=1e-3" also sets recipe.train.learning_rate\n');
    writeFileSync(path.join(dir, 'both.yaml'), 'model: {path: model}\ndata: {task: sentiment}\nlr: 0.1\ntrain: {learning_rate: 0.2}\n');
    const yaml = validate('both.yaml');
    expect(yaml.code).toBe(2);
    expect(yaml.err).toBe('hilo: both.yaml: 1 problem\n  recipe.lr: got 0.1; allowed: one spelling per setting: recipe.train.learning_rate is also given (0.2)\n');
  });
});

describe('hilo validate reads the data files', () => {
  const recipe = (train: string) => `model: {path: model}\ndata: {train_path: ${train}, format: text, eval_fraction: 0}\n`;

  it('a broken data file is no longer "ok": every bad line as file:line, exit 2', () => {
    writeFileSync(path.join(dir, 'data', 'broken.jsonl'), '{"text": "a", "label": "pos"}\n{"text": "b" "label": "neg"}\n{"label": "neg"}\n');
    writeFileSync(path.join(dir, 'broken.yaml'), recipe('data/broken.jsonl'));
    const r = validate('broken.yaml');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const file = path.join(dir, 'data', 'broken.jsonl');
    expect(r.err).toBe(`hilo: recipe.data: 2 problems; fix them before training:\n  ${file}:2: bad JSON (Expected ',' or '}' after property value in JSON at position 13)\n  ${file}:3: missing field "text"\n`);
  });

  it('a good one: ok, and the counts it read', () => {
    writeFileSync(path.join(dir, 'good-data.yaml'), recipe('data/train.jsonl'));
    const r = validate('good-data.yaml');
    expect(r.code).toBe(0);
    expect(r.out).toContain('\nchecked  data: 1 train / 0 eval / 0 test examples, every record read and well-formed\nchecked  model: llama, 4 layers');
  });

  it('files past the bound are not read, and it says so', () => {
    const r = loadRecipe('good-data.yaml', [], dir);
    expect(checkRecipeData(r.data, r.seed, 10)).toBe(
      'data     not read: 0.00 MiB of JSONL, more than validate reads (0.00 MiB); hilo train checks every line before it starts');
  });
});

/**
 * `hilo compare` end to end, as a user runs it: a 2 x 1 x 1 grid (lora and moe-uniform, one
 * budget, one task, one seed) trained for a few steps on the real stories260K model and a small
 * JSONL classification set written here; then the result files, the table and the plots are
 * checked against the runs' own results, a second invocation re-runs nothing, and runs that fail
 * are recorded without stopping the grid.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sentimentLines } from '../helpers/sentences.ts';
import { countPoints } from './helpers.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MODEL = STORIES260K;
const HILO = path.join(ROOT, 'bin/hilo.js');

/** Real sentences (UCI yelp reviews from the sentiment package), as user JSONL. */
function writeData(dir: string): void {
  const rows = sentimentLines('yelp');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.slice(0, 32).join('\n'));
  fs.writeFileSync(path.join(dir, 'test.jsonl'), rows.slice(600, 612).join('\n'));
}

function setup(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-compare-'));
  writeData(dir);
  fs.writeFileSync(path.join(dir, 'base.yaml'), `model: {path: ${MODEL}}
backend: wasm
data: {task: sentiment, max_length: 32}
adapter: {target_modules: [q_proj, v_proj], experts: {per_layer: 2}, rank: {r: 2}, dropout: 0}
train: {batch_size: 8, max_steps: 2, warmup_steps: 0, logging_steps: 1, eval_steps: 0, save_steps: 0, learning_rate: 0.01}
`);
  fs.writeFileSync(path.join(dir, 'grid.yaml'), `# hilo compare grid.yaml
recipe: base.yaml
output_dir: out
methods: [lora, moe-uniform]
budgets: [{trainable: 4000}]
tasks:
  - {name: yelp, train_path: train.jsonl, test_path: test.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}}
seeds: [1]
`);
  return dir;
}

function compare(dir: string, ...args: string[]) {
  return spawnSync(process.execPath, [HILO, 'compare', 'grid.yaml', ...args], { cwd: dir, encoding: 'utf8' });
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

describe('hilo compare', () => {
  it('trains a 2x1x1 grid, writes results, table, plots and report; a second run trains nothing', { timeout: 300_000 }, () => {
    const dir = setup();
    const first = compare(dir);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('grid grid: 2 runs (1 tasks x 2 methods x 1 budgets x 1 seeds)');
    expect(first.stderr).toContain('== run 1/2: yelp/lora/trainable-4000/seed1 (0/2 cells done) ==');
    expect(first.stderr).toMatch(/== run 2\/2: yelp\/moe-uniform\/trainable-4000\/seed1 \(1\/2 cells done · ETA \d\d:\d\d\) ==/);
    expect(first.stderr).toContain('\n2/2 cells done · ETA 00:00\n');
    expect(first.stderr).toMatch(/\[#+\] 2\/2 loss/); // the run's own progress line
    // what the grid wrote is its result: on stdout, and only there
    const out0 = path.join(dir, 'out');
    expect(first.stdout).toMatch(new RegExp(`^summary: ${out0}/summary\\.md\nreport: ${out0}/report\\.html\nplots: ${out0}/plot-\\w+\\.png(, ${out0}/plot-\\w+\\.png)*\n$`));
    expect(first.stderr).not.toContain('summary: ');

    const out = path.join(dir, 'out');
    const results = ['lora', 'moe-uniform'].map((m) => readJson(path.join(out, 'runs', 'yelp', m, 'trainable-4000', 'seed1', 'results.json')));
    for (const [i, method] of ['lora', 'moe-uniform'].entries()) {
      expect(results[i]).toMatchObject({ steps: 2, stopped: 'finished', backend: 'wasm', recipe: { seed: 1, adapter: { method, budget: { trainable: 4000 } } } });
      expect(results[i].params.trainable).toBeGreaterThan(0);
      expect(results[i].params.trainable).toBeLessThanOrEqual(4000);
      expect(results[i].test.examples).toBe(12);
    }

    const rows = fs.readFileSync(path.join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((r) => [r.method, r.value, r.trainable, r.active, r.error])).toEqual(
      results.map((r, i) => [['lora', 'moe-uniform'][i], r.test.accuracy, r.params.trainable, r.params.active, null]));
    expect(readJson(path.join(out, 'summary.json'))).toMatchObject({ runs: 2, with_results: 2, failed: 0, seeds: [1] });

    const table = fs.readFileSync(path.join(out, 'summary.md'), 'utf8').split('\n').filter((l) => l.startsWith('| yelp'));
    const n = (v: number) => v.toLocaleString('en-US');
    expect(table).toEqual(results.map((r, i) => expect.stringMatching(new RegExp(
      `^\\| yelp \\| ${['lora', 'moe-uniform'][i]} \\| 4,000 trainable \\| ${n(r.params.trainable)} \\| ${n(r.params.active)} \\| accuracy \\| ` +
      `${r.test.accuracy.toFixed(4)} \\| – \\| 1 \\| [\\d,]+ \\| [\\d.]+s \\|$`))));
    // one seed: the paired table has the one (yelp, seed 1) pair and no interval
    const d = results[1].test.accuracy - results[0].test.accuracy;
    expect(fs.readFileSync(path.join(out, 'summary.md'), 'utf8')).toContain(
      `| moe-uniform − lora | 4,000 trainable | accuracy | 1 | ${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(4)} | – | – |`);
    expect(readJson(path.join(out, 'summary.json')).paired).toMatchObject([{ method: 'moe-uniform', baseline: 'lora', n: 1, tasks: ['yelp'] }]);

    for (const axis of ['trainable', 'active']) {
      const svg = fs.readFileSync(path.join(out, `plot-${axis}.svg`), 'utf8');
      expect(countPoints(svg)).toBe(2);
      expect(fs.readFileSync(path.join(out, `plot-${axis}.png`)).subarray(1, 4).toString()).toBe('PNG');
    }
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).toContain('<code>hilo compare grid.yaml</code>');

    // Resumable: both results exist, so nothing trains and the files are untouched.
    const resultFiles = ['lora', 'moe-uniform'].map((m) => path.join(out, 'runs', 'yelp', m, 'trainable-4000', 'seed1', 'results.json'));
    const before = resultFiles.map((f) => fs.statSync(f).mtimeMs);
    const again = compare(dir);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('2 runs (1 tasks x 2 methods x 1 budgets x 1 seeds), 2 already done');
    expect(again.stderr).not.toContain('== run');
    expect(resultFiles.map((f) => fs.statSync(f).mtimeMs)).toEqual(before);

    // A run that fails is recorded in its results and in the table; the grid goes on and exits 1.
    const failing = compare(dir, '--output-dir', 'broken', 'adapter.target_modules=[nope_proj]');
    expect(failing.status).toBe(1);
    expect(failing.stderr).toContain('== run 2/2: yelp/moe-uniform/trainable-4000/seed1');
    const broken = readJson(path.join(dir, 'broken', 'runs', 'yelp', 'lora', 'trainable-4000', 'seed1', 'results.json'));
    expect(broken.error).toMatch(/^recipe\.adapter\.target_modules: got "nope_proj"; allowed: "q_proj"/);
    expect(fs.readFileSync(path.join(dir, 'broken', 'summary.md'), 'utf8')).toContain('| yelp | lora | 4,000 trainable | – | – | accuracy | failed | – | 0 |');
    // the next invocation tries it again, over what the failure left in its run folder
    const retried = compare(dir, '--output-dir', 'broken', 'adapter.target_modules=[nope_proj]');
    expect(retried.status).toBe(1);
    expect(retried.stderr).not.toContain('already holds a run');
    expect(readJson(path.join(dir, 'broken', 'runs', 'yelp', 'lora', 'trainable-4000', 'seed1', 'results.json')).error).toMatch(/^recipe\.adapter\.target_modules: got "nope_proj"/);
  });
});

/**
 * A grid that stops part-way resumes where it stopped, as a user meets it: cells whose results
 * are missing (killed) or record a failure run again, finished ones are not touched; a `--jobs`
 * grid whose own process is SIGKILLed leaves no cell processes behind, and its rerun trains only
 * the missing cells; cells run in parallel processes give exactly the serial run's numbers.
 * Three 2-step cells on the real stories260K model.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, STORIES260K as MODEL } from '../helpers/fixtures.ts';
import { sentimentLines } from '../helpers/sentences.ts';

const HILO = path.join(ROOT, 'bin/hilo.js');
const SEEDS = [1, 2, 3];

function setup(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-resume-'));
  const rows = sentimentLines('yelp');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.slice(0, 32).join('\n'));
  fs.writeFileSync(path.join(dir, 'test.jsonl'), rows.slice(600, 612).join('\n'));
  // data_parallel 1: a serial run then computes what a --jobs cell (one thread) computes.
  fs.writeFileSync(path.join(dir, 'base.yaml'), `model: {path: ${MODEL}}
backend: wasm
data: {task: sentiment, max_length: 32}
adapter: {target_modules: [q_proj, v_proj], rank: {r: 2}, dropout: 0}
train: {batch_size: 8, max_steps: 2, warmup_steps: 0, logging_steps: 1, eval_steps: 0, save_steps: 1, learning_rate: 0.01, data_parallel: 1}
`);
  fs.writeFileSync(path.join(dir, 'grid.yaml'), `recipe: base.yaml
methods: [lora]
budgets: [{trainable: 4000}]
tasks:
  - {name: yelp, train_path: train.jsonl, test_path: test.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}}
seeds: [${SEEDS.join(', ')}]
`);
  return dir;
}

const compare = (dir: string, ...args: string[]) =>
  spawnSync(process.execPath, [HILO, 'compare', 'grid.yaml', ...args], { cwd: dir, encoding: 'utf8' });
const resultsFile = (dir: string, out: string, seed: number) => path.join(dir, out, 'runs', 'yelp', 'lora', 'trainable-4000', `seed${seed}`, 'results.json');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const finished = (file: string) => fs.existsSync(file) && readJson(file).stopped === 'finished';
/** What a cell computed: the numbers that must not depend on how or when it ran. */
const numbers = (file: string) => {
  const r = readJson(file);
  return { final_loss: r.final_loss, test: r.test, params: r.params, steps: r.steps };
};
/** Lines of `hilo compare` output naming a cell that ran (serial headers or --jobs progress lines). */
const ranCells = (stderr: string) => [...stderr.matchAll(/(?:== run \d+\/\d+: |\] )yelp\/lora\/trainable-4000\/seed(\d)/g)].map((m) => Number(m[1])).sort();
/** Cell processes (`--cell`) still alive that write under `dir`. */
function cellProcesses(dir: string): number[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmd.includes('--cell') && cmd.includes(dir);
    } catch {
      return false;
    }
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('hilo compare resume', () => {
  const dir = setup();

  it('reruns only the cells whose results are missing or failed', { timeout: 600_000 }, () => {
    const first = compare(dir, '--output-dir', 'serial');
    expect(first.status, first.stderr).toBe(0);
    expect(ranCells(first.stderr)).toEqual(SEEDS);
    const before = SEEDS.map((s) => numbers(resultsFile(dir, 'serial', s)));
    const untouched = fs.statSync(resultsFile(dir, 'serial', 1)).mtimeMs;

    // seed 2 failed (an error record), seed 3 was killed before it wrote results.
    fs.writeFileSync(resultsFile(dir, 'serial', 2), JSON.stringify({ error: 'killed by the test', wall_seconds: 1 }));
    fs.rmSync(resultsFile(dir, 'serial', 3));
    const again = compare(dir, '--output-dir', 'serial');
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('3 runs (1 tasks x 1 methods x 1 budgets x 3 seeds), 1 already done');
    expect(ranCells(again.stderr)).toEqual([2, 3]);
    expect(again.stderr).toContain('== run 2/3: yelp/lora/trainable-4000/seed2 (1/3 cells done) ==');
    expect(fs.statSync(resultsFile(dir, 'serial', 1)).mtimeMs).toBe(untouched);
    expect(SEEDS.map((s) => numbers(resultsFile(dir, 'serial', s)))).toEqual(before);
  });

  it('--jobs: a killed grid leaves no cells running, resumes with the missing cells only, and matches the serial numbers', { timeout: 600_000 }, async () => {
    const grid = spawn(process.execPath, [HILO, 'compare', 'grid.yaml', '--output-dir', 'par', '--jobs', '2'], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise((r) => grid.on('exit', r));
    // Kill the grid's own process as soon as one cell has finished (the second is then mid-run or queued).
    const deadline = Date.now() + 300_000;
    while (!SEEDS.some((s) => finished(resultsFile(dir, 'par', s)))) {
      if (Date.now() > deadline) throw new Error('no cell finished within 300 s');
      await sleep(200);
    }
    grid.kill('SIGKILL');
    const killedAt = Date.now();
    await exited;
    for (let i = 0; cellProcesses(path.join(dir, 'par')).length && i < 100; i++) await sleep(100);
    expect(cellProcesses(path.join(dir, 'par'))).toEqual([]);
    // The cells running at the kill stopped with it: none went on to write results (an orphan would).
    const written = SEEDS.map((s) => resultsFile(dir, 'par', s)).filter((f) => fs.existsSync(f)).map((f) => fs.statSync(f).mtimeMs);
    console.log("DBG killedAt", killedAt, SEEDS.map((s) => fs.existsSync(resultsFile(dir, "par", s)) ? [s, fs.statSync(resultsFile(dir, "par", s)).mtimeMs - killedAt, readJson(resultsFile(dir, "par", s)).stopped] : [s, null]), dir);
    expect(written.filter((t) => t > killedAt + 1000)).toEqual([]);
    const done = SEEDS.filter((s) => finished(resultsFile(dir, 'par', s)));
    expect(done.length).toBeGreaterThanOrEqual(1);
    expect(done.length).toBeLessThan(3);
    const mtimes = done.map((s) => fs.statSync(resultsFile(dir, 'par', s)).mtimeMs);

    const rerun = compare(dir, '--output-dir', 'par', '--jobs', '2');
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(rerun.stderr).toContain(`3 runs (1 tasks x 1 methods x 1 budgets x 3 seeds), ${done.length} already done, ${Math.min(2, 3 - done.length)} at a time`);
    expect(ranCells(rerun.stderr)).toEqual(SEEDS.filter((s) => !done.includes(s)));
    expect(rerun.stderr).toMatch(/\[3\/3 cells done · ETA 00:00\] yelp\/lora\/trainable-4000\/seed\d: accuracy \d\.\d{4} in [\d.]+s/);
    expect(done.map((s) => fs.statSync(resultsFile(dir, 'par', s)).mtimeMs)).toEqual(mtimes);
    // each cell's own output went to its train.log
    expect(fs.readFileSync(path.join(path.dirname(resultsFile(dir, 'par', 1)), 'train.log'), 'utf8')).toMatch(/\[#+\] 2\/2 loss/);

    // One thread per cell in its own process, or all in one process: the same numbers.
    expect(SEEDS.map((s) => numbers(resultsFile(dir, 'par', s)))).toEqual(SEEDS.map((s) => numbers(resultsFile(dir, 'serial', s))));
    expect(readJson(path.join(dir, 'par', 'summary.json'))).toMatchObject({ runs: 3, with_results: 3, failed: 0 });
  });
});

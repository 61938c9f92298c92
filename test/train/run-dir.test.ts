/** The run folder's claim (src/train/run-dir.ts), in process: each refusal, the lock, and what a failed start leaves. */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimRunDir, LOCK_FILE } from '../../src/train/run-dir.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-rundir-'));
const quiet = { resuming: false, overwrite: false, log: () => {} };

/** A folder holding a finished run's files. */
function finishedRun(): string {
  const dir = path.join(tmp(), 'run');
  for (const d of ['adapter', 'checkpoint-10', 'checkpoint-20']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'checkpoint-20', 'trainer_state.json'), '{"step": 20}');
  for (const f of ['recipe.json', 'plan.json', 'metrics.jsonl', 'results.json']) fs.writeFileSync(path.join(dir, f), '{}');
  return dir;
}

describe('claimRunDir', () => {
  it('creates a missing folder, locks it with this pid and unlocks it on release', () => {
    const dir = path.join(tmp(), 'a', 'run');
    const claim = claimRunDir(dir, quiet);
    expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    claim.release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('removes the folders it created when the start fails, and only those', () => {
    const root = tmp();
    claimRunDir(path.join(root, 'a', 'b', 'run'), quiet).release({ failed: true });
    expect(fs.readdirSync(root)).toEqual([]);
    const existing = path.join(root, 'mine');
    fs.mkdirSync(existing);
    claimRunDir(existing, quiet).release({ failed: true });
    expect(fs.existsSync(existing)).toBe(true);
  });

  it('refuses a folder holding a run, naming it and both ways out, and changes nothing', () => {
    const dir = finishedRun();
    const before = fs.readdirSync(dir);
    expect(() => claimRunDir(dir, quiet)).toThrow(
      `recipe.output_dir: ${dir} already holds a run (adapter, checkpoint-10, checkpoint-20, metrics.jsonl, recipe.json, results.json); ` +
        'continue it with resume=true, start it over with train.overwrite_output_dir=true (deletes those), or choose another output_dir',
    );
    expect(fs.readdirSync(dir)).toEqual(before);
  });

  it('keeps a run it resumes', () => {
    const dir = finishedRun();
    const before = fs.readdirSync(dir);
    claimRunDir(dir, { ...quiet, resuming: true }).release();
    expect(fs.readdirSync(dir)).toEqual(before);
  });

  it('clears a run on overwrite, saying so, and keeps the probe, the plan and files hilo does not write', () => {
    const dir = finishedRun();
    fs.writeFileSync(path.join(dir, 'probe.json'), '{}');
    fs.writeFileSync(path.join(dir, 'notes.md'), 'mine');
    const said: string[] = [];
    const claim = claimRunDir(dir, { ...quiet, overwrite: true, log: (m) => said.push(m) });
    expect(fs.readdirSync(dir).sort()).toEqual([LOCK_FILE, 'notes.md', 'plan.json', 'probe.json']);
    expect(said).toEqual([`train.overwrite_output_dir: cleared the previous run from ${dir} (adapter, checkpoint-10, checkpoint-20, metrics.jsonl, recipe.json, results.json)`]);
    claim.release();
  });

  it('takes a folder that holds only what hilo probe / hilo plan wrote ahead of training, and other files', () => {
    const dir = tmp();
    for (const f of ['probe.json', 'plan.json', 'notes.md']) fs.writeFileSync(path.join(dir, f), '{}');
    claimRunDir(dir, quiet).release();
    expect(fs.readdirSync(dir).sort()).toEqual(['notes.md', 'plan.json', 'probe.json']);
  });

  it('lists a long run briefly, in step order', () => {
    const dir = finishedRun();
    for (let s = 1; s <= 5; s++) fs.mkdirSync(path.join(dir, `checkpoint-${s}`));
    expect(() => claimRunDir(dir, quiet)).toThrow(/already holds a run \(adapter, checkpoint-1, checkpoint-2, checkpoint-3, checkpoint-4, checkpoint-5, \.\.\. \(11 entries\)\)/);
  });

  it('refuses a folder locked by a live process, naming its pid; takes over a dead one\'s lock', async () => {
    const dir = tmp();
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      fs.writeFileSync(path.join(dir, LOCK_FILE), `${live.pid}\n`);
      expect(() => claimRunDir(dir, { ...quiet, resuming: true })).toThrow(
        `recipe.output_dir: ${dir} is in use by another hilo train (pid ${live.pid}, lock ${path.join(dir, LOCK_FILE)}); wait for it to finish, stop it, or choose another output_dir`,
      );
      expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).toBe(`${live.pid}\n`);
    } finally {
      live.kill();
    }
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${dead}\n`);
    const said: string[] = [];
    const claim = claimRunDir(dir, { ...quiet, resuming: true, log: (m) => said.push(m) });
    expect(said).toEqual([`${path.join(dir, LOCK_FILE)}: taking over the lock of pid ${dead}, which is no longer running`]);
    expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    claim.release();
    // this process's own leftover lock (a run in it that never released) is taken back without a word
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.pid}\n`);
    const again: string[] = [];
    claimRunDir(dir, { ...quiet, resuming: true, log: (m) => again.push(m) }).release();
    expect(again).toEqual([]);
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it.each([
    ['is a file', (f: string) => f, (f: string) => `recipe.output_dir: ${f} is a file, not a folder`],
    ['is below a file', (f: string) => path.join(f, 'x', 'run'), (f: string) => `recipe.output_dir: ${path.join(f, 'x', 'run')} is below ${f}, which is a file, not a folder`],
  ])('says in a sentence when output_dir %s', (_name, dirOf, message) => {
    const file = path.join(tmp(), 'notes.txt');
    fs.writeFileSync(file, 'keep me');
    expect(() => claimRunDir(dirOf(file), quiet)).toThrow(message(file));
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });
});

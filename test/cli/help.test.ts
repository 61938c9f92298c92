/** `hilo --help` lists every command and never loads tfjs (the heavy import sits in handlers). */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BLOCKER = path.join(ROOT, 'test/recipe/block-tfjs.mjs');

describe('hilo --help', () => {
  it('lists the commands without importing @tensorflow', () => {
    const r = spawnSync(process.execPath, ['--import', BLOCKER, path.join(ROOT, 'bin/hilo.js'), '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    for (const cmd of ['train', 'eval', 'validate', 'probe', 'plan', 'generate', 'score', 'doctor', 'wandb']) {
      expect(r.stdout).toMatch(new RegExp(`hilo ${cmd}\\b`));
    }
  });

  it('fails clearly on an unknown command', () => {
    const r = spawnSync(process.execPath, ['--import', BLOCKER, path.join(ROOT, 'bin/hilo.js'), 'trian'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/train/);
  });
});

/**
 * Exports that must fail without touching anything: a missing run, a half-written checkpoint,
 * an output folder holding a different export; and what --force and a repeated export do.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { HiloError } from '../../src/errors.ts';
import { exportRun } from '../../src/export/run-export.ts';
import { loadModel } from '../../src/model/load.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { HILO, makeRun, MODEL_DIR, planOf, snapshot, tmpDir, writeCheckpoint } from './helpers.ts';

let model: CausalLM;
let dir: string;
let runA: string;
let runB: string;

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
  dir = tmpDir();
  const a = makeRun(dir, 'a', model, planOf([1, 1, 2, 2, 2], [2, 2, 2, 2, 2], ['self_attn.q_proj']), 1);
  await writeCheckpoint(a, 2);
  a.adapters.dispose();
  const b = makeRun(dir, 'b', model, planOf([1, 1, 1, 1, 1], [4, 4, 4, 4, 4], ['self_attn.q_proj']), 2);
  b.adapters.dispose();
  runA = a.runDir;
  runB = b.runDir;
}, 60_000);
afterAll(() => model?.dispose());

/** The HiloError message of a failed export (fails the test if it did not fail that way). */
async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(HiloError);
  return (e as Error).message;
}

describe('hilo export refuses', () => {
  it('a run folder that does not exist, or is not a run, and says what to give', async () => {
    expect(await failure(exportRun(path.join(dir, 'nope')))).toBe(`export: ${path.join(dir, 'nope')} does not exist; give a run folder (runs/<name>) written by hilo train`);
    expect(await failure(exportRun(dir))).toMatch(/has no recipe.json; is it a hilo run folder\?$/);
    expect(await failure(exportRun(runA, { checkpoint: '9' }))).toMatch(/checkpoint-9: does not exist/);
  });

  it('a half-written checkpoint (no trainer_state.json), and writes nothing', async () => {
    const half = path.join(runA, 'checkpoint-3');
    fs.cpSync(path.join(runA, 'checkpoint-2'), half, { recursive: true });
    fs.rmSync(path.join(half, 'trainer_state.json'));
    const out = path.join(dir, 'from-half');
    expect(await failure(exportRun(runA, { checkpoint: half, out }))).toBe(
      `checkpoint ${half}: trainer_state.json is missing (a half-written or foreign folder); use a complete checkpoint-N folder`);
    expect(await failure(exportRun(half, { out }))).toMatch(/trainer_state.json is missing/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.from-half'))).toEqual([]); // no temp folder left
  });

  it('an output folder holding a different export (byte-identical afterwards); --force replaces it', async () => {
    const out = path.join(dir, 'pkg');
    expect((await exportRun(runA, { out })).status).toBe('written');
    const before = snapshot(out);
    // another run, another format, or foreign files: refused before any work
    expect(await failure(exportRun(runB, { out }))).toBe(
      `export: ${out} already holds a different export (hilo from ${path.join(runA, 'adapter')}); nothing was changed. Pass --force to replace it, or --out another folder`);
    expect(await failure(exportRun(runA, { out, format: 'peft' }))).toMatch(/already holds a different export \(hilo from/);
    expect(snapshot(out)).toEqual(before);
    // the same export again: nothing to do
    expect((await exportRun(runA, { out })).status).toBe('unchanged');
    expect(snapshot(out)).toEqual(before);
    // --force: run b's package replaces run a's
    expect((await exportRun(runB, { out, force: true })).status).toBe('replaced');
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg.hilo_export.source).toBe(path.join(runB, 'adapter'));
    expect(snapshot(out)).not.toEqual(before);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.pkg'))).toEqual([]);
  }, 60_000);

  it('a folder of foreign files, and the CLI exits 2 (a user error) with the message (stdout empty)', () => {
    const out = path.join(dir, 'foreign');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
    const r = spawnSync(process.execPath, [HILO, 'export', runA, '--out', out], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`export: ${out} already holds files that are not a hilo export; nothing was changed. Pass --force`);
    expect(snapshot(out)).toEqual({ 'notes.txt': Buffer.from('mine').toString('base64') });
  }, 120_000);
});

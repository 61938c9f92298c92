/**
 * Offline runs and `hilo wandb sync`: offline mode sends nothing and leaves the records in the
 * run folder; the CLI uploads them; a second sync finds the server up to date and sends nothing;
 * a sync after a partial upload sends only the missing lines.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWandb, resolveWandbSettings } from '../../../src/log/wandb/index.ts';
import { findQueue, syncRun } from '../../../src/log/wandb/sync.ts';
import { FakeWandb, GOOD_KEY } from './fake-server.ts';

let server: FakeWandb;
let dir: string;
const repo = join(import.meta.dirname, '../../..');

beforeEach(async () => {
  server = new FakeWandb();
  await server.start();
  dir = mkdtempSync(join(tmpdir(), 'hilo-wandb-sync-'));
});
afterEach(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** An offline run of `steps` rows, finished with exit code 0; returns its run folder. */
async function offlineRun(steps: number): Promise<string> {
  const runDir = join(dir, 'run');
  const settings = resolveWandbSettings({ mode: 'offline', project: 'proj' }, { WANDB_BASE_URL: server.url }, dir);
  const s = createWandb(settings, runDir, { config: { lr: 0.001 }, log: () => {} });
  for (let step = 0; step < steps; step++) s.log(step, { loss: 1 / (step + 1) });
  s.summary({ best: 0.5 });
  await s.finish(0);
  return runDir;
}

function hilo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, WANDB_BASE_URL: server.url, WANDB_API_KEY: GOOD_KEY, HOME: dir };
    const p = spawn(process.execPath, [join(repo, 'bin/hilo.js'), ...args], { cwd: repo, env });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill(), 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const local = (runDir: string) => readFileSync(join(runDir, 'wandb', 'history.jsonl'), 'utf8').split('\n').filter(Boolean);

describe('offline runs and hilo wandb sync', () => {
  it('offline sends nothing; `hilo wandb sync` uploads once; a second sync sends nothing new', async () => {
    const runDir = await offlineRun(40);
    expect(server.requests).toHaveLength(0);

    const first = await hilo(['wandb', 'sync', runDir]);
    expect(first.out).toContain('sent 40 history lines');
    expect(first.code).toBe(0);
    const run = [...server.runs.values()][0];
    expect(run.entity).toBe('tester'); // no entity set: the key's default, from the Viewer query
    expect(run.history).toEqual(local(runDir));
    expect(JSON.parse(run.config!)).toEqual({ lr: { value: 0.001 } });
    expect(JSON.parse(run.summary!)).toMatchObject({ loss: 1 / 40, best: 0.5, _step: 39 });
    expect(run).toMatchObject({ complete: true, exitcode: 0 });
    expect(first.out).toContain(`${server.url}/tester/proj/runs/${run.name}`);

    const before = server.fileStreams().length;
    run.summary = JSON.stringify({ ...JSON.parse(run.summary!), _wandb: { runtime: 3 } }); // servers add their own keys
    const second = await hilo(['wandb', 'sync', runDir]);
    expect(second.code).toBe(0);
    expect(second.out).toContain('up to date');
    expect(server.fileStreams()).toHaveLength(before);
    expect(run.history).toHaveLength(40);
  }, 30_000);

  it('resumes from what the server already has (RunResumeStatus), without duplicates', async () => {
    const runDir = await offlineRun(30);
    const lines = local(runDir);
    // As if an earlier upload got 12 lines through before the connection dropped.
    server.fault = (r) => (r.path.endsWith('/file_stream') ? { status: 503 } : null);
    await expect(syncRun(runDir, { env: { WANDB_BASE_URL: server.url, WANDB_API_KEY: GOOD_KEY }, home: dir, log: () => {}, timeoutMs: 1500, backoff: { minMs: 20, maxMs: 40 } }))
      .rejects.toThrow(/sent 0 of 30/);
    server.fault = null;
    const run = [...server.runs.values()][0];
    run.history.push(...lines.slice(0, 12));

    const seen = server.fileStreams().length;
    const res = await syncRun(runDir, { env: { WANDB_BASE_URL: server.url, WANDB_API_KEY: GOOD_KEY }, home: dir, log: () => {} });
    expect(res.sent).toBe(18);
    const sent = server.fileStreams().slice(seen).map((r) => r.body.files['wandb-history.jsonl']);
    expect(sent.map((h) => h.offset)).toEqual([12]);
    expect(sent[0].content).toEqual(lines.slice(12));
    expect(run.history).toEqual(lines);
    expect(run.rewrites).toBe(0);
    expect(run.complete).toBe(true);
  });

  it('finds the queue under WANDB_DIR from the run folder path', async () => {
    const settings = resolveWandbSettings({ mode: 'offline' }, { WANDB_DIR: join(dir, 'wd') }, dir);
    const s = createWandb(settings, join(dir, 'myrun'), { log: () => {} });
    s.log(0, { loss: 1 });
    await s.finish(0);
    expect(findQueue(join(dir, 'myrun'), { WANDB_DIR: join(dir, 'wd') }).dir).toBe(join(dir, 'wd', 'wandb', 'myrun'));
  });

  it('a refused key or an unreachable server ends the sync with a clear message', async () => {
    const runDir = await offlineRun(3);
    await expect(syncRun(runDir, { env: { WANDB_BASE_URL: server.url, WANDB_API_KEY: 'f'.repeat(40) }, home: dir }))
      .rejects.toThrow(`wandb sync: the server refused the API key (HTTP 401); check WANDB_API_KEY or ~/.netrc (machine 127.0.0.1:${server.port})`);
    server.fault = () => ({ status: 502 });
    await expect(syncRun(runDir, { env: { WANDB_BASE_URL: server.url, WANDB_API_KEY: GOOD_KEY }, home: dir, timeoutMs: 300, backoff: { minMs: 20, maxMs: 40 } }))
      .rejects.toThrow('did not answer within the timeout; nothing was sent');
  });

  it('says clearly when a folder holds no W&B records', async () => {
    await expect(syncRun(dir, { env: { WANDB_API_KEY: GOOD_KEY }, home: dir })).rejects.toThrow(/holds no W&B records \(no run.json in it or in its wandb\/ folder\)/);
  });
});

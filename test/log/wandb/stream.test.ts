/**
 * Online logging against a local fake W&B: a simulated training loop logs ~50 steps; the server
 * must end with exactly the local history.jsonl, line for line, however the server misbehaved,
 * and the loop's log() calls must stay fast throughout.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWandb, resolveWandbSettings, type MetricSink, type WandbOptions } from '../../../src/log/wandb/index.ts';
import { FakeWandb, GOOD_KEY, type Received } from './fake-server.ts';

const FAST: WandbOptions = {
  transmitIntervalMs: 40,
  heartbeatMs: 400,
  backoff: { minMs: 20, maxMs: 160 },
  requestTimeoutMs: 300,
  finishTimeoutMs: 8_000,
};
const CONFIG = { learning_rate: 3e-4, 'adapter.method': 'hilo', trainable_params: 12345 };

let server: FakeWandb;
let dir: string;
let messages: string[];

beforeEach(async () => {
  server = new FakeWandb();
  await server.start();
  dir = mkdtempSync(join(tmpdir(), 'hilo-wandb-'));
  messages = [];
});
afterEach(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

function sink(key = GOOD_KEY, opts: WandbOptions = {}, runDir = join(dir, 'run')): MetricSink {
  const settings = resolveWandbSettings(
    { mode: 'online', project: 'proj', entity: 'team', tags: ['t1'], group: 'g', notes: 'n' },
    { WANDB_API_KEY: key, WANDB_BASE_URL: server.url },
    dir,
  );
  return createWandb(settings, runDir, { config: CONFIG, log: (m) => messages.push(m), ...FAST, ...opts });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond` holds (polling), at most `ms`. */
async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
}

/**
 * A training loop stand-in: `stepMs` of "work" per step, loss/lr every step, eval metrics merged
 * into every 10th step, expert usage as a histogram and a table at step 25. Returns how long
 * each log() took and how long the loop ran.
 */
async function train(s: MetricSink, from: number, to: number, stepMs = 10, during?: (step: number) => Promise<void>) {
  const logMs: number[] = [];
  const t0 = performance.now();
  for (let step = from; step < to; step++) {
    await sleep(stepMs);
    const t = performance.now();
    s.log(step, { loss: 2 / (step + 1), lr: 3e-4, 'tokens/s': 1000 + step });
    if (step % 10 === 0) s.log(step, { 'eval/accuracy': step / 100 });
    if (step === 25) {
      s.log(step, {
        'router/layer0': { bins: [0, 1, 2, 3, 4], values: [0.4, 0.3, 0.2, 0.1] },
        'router/layer0_table': { columns: ['expert', 'share'], data: [[0, 0.4], [1, 0.3], [2, 0.2], [3, 0.1]] },
      });
    }
    logMs.push(performance.now() - t);
    await during?.(step);
  }
  return { logMs, loopMs: performance.now() - t0 };
}

/**
 * log() must not wait on the network: any wait would cost at least a request timeout (300 ms)
 * or a rate-limit pause (1 s). The bounds leave room for a loaded machine's scheduling hiccups.
 */
function expectFast(logMs: number[]) {
  const sorted = [...logMs].sort((a, b) => a - b);
  expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThan(2);
  expect(sorted[sorted.length - 1]).toBeLessThan(100);
}

function localHistory(runDir = join(dir, 'run')): string[] {
  return readFileSync(join(runDir, 'wandb', 'history.jsonl'), 'utf8').split('\n').filter(Boolean);
}

function theRun() {
  const runs = [...server.runs.values()];
  expect(runs).toHaveLength(1);
  return runs[0];
}

describe('online W&B logging', () => {
  it('logs a simulated run: history equals the local JSONL, config wrapped, summary, complete', async () => {
    const s = sink();
    const { logMs, loopMs } = await train(s, 0, 50);
    s.summary({ trainable_params: 12345, 'eval/best_accuracy': 0.4 });
    await s.finish(0);

    const run = theRun();
    const local = localHistory();
    expect(local).toHaveLength(50);
    expect(run.history).toEqual(local);
    const rows = local.map((l) => JSON.parse(l));
    expect(rows.map((r) => r._step)).toEqual([...Array(50).keys()]);
    for (const r of rows) {
      expect(typeof r._runtime).toBe('number');
      expect(r._timestamp).toBeGreaterThan(1.7e9);
    }
    expect(rows[10]).toMatchObject({ loss: 2 / 11, 'eval/accuracy': 0.1 }); // same-step calls merge into one row
    expect(rows[25]['router/layer0']).toEqual({ _type: 'histogram', bins: [0, 1, 2, 3, 4], values: [0.4, 0.3, 0.2, 0.1] });
    expect(rows[25]['router/layer0_table']._type).toBe('table');

    expect(JSON.parse(run.config!)).toEqual({
      learning_rate: { value: 3e-4 }, 'adapter.method': { value: 'hilo' }, trainable_params: { value: 12345 },
    });
    expect(run).toMatchObject({ displayName: 'dandy-sun-3', group: 'g', tags: ['t1'], notes: 'n', jobType: 'train' });
    expect(run.name).toMatch(/^[a-z0-9]{8}$/);
    const summary = JSON.parse(run.summary!);
    expect(summary).toMatchObject({ loss: 2 / 50, _step: 49, trainable_params: 12345, 'eval/best_accuracy': 0.4 });
    expect(run.complete).toBe(true);
    expect(run.exitcode).toBe(0);
    expect(run.rewrites).toBe(0);

    // Batched: at most one request per transmit interval, each offset continuing where the last ended.
    const streams = server.fileStreams().filter((r) => r.body.files?.['wandb-history.jsonl']);
    expect(streams.length).toBeGreaterThan(1);
    expect(streams.length).toBeLessThanOrEqual(Math.ceil(loopMs / FAST.transmitIntervalMs!) + 2);
    // (finish() flushes at once, so the last request is exempt from the pacing)
    for (let i = 1; i < streams.length - 1; i++) expect(streams[i].at - streams[i - 1].at).toBeGreaterThanOrEqual(FAST.transmitIntervalMs! - 5);
    let next = 0;
    for (const r of streams) {
      expect(r.body.files['wandb-history.jsonl'].offset).toBe(next);
      next += r.body.files['wandb-history.jsonl'].content.length;
    }
    const url = `${server.url}/team/proj/runs/${run.name}`;
    expect(messages.filter((m) => m.includes(url))).toHaveLength(2); // at start and at the end
    expectFast(logMs);
  });

  it('survives 500s, 429 with RateLimit-Reset and hung requests: nothing lost or duplicated, loop not held up', async () => {
    let n = 0;
    let rateLimitedAt = 0;
    server.fault = (r: Received) => {
      if (!r.path.endsWith('/file_stream')) return null;
      n++;
      if (n <= 3) return { status: 500 };
      if (n === 4) {
        rateLimitedAt = r.at;
        return { status: 429, headers: { 'RateLimit-Reset': '1', 'RateLimit-Remaining': '0' } };
      }
      if (n === 5 || n === 6) return 'apply-then-hang'; // the lines land, the answer never comes
      if (n === 7) return 'hang';
      return null;
    };
    const s = sink();
    const { logMs } = await train(s, 0, 50, 20);
    await s.finish(3);

    const run = theRun();
    expect(run.history).toEqual(localHistory());
    expect(run.history).toHaveLength(50);
    expect(run.rewrites).toBeGreaterThan(0); // lines whose answer was lost were re-sent...
    expect(run.rewritesDiffering).toBe(0); // ...at the same offsets, with the same text
    expect(server.gaps).toBe(0);
    expect(run.complete).toBe(true);
    expect(run.exitcode).toBe(3);
    expect(n).toBeGreaterThanOrEqual(8); // every injected fault was met
    const afterLimit = server.fileStreams().find((r) => r.at > rateLimitedAt)!;
    expect(afterLimit.at - rateLimitedAt).toBeGreaterThanOrEqual(950); // RateLimit-Reset: 1 s honoured
    expect(messages.filter((m) => m.includes('retrying with backoff'))).toHaveLength(1);
    expectFast(logMs);
    // The failures cost the server seconds; they cost the loop only its own log() calls.
    expect(logMs.reduce((a, b) => a + b, 0)).toBeLessThan(150);
  });

  it('the server goes away and comes back on the same port: every line arrives exactly once', async () => {
    const s = sink();
    const { logMs } = await train(s, 0, 50, 15, async (step) => {
      if (step === 12) await server.stop();
      if (step === 38) await server.start();
    });
    await s.finish(0);
    const run = theRun();
    expect(run.history).toEqual(localHistory());
    expect(run.history).toHaveLength(50);
    expect(run.rewritesDiffering).toBe(0);
    expect(run.complete).toBe(true);
    expect(messages.filter((m) => m.includes('retrying with backoff'))).toHaveLength(1); // it was really down
    expect(messages.filter((m) => m.includes('answers again'))).toHaveLength(1);
    expectFast(logMs);
  });

  it('a restarted process resumes the queued lines from disk', async () => {
    await server.stop();
    const first = sink(GOOD_KEY, { finishTimeoutMs: 300 });
    await train(first, 0, 20, 2);
    await first.finish(1); // server down: lines stay queued, the user is told to sync
    expect(messages.some((m) => m.includes('hilo wandb sync'))).toBe(true);
    await server.start();
    const second = sink(GOOD_KEY, { maxRequestBytes: 600 }); // small requests: the backlog goes out in pieces
    await train(second, 20, 30, 2);
    await second.finish(0);
    const run = theRun();
    expect(run.history).toEqual(localHistory());
    expect(run.history.map((l) => JSON.parse(l)._step)).toEqual([...Array(30).keys()]);
    expect(run.exitcode).toBe(0);
    const pieces = server.fileStreams().map((r) => r.body.files?.['wandb-history.jsonl']).filter(Boolean);
    expect(pieces.length).toBeGreaterThanOrEqual(4);
    expect(pieces.map((h) => h.offset)).toEqual(pieces.map((_, i) => pieces.slice(0, i).reduce((n, h) => n + h.content.length, 0)));
  });

  it('sends an empty heartbeat when idle, and nothing faster than the transmit interval', async () => {
    const s = sink(GOOD_KEY, { heartbeatMs: 100, transmitIntervalMs: 60 });
    s.log(0, { loss: 1 });
    s.log(1, { loss: 0.5 });
    await sleep(450);
    const streams = server.fileStreams();
    expect(streams.filter((r) => JSON.stringify(r.body) === '{}').length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < streams.length; i++) expect(streams[i].at - streams[i - 1].at).toBeGreaterThanOrEqual(55);
    await s.finish(0);
    expect(theRun().history).toEqual(localHistory());
  });

  it('a row waiting for more values goes out after a transmit interval; late values for its step follow in a row of their own', async () => {
    const s = sink();
    s.log(0, { loss: 1 });
    await until(() => (server.runs.size === 1 && theRun().history.length > 0));
    expect(theRun().history.map((l) => JSON.parse(l))).toMatchObject([{ _step: 0, loss: 1 }]);
    s.log(0, { 'eval/acc': 0.5 });
    s.log(1, { loss: 0.5 });
    await s.finish(0);
    expect(theRun().history).toEqual(localHistory());
    expect(theRun().history.map((l) => JSON.parse(l))).toMatchObject([{ _step: 0, loss: 1 }, { _step: 0, 'eval/acc': 0.5 }, { _step: 1, loss: 0.5 }]);
  });

  it('WANDB_DIR moves the queue out of the run folder', async () => {
    const settings = resolveWandbSettings({ mode: 'offline' }, { WANDB_DIR: join(dir, 'wd') }, dir);
    const s = createWandb(settings, join(dir, 'myrun'), { log: () => {} });
    s.log(0, { loss: 1 });
    await s.finish(0);
    expect(readFileSync(join(dir, 'wd', 'wandb', 'myrun', 'history.jsonl'), 'utf8')).toMatch(/^\{"loss":1,"_step":0,/);
  });

  it('a refused API key is reported once; the run goes on with complete local logs', async () => {
    const s = sink('f'.repeat(40));
    const { logMs } = await train(s, 0, 30, 5);
    await s.finish(0);
    expect(messages.filter((m) => m.includes('refused the API key'))).toHaveLength(1);
    expect(messages.find((m) => m.includes('refused'))).toContain('HTTP 401');
    expect(server.fileStreams()).toHaveLength(0);
    expect(server.runs.size).toBe(0);
    const local = localHistory();
    expect(local.map((l) => JSON.parse(l)._step)).toEqual([...Array(30).keys()]);
    expectFast(logMs);
  });
});

/** The sink's row rules, offline (no server): merging, forward-only steps, bad values, disabled mode. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createWandb, noopSink, resolveWandbSettings } from '../../../src/log/wandb/index.ts';
import { fromWandbJson } from '../../../src/log/wandb/encode.ts';

const dir = mkdtempSync(join(tmpdir(), 'hilo-wandb-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const offline = resolveWandbSettings({ mode: 'offline', project: 'p' }, { NETRC: '/nonexistent' }, dir);
const rows = (runDir: string) => readFileSync(join(runDir, 'wandb', 'history.jsonl'), 'utf8').split('\n').filter(Boolean).map(fromWandbJson);

describe('MetricSink rows', () => {
  it('merges same-step calls, skips steps that go back (warning once), encodes NaN, keeps bad tables out', async () => {
    const runDir = join(dir, 'a');
    const messages: string[] = [];
    const s = createWandb(offline, runDir, { log: (m) => messages.push(m) });
    s.log(0, { loss: 2 });
    s.log(0, { 'eval/acc': 0.5 });
    s.log(5, { loss: NaN });
    s.log(3, { loss: 9 });
    s.log(4, { loss: 9 });
    s.log(7, { loss: 1, bad: { columns: ['a'], data: [[1, 2]] } });
    s.log(8, { loss: 0.5 });
    await s.finish(0);
    const r = rows(runDir);
    expect(r.map((x) => x._step)).toEqual([0, 5, 8]);
    expect(r[0]).toMatchObject({ loss: 2, 'eval/acc': 0.5 });
    expect(r[1].loss).toBeNaN();
    expect(readFileSync(join(runDir, 'wandb', 'history.jsonl'), 'utf8')).toContain('"loss":NaN');
    expect(messages.filter((m) => m.includes('W&B steps only go forward'))).toHaveLength(1);
    expect(messages.filter((m) => m.includes('wandb metric "bad": a table needs'))).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(runDir, 'wandb', 'state.json'), 'utf8'))).toMatchObject({ historyAcked: 0, exitCode: 0 });
    expect(messages.at(-1)).toContain('hilo wandb sync');
  });

  it('re-opening the run folder continues the run: same id, steps and runtime go on', async () => {
    const runDir = join(dir, 'b');
    const first = createWandb(offline, runDir, { log: () => {} });
    first.log(0, { loss: 1 });
    first.log(1, { loss: 0.9 });
    await first.finish(1);
    const id = JSON.parse(readFileSync(join(runDir, 'wandb', 'run.json'), 'utf8')).runId;
    const second = createWandb(offline, runDir, { log: () => {} });
    second.log(1, { loss: 5 }); // already logged by the first process: skipped
    second.log(2, { loss: 0.8 });
    await second.finish(0);
    const r = rows(runDir);
    expect(r.map((x) => x._step)).toEqual([0, 1, 2]);
    expect(r[2]._runtime).toBeGreaterThanOrEqual(r[1]._runtime);
    expect(JSON.parse(readFileSync(join(runDir, 'wandb', 'run.json'), 'utf8')).runId).toBe(id);
  });

  it('a different WANDB_RUN_ID sets the old records aside', async () => {
    const runDir = join(dir, 'c');
    const a = createWandb({ ...offline, runId: 'runaaaaa' }, runDir, { log: () => {} });
    a.log(0, { loss: 1 });
    await a.finish(0);
    const b = createWandb({ ...offline, runId: 'runbbbbb' }, runDir, { log: () => {} });
    b.log(0, { loss: 2 });
    await b.finish(0);
    expect(rows(runDir)[0].loss).toBe(2);
    expect(readFileSync(join(runDir, 'wandb-runaaaaa', 'history.jsonl'), 'utf8')).toContain('"loss":1,');
  });

  it('disabled mode is a no-op sink that writes nothing', async () => {
    const s = createWandb(resolveWandbSettings({ mode: 'disabled' }, {}, dir), join(dir, 'd'), {});
    expect(s).toBe(noopSink);
    s.log(0, { loss: 1 });
    await s.finish(0);
    expect(() => readFileSync(join(dir, 'd', 'wandb', 'run.json'))).toThrow();
  });
});

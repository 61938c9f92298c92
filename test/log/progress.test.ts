import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MetricsFile } from '../../src/log/metrics.ts';
import { formatDuration, formatProgress } from '../../src/log/progress.ts';

describe('progress line', () => {
  it.each([
    [0, '00:00'], [59.4, '00:59'], [61, '01:01'], [3725, '1:02:05'], [NaN, '--:--'],
  ])('formatDuration(%s) = %s', (s, want) => expect(formatDuration(s)).toBe(want));

  it('shows step, loss, lr, tokens/s and ETA', () => {
    const line = formatProgress({ step: 50, total: 200, loss: 0.69314, lr: 3e-4, tokensPerSecond: 1234.4, elapsedSeconds: 30 }, 10);
    expect(line).toBe('[###.......] 50/200 loss 0.6931 lr 3.00e-4 1,234 tok/s 00:30<01:30');
  });
});

describe('MetricsFile', () => {
  it('appends lines and drops those past a resumed step', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-metrics-'));
    const m = new MetricsFile(dir);
    for (const step of [10, 20, 30]) m.append({ step, loss: step / 10 });
    m.truncateAfter(20);
    expect(m.read()).toEqual([{ step: 10, loss: 1 }, { step: 20, loss: 2 }]);
  });

  it('drops a line torn by a kill mid-append, and says which', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-metrics-'));
    const said: string[] = [];
    const m = new MetricsFile(dir, undefined, (msg) => said.push(msg));
    for (const step of [1, 2]) m.append({ step, loss: step });
    fs.appendFileSync(m.file, '{"step":3,"loss":0.6');
    m.truncateAfter(2);
    expect(m.read()).toEqual([{ step: 1, loss: 1 }, { step: 2, loss: 2 }]);
    expect(said).toEqual([`${m.file}:3: dropped a line that is not JSON (torn: the run was stopped while writing it): {"step":3,"loss":0.6`]);
    m.append({ step: 3, loss: 3 }); // the next record starts on its own line
    expect(m.read().map((r) => r.step)).toEqual([1, 2, 3]);
  });
});

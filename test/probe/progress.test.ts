import { describe, expect, it } from 'vitest';
import { clock, etaMs, progressLine, progressPrinter, type ProbeProgress } from '../../src/probe/progress.ts';

describe('probe progress', () => {
  it.each([
    [0, '0s'], [9_400, '9s'], [59_600, '1m00s'], [75_000, '1m15s'], [3_725_000, '1h02m05s'],
  ])('clock(%d) = %s', (ms, want) => expect(clock(ms)).toBe(want));

  it.each([
    [10_000, 0, 100, null], [10_000, 25, 100, 30_000], [10_000, 100, 100, 0], [10_000, 120, 100, 0],
  ])('etaMs(%d ms, %d of %d) = %s', (el, done, total, want) => expect(etaMs(el, done, total)).toBe(want));

  it.each([
    [{ done: 0, total: 112, elapsedMs: 500, etaMs: null }, 'alpha-hill: 0/112 matrices, 1s, estimating'],
    [{ done: 12, total: 112, elapsedMs: 75_000, etaMs: 400_000 }, 'alpha-hill: 12/112 matrices, 1m15s, about 6m40s left'],
    [{ done: 112, total: 112, elapsedMs: 600_000, etaMs: 0 }, 'alpha-hill: 112/112 matrices, 10m00s, done'],
  ])('%j', (p, want) => expect(progressLine('alpha-hill', p as ProbeProgress)).toBe(want));

  const fake = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream };
  };
  const steps: ProbeProgress[] = [1, 2, 3, 4].map((done) => ({ done, total: 4, elapsedMs: done * 6000, etaMs: (4 - done) * 6000 }));

  it('on a terminal: one line rewritten in place, ended at the last matrix', () => {
    const { out, stream } = fake(true);
    steps.forEach(progressPrinter('p', stream));
    expect(out).toEqual([
      '\rp: 1/4 matrices, 6s, about 18s left', '\rp: 2/4 matrices, 12s, about 12s left', '\rp: 3/4 matrices, 18s, about 6s left', '\rp: 4/4 matrices, 24s, done\n',
    ]);
  });

  it('in a log: a line every 10 s at most, and the last', () => {
    const { out, stream } = fake(false);
    steps.forEach(progressPrinter('p', stream));
    expect(out).toEqual(['p: 1/4 matrices, 6s, about 18s left\n', 'p: 3/4 matrices, 18s, about 6s left\n', 'p: 4/4 matrices, 24s, done\n']);
  });
});

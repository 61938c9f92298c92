/** The grid's progress line: cells done of all, failures, running cells, and the ETA from completed cells' times. */
import { describe, expect, it } from 'vitest';
import { etaSeconds, progressText } from '../../src/compare/progress.ts';

describe('etaSeconds', () => {
  it.each([
    // total, done, spent, jobs, eta
    [10, 0, [], 1, null], // nothing completed yet: no estimate
    [10, 4, [30, 50], 1, 240], // 6 left x mean 40 s
    [90, 10, [40, 40], 8, 400], // 80 left over 8 jobs = 10 rounds x 40 s
    [90, 85, [40], 8, 40], // 5 left, fewer than the jobs: one round
    [10, 10, [5], 2, 0],
  ])('total %i, done %i, spent %j, jobs %i -> %s', (total, done, spent, jobs, eta) => {
    expect(etaSeconds({ total, done, spent, jobs })).toBe(eta);
  });
});

describe('progressText', () => {
  it('says cells done of all cells, failures, running cells and the ETA', () => {
    expect(progressText({ total: 90, done: 12, failed: 1, running: 8, spent: [30, 50], jobs: 8 })).toBe('12/90 cells done (1 failed), 8 running · ETA 06:40');
    expect(progressText({ total: 4, done: 2, failed: 0, running: 0, spent: [], jobs: 1 })).toBe('2/4 cells done');
  });
});

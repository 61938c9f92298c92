import { describe, expect, it } from 'vitest';
import { flattenCandidates, pickAnswers } from '../../src/data/score.ts';
import type { ScoringItem } from '../../src/data/encode.ts';

const seq = (n: number) => ({ inputIds: [n], labels: [n] });
const items: ScoringItem[] = [
  { candidates: [seq(1), seq(2)], answer: 1 },
  { candidates: [seq(3), seq(4), seq(5)], answer: 0 },
  { candidates: [seq(6), seq(7)], answer: 0 },
];

describe('candidate scoring', () => {
  it('flattens items in order with their owners', () => {
    const rows = flattenCandidates(items);
    expect(rows.sequences.map((s) => s.inputIds[0])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(rows.item).toEqual([0, 0, 1, 1, 1, 2, 2]);
    expect(rows.choice).toEqual([0, 1, 0, 1, 2, 0, 1]);
  });

  it('picks the highest summed log-likelihood; ties go to the first candidate', () => {
    const rows = flattenCandidates(items);
    const r = pickAnswers(items, rows, [-3, -1, -2, -0.5, -9, -4, -4]);
    expect(r.predictions).toEqual([1, 1, 0]);
    expect(r.correct).toBe(2);
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
    expect(() => pickAnswers(items, rows, [0, 0])).toThrow(/2 scores for 7/);
  });

  it('reports the cross-entropy over each item\'s candidates at its answer (the choices loss)', () => {
    const rows = flattenCandidates(items);
    const r = pickAnswers(items, rows, [-3, -1, -2, -0.5, -9, -4, -4]);
    // by hand: -log softmax(scores)[answer] per item, averaged
    const ce = (s: number[], a: number) => Math.log(s.reduce((t, v) => t + Math.exp(v), 0)) - s[a];
    const want = (ce([-3, -1], 1) + ce([-2, -0.5, -9], 0) + ce([-4, -4], 0)) / 3;
    expect(r.choiceLoss).toBeCloseTo(want, 12);
    expect(ce([-4, -4], 0)).toBeCloseTo(Math.log(2), 12); // a tie costs log 2
    // scores far below zero (long candidates) must not underflow
    expect(pickAnswers(items, rows, [-3000, -3001, -5000, -5002, -5001, -7000, -7000]).choiceLoss).toBeCloseTo(
      (ce([0, -1], 1) + ce([0, -2, -1], 0) + ce([0, 0], 0)) / 3, 9);
  });
});

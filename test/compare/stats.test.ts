/**
 * The comparison's statistics against values computed by hand (A&S series, enumerated sign
 * patterns) and checked with scipy.stats (t.ppf, t.sf, ttest_rel, wilcoxon exact), including
 * the edge cases a grid meets: one seed, equal values, all-zero differences.
 */
import { describe, expect, it } from 'vitest';
import { meanInterval, pairedDifference, tCentralMass, tCritical, tTwoSidedP, wilcoxonSignedRankP } from '../../src/compare/stats.ts';

describe('Student t', () => {
  it.each([
    // df, t(0.975, df) from scipy.stats.t.ppf
    [1, 12.706204736174694], [2, 4.302652729749462], [3, 3.1824463052837078], [4, 2.7764451051977934],
    [5, 2.5705818356363146], [8, 2.306004135204166], [29, 2.045229642132703], [100, 1.9839715185235518],
  ])('the 95%% critical value at df %i is %f', (df, t) => {
    expect(tCritical(0.95, df)).toBeCloseTo(t, 9);
  });

  it.each([
    // t, df, two-sided p: df 1 is 1 - 2 atan(t)/π; df 2 is 1 - t / sqrt(2 + t²); the rest from scipy 2 * t.sf
    [1.0, 1, 0.5], [2.0, 2, 1 - 2 / Math.sqrt(6)], [2.5, 3, 0.08770664700806556], [-1.7, 8, 0.1275528697032343],
    [3.1, 29, 0.00427818237355557], [0, 7, 1], [Infinity, 4, 0],
  ])('P(|T| >= |%f|) at df %i is %f', (t, df, p) => {
    expect(tTwoSidedP(t, df)).toBeCloseTo(p, 12);
  });

  it('refuses a df that is not a whole number >= 1', () => {
    expect(() => tCentralMass(1, 0)).toThrow('df must be an integer >= 1, got 0');
    expect(() => tCentralMass(1, 2.5)).toThrow('got 2.5');
  });
});

describe('meanInterval', () => {
  it.each([
    // values, mean, std, low, high (low/high = mean ∓ t(.975, n-1) std / sqrt(n))
    [[], null, null, null, null],
    [[0.7], 0.7, null, null, null], // one seed: no spread, no interval
    [[0.6, 0.6, 0.6], 0.6, 0, 0.6, 0.6], // zero variance: a zero-width interval
    [[0.7, 0.8], 0.75, 0.07071067811865482, 0.11468976319126467, 1.3853102368087353], // 12.706 · 0.0707 / √2
    [[0.75, 0.8, 0.85], 0.8, 0.05, 0.6757931144124835, 0.9242068855875164],
    [[0.61, 0.65, 0.7, 0.66], 0.655, 0.036968455021364706, 0.5961749384526055, 0.7138250615473946],
  ])('%j', (xs, mean, std, low, high) => {
    const iv = meanInterval(xs);
    expect(iv.n).toBe(xs.length);
    for (const [got, want] of [[iv.mean, mean], [iv.std, std], [iv.low, low], [iv.high, high]]) {
      if (want === null) expect(got).toBeNull();
      else expect(got).toBeCloseTo(want, 12);
    }
  });
});

describe('wilcoxonSignedRankP', () => {
  it.each([
    // all 3 positive: W+ = 6 is 1 of 8 sign patterns, two-sided 2/8
    [[1, 2, 3], 0.25],
    // the zero is dropped; ranks 2, 1, 4, 3 -> W+ = 9; W+ >= 9 in 2 of 16 patterns -> 0.25 (scipy: 0.25)
    [[0.04, 0, -0.01, 0.06, 0.05], 0.25],
    // no ties: W- = 7 over ranks 1..8, scipy exact 0.1484375
    [[1, 2, 3, 4, 5, 6, -7, 8], 0.1484375],
    // ties share mid-ranks 1.5, 3.5, 5.5: W+ = 29; enumerating the 256 patterns gives P(W+ >= 29) = 20/256
    [[1, -1, 2, 2, 3, -3, 4, 5], 0.15625],
    [[-2], 1],
  ])('%j -> %f', (d, p) => {
    expect(wilcoxonSignedRankP(d)).toBeCloseTo(p, 12);
  });

  it('is null when no difference is non-zero', () => {
    expect(wilcoxonSignedRankP([0, 0])).toBeNull();
    expect(wilcoxonSignedRankP([])).toBeNull();
  });
});

describe('pairedDifference', () => {
  it('matches scipy ttest_rel and wilcoxon on five pairs', () => {
    const r = pairedDifference([0.70, 0.72, 0.68, 0.80, 0.75], [0.66, 0.72, 0.69, 0.74, 0.70]);
    expect(r.n).toBe(5);
    expect(r.mean).toBeCloseTo(0.028, 12);
    expect(r.std).toBeCloseTo(0.031144823004794858, 12);
    expect(r.t).toBeCloseTo(2.0102828441296694, 10);
    expect(r.p).toBeCloseTo(0.11476192246455873, 10);
    const half = 2.7764451051977934 * 0.031144823004794858 / Math.sqrt(5);
    expect(r.low).toBeCloseTo(0.028 - half, 10);
    expect(r.high).toBeCloseTo(0.028 + half, 10);
    expect([r.wins, r.ties, r.losses]).toEqual([3, 1, 1]);
    expect(r.wilcoxon_p).toBeCloseTo(0.25, 12);
  });

  it('counts wins the metric\'s way: lower perplexity wins', () => {
    const r = pairedDifference([10, 12, 9], [11, 12, 10], false);
    expect([r.wins, r.ties, r.losses]).toEqual([2, 1, 0]);
    expect(r.mean).toBeCloseTo(-2 / 3, 12);
  });

  it.each([
    // method, baseline, t, p, low, high
    [[0.7], [0.6], null, null, null, null], // one pair: a difference but no test
    [[0.7, 0.8], [0.7, 0.8], null, 1, 0, 0], // identical: no spread, nothing to see
    [[0.75, 0.5, 0.25], [0.5, 0.25, 0], null, 0, 0.25, 0.25], // a constant gap (exact in binary): zero spread, p 0
  ])('edge case %j vs %j', (a, b, t, p, low, high) => {
    const r = pairedDifference(a, b);
    expect(r.t).toBe(t);
    expect(r.p).toBe(p);
    if (low === null) expect([r.low, r.high]).toEqual([null, null]);
    else {
      expect(r.low).toBeCloseTo(low, 12);
      expect(r.high).toBeCloseTo(high!, 12);
    }
  });

  it('refuses lists of different lengths', () => {
    expect(() => pairedDifference([1, 2], [1])).toThrow('2 method values vs 1 baseline values');
  });
});

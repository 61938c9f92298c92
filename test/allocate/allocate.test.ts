import { describe, expect, it } from 'vitest';
import { proportionalExperts, topKPerLayer, uniformExperts } from '../../src/allocate/experts.ts';
import { depthGroups, parsePattern, scoreGroups, spreadOverLayers } from '../../src/allocate/groups.ts';
import { groupRanks, uniformRanks } from '../../src/allocate/ranks.ts';

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);

describe('depth groups', () => {
  it.each([
    [32, 4, [8, 8, 8, 8]],
    [5, 4, [2, 1, 1, 1]], // L % G != 0: larger groups first
    [10, 4, [3, 2, 3, 2]],
    [2, 4, [1, 0, 1, 0]], // fewer layers than groups: some empty
    [7, 1, [7]],
  ])('L=%i G=%i -> group sizes %j', (L, G, sizes) => {
    const g = depthGroups(L, G);
    expect(Array.from({ length: G }, (_, i) => g.filter((x) => x === i).length)).toEqual(sizes);
    for (let l = 1; l < L; l++) expect(g[l]).toBeGreaterThanOrEqual(g[l - 1]); // contiguous
  });

  it('score groups follow score order, ties go shallow-first, sizes as by depth', () => {
    expect(scoreGroups([0, 0.25, 0.5, 0.75, 1], 4)).toEqual(depthGroups(5, 4));
    expect(scoreGroups([5, 1, 4, 2, 3], 4)).toEqual([3, 0, 2, 0, 1]);
    expect(scoreGroups([1, 1, 1, 1], 2)).toEqual([0, 0, 1, 1]);
  });

  it.each([
    ['2468', [2, 4, 6, 8]],
    ['8642', [8, 6, 4, 2]],
    ['2662', [2, 6, 6, 2]],
    ['5555', [5, 5, 5, 5]],
    ['10, 8,6,4', [10, 8, 6, 4]],
  ])('pattern %s', (p, want) => expect(parsePattern(p)).toEqual(want));

  it.each(['', '2a68', '2068', '1,,2', '-1'])('rejects pattern %j naming the field', (p) => {
    expect(() => parsePattern(p)).toThrow(/recipe\.adapter\.experts\.pattern: got .*allowed: a digit string/);
  });

  it('spreads a pattern over depth groups (L=5, "2468" -> 2,2,4,6,8)', () => {
    expect(spreadOverLayers([2, 4, 6, 8], depthGroups(5, 4))).toEqual([2, 2, 4, 6, 8]);
  });
});

describe('proportional experts (AlphaLoRA)', () => {
  it.each([
    // scores, total, beta, expected
    [[1, 2, 3, 4], 10, 1, [1, 2, 3, 4]],
    [[1, 2, 3, 4], 10, 2, [1, 1, 3, 5]], // quotas .33 1.33 3 5.33
    [[1, 1, 1, 1, 1], 7, 2.5, [1, 1, 1, 2, 2]], // ties when adding: deeper first
    [[1, 1, 1, 1], 6, 1, [1, 1, 2, 2]], // round(1.5)=2 each = 8 > 6: ties when taking: shallower first
    [[0, 0, 0, 10], 6, 1, [1, 1, 1, 3]], // at least one each, surplus taken from the only n > 1
    [[0, 0, 0, 0], 8, 2.5, [2, 2, 2, 2]], // all-zero scores = equal scores
    [[3], 5, 2.5, [5]],
  ])('scores %j T=%i beta=%d -> %j', (scores, T, beta, want) => {
    expect(proportionalExperts(scores, T, beta)).toEqual(want);
  });

  it('sums to T exactly, gives every layer at least one, and is deterministic (table of pseudo-random cases)', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let c = 0; c < 300; c++) {
      const L = 1 + Math.floor(rand() * 40);
      const T = L + Math.floor(rand() * 8 * L);
      const beta = [0, 1, 2.5, 4][c % 4];
      const scores = Array.from({ length: L }, () => (rand() < 0.2 ? 2 : 1 + 4 * rand())); // some exact ties
      const n = proportionalExperts(scores, T, beta);
      expect(sum(n)).toBe(T);
      expect(Math.min(...n)).toBeGreaterThanOrEqual(1);
      expect(proportionalExperts(scores, T, beta)).toEqual(n);
      // a higher score never gets fewer experts than a lower one (beta = 0 ignores scores)
      if (beta > 0) for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) if (scores[i] > scores[j]) expect(n[i]).toBeGreaterThanOrEqual(n[j]);
    }
  });

  it('defaults T = 5L on depth scores of 32 layers: deeper layers get more', () => {
    const depth = Array.from({ length: 32 }, (_, l) => l / 31);
    const n = proportionalExperts(depth, 160, 2.5);
    expect(sum(n)).toBe(160);
    expect(n[0]).toBe(1);
    for (let l = 1; l < 32; l++) expect(n[l]).toBeGreaterThanOrEqual(n[l - 1]);
  });

  it.each([
    [[1, 2], 1, 2.5, /recipe\.adapter\.experts\.total: got 1; allowed: an integer >= 2/],
    [[1, 2], 4.5, 2.5, /experts\.total: got 4\.5/],
    [[1, 2], 4, -1, /experts\.beta: got -1; allowed: a finite number >= 0/],
    [[1, -2], 4, 1, /scores\[1\]: got -2; allowed: finite scores >= 0/],
    [[1, NaN], 4, 1, /scores\[1\]: got null/],
  ])('rejects scores %j T=%d beta=%d', (scores, T, beta, msg) => {
    expect(() => proportionalExperts(scores, T, beta)).toThrow(msg);
  });
});

describe('ranks and top-k', () => {
  it('HILO rule 2 -> 8 over 4 depth groups of 32 layers gives "2468"', () => {
    const r = groupRanks(depthGroups(32, 4), 4, 2, 8);
    expect(r).toEqual([...Array(8).fill(2), ...Array(8).fill(4), ...Array(8).fill(6), ...Array(8).fill(8)]);
  });

  it.each([
    [1, 8, 4, [1, 3, 6, 8]], // 1 + 7g/3 rounded
    [4, 4, 4, [4, 4, 4, 4]],
    [2, 8, 1, [8, 8, 8, 8]], // one group takes r_max
  ])('r %i..%i over %i groups', (lo, hi, G, want) => {
    expect(groupRanks(depthGroups(4, G), G, lo, hi)).toEqual(want);
  });

  it('rejects bad rank ranges', () => {
    expect(() => groupRanks([0], 4, 8, 2)).toThrow('recipe.adapter.rank.min: got 8; allowed: at most rank.max (2)');
    expect(() => groupRanks([0], 4, 0, 2)).toThrow('recipe.adapter.rank.min: got 0; allowed: an integer >= 1');
    expect(() => uniformRanks(3, 2.5)).toThrow('recipe.adapter.rank.r: got 2.5');
    expect(() => uniformExperts(3, 0)).toThrow('recipe.adapter.experts.per_layer: got 0');
  });

  it('top-k per layer is min(k, n_l)', () => {
    expect(topKPerLayer([1, 2, 3, 8], 2)).toEqual([1, 2, 2, 2]);
    expect(() => topKPerLayer([1], 0)).toThrow('recipe.adapter.top_k: got 0; allowed: an integer >= 1');
  });
});

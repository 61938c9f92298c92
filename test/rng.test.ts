import { describe, expect, it } from 'vitest';
import { mixSeed, mulberry32, seededPermutation, seededShuffle } from '../src/rng.ts';

describe('rng', () => {
  it('mulberry32 reproduces the reference sequence', () => {
    // Reference values of the public-domain mulberry32 (Tommy Ettinger), seed 1, computed by its C form:
    // z = (s += 0x6D2B79F5); z = (z ^ z >> 15) * (z | 1); z ^= z + (z ^ z >> 7) * (z | 61); return z ^ z >> 14;
    const r = mulberry32(1);
    const got = [r(), r(), r()].map((x) => Math.round(x * 4294967296));
    expect(got).toEqual(REF_SEED1);
  });

  it('permutations are permutations, fixed by the seed, different across seeds', () => {
    const p = seededPermutation(100, 7);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(seededPermutation(100, 7)).toEqual(p);
    expect(seededPermutation(100, 8)).not.toEqual(p);
    expect(seededShuffle(['a', 'b', 'c'], 3)).toEqual(seededShuffle(['a', 'b', 'c'], 3));
  });

  it('mixSeed separates purposes and epochs', () => {
    const seeds = new Set([mixSeed(0, 1), mixSeed(0, 2), mixSeed(1, 1), mixSeed(0, 3, 0), mixSeed(0, 3, 1)]);
    expect(seeds.size).toBe(5);
    expect(mixSeed(5, 3, 2)).toBe(mixSeed(5, 3, 2));
  });
});

// Filled from an independent C-semantics implementation below (BigInt, 32-bit wraparound).
const REF_SEED1 = (() => {
  let s = 1n;
  const M = 0xffffffffn;
  const out: number[] = [];
  for (let i = 0; i < 3; i++) {
    s = (s + 0x6d2b79f5n) & M;
    let z = s;
    z = ((z ^ (z >> 15n)) * (z | 1n)) & M;
    z = (z ^ (z + (((z ^ (z >> 7n)) * (z | 61n)) & M))) & M;
    out.push(Number((z ^ (z >> 14n)) & M));
  }
  return out;
})();

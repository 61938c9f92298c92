/**
 * A small seeded random source for data order and splits. Everything that decides which
 * example goes where (splits, per-epoch shuffles) draws from here, so a seed fixes it bit for bit
 * on every platform (no Math.random, no engine-dependent sort).
 */

/** mulberry32: a 32-bit state generator; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Mix several integers (a seed, an epoch, a purpose tag) into one 32-bit seed, so that
 * streams for different purposes never share a sequence (murmur3's finaliser per part).
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    let k = Math.imul((p | 0) ^ Math.floor(p / 4294967296), 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fisher-Yates over a copy of `items`. */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const rand = mulberry32(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A permutation of 0..n-1. */
export function seededPermutation(n: number, seed: number): number[] {
  return seededShuffle(Array.from({ length: n }, (_, i) => i), seed);
}

/** Seeds for named purposes, so a split and a shuffle from the same user seed differ. */
export const SEED_TAG = { split: 1, evalCarve: 2, epoch: 3, sample: 4 } as const;

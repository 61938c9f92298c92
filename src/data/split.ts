/**
 * Seeded splits. Stratified splits take round(n_label * fraction) of every label into the held-out
 * part, so class balance is the same on both sides and the sizes are a function of the label
 * counts alone. Both parts keep the source order (order for training comes from the batcher).
 */
import { mixSeed, SEED_TAG, seededShuffle } from '../rng.ts';

export interface Split<T> {
  kept: T[];
  heldOut: T[];
}

/** Hold out round(fraction * n) items chosen by the seed. */
export function randomSplit<T>(items: readonly T[], fraction: number, seed: number): Split<T> {
  return stratifiedSplit(items, () => '', fraction, seed);
}

/** Hold out round(fraction * n_label) items of each label, chosen by the seed. */
export function stratifiedSplit<T>(items: readonly T[], labelOf: (x: T) => string, fraction: number, seed: number): Split<T> {
  const byLabel = indicesByLabel(items, labelOf);
  const held = new Set<number>();
  // Labels in sorted order so the draw does not depend on which label came first in the file.
  [...byLabel.keys()].sort().forEach((label, k) => {
    const idx = byLabel.get(label)!;
    const take = Math.round(idx.length * fraction);
    for (const i of seededShuffle(idx, mixSeed(seed, SEED_TAG.split, k)).slice(0, take)) held.add(i);
  });
  return { kept: items.filter((_, i) => !held.has(i)), heldOut: items.filter((_, i) => held.has(i)) };
}

/** Split groups (e.g. speeches) rather than items, so no group lands on both sides. */
export function groupSplit<T>(items: readonly T[], groupOf: (x: T) => string, groupLabel: (g: string) => string, fraction: number, seed: number): Split<T> & { heldGroups: string[] } {
  const groups = [...new Set(items.map(groupOf))].sort();
  const { heldOut } = stratifiedSplit(groups, groupLabel, fraction, seed);
  const heldSet = new Set(heldOut);
  return {
    kept: items.filter((x) => !heldSet.has(groupOf(x))),
    heldOut: items.filter((x) => heldSet.has(groupOf(x))),
    heldGroups: heldOut,
  };
}

/** Keep at most `max` items per label, chosen by the seed, in source order. */
export function capPerLabel<T>(items: readonly T[], labelOf: (x: T) => string, max: number, seed: number): T[] {
  const byLabel = indicesByLabel(items, labelOf);
  const keep = new Set<number>();
  [...byLabel.keys()].sort().forEach((label, k) => {
    for (const i of seededShuffle(byLabel.get(label)!, mixSeed(seed, SEED_TAG.sample, k)).slice(0, max)) keep.add(i);
  });
  return items.filter((_, i) => keep.has(i));
}

function indicesByLabel<T>(items: readonly T[], labelOf: (x: T) => string): Map<string, number[]> {
  const byLabel = new Map<string, number[]>();
  items.forEach((x, i) => {
    const l = labelOf(x);
    if (!byLabel.has(l)) byLabel.set(l, []);
    byLabel.get(l)!.push(i);
  });
  return byLabel;
}

/** Count of each label, in first-seen order. */
export function labelCounts<T>(items: readonly T[], labelOf: (x: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const x of items) counts[labelOf(x)] = (counts[labelOf(x)] ?? 0) + 1;
  return counts;
}

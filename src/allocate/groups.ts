/**
 * Depth groups and pattern strings. MoLA and HILO describe allocations over G contiguous groups
 * of layers ("2468" = 2 experts in the first quarter, ..., 8 in the last); these helpers map a
 * per-group value onto layers, either by depth or by score order.
 */
import { fieldError } from '../errors.ts';

/**
 * Group of layer l (0-based) when L layers are cut into G contiguous groups: floor(G*l/L).
 * Group g therefore holds layers ceil(g*L/G) .. ceil((g+1)*L/G)-1: sizes differ by at most one
 * and, when L % G != 0, the larger groups come first (L=5, G=4 gives sizes 2,1,1,1). With fewer
 * layers than groups some groups are empty (L=2, G=4: layers in groups 0 and 2).
 */
export function depthGroup(l: number, numLayers: number, groups: number): number {
  return Math.floor((groups * l) / numLayers);
}

export function depthGroups(numLayers: number, groups: number): number[] {
  return Array.from({ length: numLayers }, (_, l) => depthGroup(l, numLayers, groups));
}

/**
 * Groups by score instead of depth: layers ranked by ascending score (ties: the shallower layer
 * ranks lower), then the ranking is cut exactly as depth is, so the group sizes match depthGroups.
 * Scores that rise with depth therefore give back depthGroups.
 */
export function scoreGroups(scores: readonly number[], groups: number): number[] {
  const L = scores.length;
  const order = scores.map((s, l) => ({ s, l })).sort((a, b) => a.s - b.s || a.l - b.l);
  const out = new Array<number>(L);
  order.forEach(({ l }, position) => {
    out[l] = depthGroup(position, L, groups);
  });
  return out;
}

/**
 * Per-group counts from a pattern: a digit string ('2468', one group per digit) or, for counts
 * of 10 and more, a comma-separated list ('10,8,6,4'). Every count must be a positive integer.
 */
export function parsePattern(pattern: string, field = 'recipe.adapter.experts.pattern'): number[] {
  const allowed = 'a digit string such as "2468" or a comma list such as "10,8,6,4" (every count >= 1)';
  const parts = pattern.includes(',') ? pattern.split(',').map((s) => s.trim()) : [...pattern.trim()];
  const counts = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1)) throw fieldError(field, pattern, allowed);
  return counts;
}

/** Value per layer from a value per group. */
export function spreadOverLayers(perGroup: readonly number[], groupOfLayer: readonly number[]): number[] {
  return groupOfLayer.map((g) => perGroup[g]);
}

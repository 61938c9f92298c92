/**
 * LoRA rank per layer. HILO's rule (reconstructed, see shared/reference/methods.md §1.2):
 * r_l = r_min + (r_max - r_min) * g(l) / (G - 1), with g(l) the layer's group (by depth or by
 * score), rounded to an integer. Defaults 2 -> 8 over 4 groups give "2468".
 */
import { fieldError } from '../errors.ts';

function checkRank(field: string, r: number): void {
  if (!Number.isInteger(r) || r < 1) throw fieldError(field, r, 'an integer >= 1');
}

/** Ranks from each layer's group index; a single group takes r_max. */
export function groupRanks(groupOfLayer: readonly number[], groups: number, rMin: number, rMax: number, field = 'recipe.adapter.rank'): number[] {
  checkRank(`${field}.min`, rMin);
  checkRank(`${field}.max`, rMax);
  if (rMin > rMax) throw fieldError(`${field}.min`, rMin, `at most rank.max (${rMax})`);
  if (groups <= 1) return groupOfLayer.map(() => rMax);
  return groupOfLayer.map((g) => Math.round(rMin + ((rMax - rMin) * g) / (groups - 1)));
}

export function uniformRanks(numLayers: number, r: number, field = 'recipe.adapter.rank.r'): number[] {
  checkRank(field, r);
  return new Array<number>(numLayers).fill(r);
}

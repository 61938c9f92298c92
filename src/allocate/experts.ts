/**
 * How many LoRA experts each layer gets. Pure functions of scores and a total.
 */
import { fieldError } from '../errors.ts';

/**
 * AlphaLoRA's allocation: n_l = round(T * s_l^beta / sum_k s_k^beta), at least 1 per layer, then
 * an integer fix-up so sum n_l = T exactly. The fix-up moves one expert at a time:
 * - too few: add to the layer furthest below its exact quota q_l (largest q_l - n_l);
 * - too many: take from the layer furthest above its quota (smallest q_l - n_l) among n_l > 1.
 * Ties go to the deeper layer when adding and to the shallower layer when taking away, following
 * MoLA's finding that higher layers need more experts, so equal scores give deeper-heavy plans.
 * All-zero scores (after the power) count as equal scores.
 */
export function proportionalExperts(scores: readonly number[], total: number, beta: number, field = 'recipe.adapter.experts'): number[] {
  const L = scores.length;
  if (L === 0) return [];
  if (!Number.isInteger(total) || total < L) {
    throw fieldError(`${field}.total`, total, `an integer >= ${L} (one expert per layer, ${L} layers)`);
  }
  if (!(beta >= 0) || !Number.isFinite(beta)) throw fieldError(`${field}.beta`, beta, 'a finite number >= 0');
  scores.forEach((s, l) => {
    if (!(s >= 0) || !Number.isFinite(s)) throw fieldError(`scores[${l}]`, s, 'finite scores >= 0');
  });
  const weights = scores.map((s) => s ** beta);
  const sum = weights.reduce((a, b) => a + b, 0);
  const quota = sum > 0 ? weights.map((w) => (total * w) / sum) : weights.map(() => total / L);
  const n = quota.map((q) => Math.max(1, Math.round(q)));
  let diff = total - n.reduce((a, b) => a + b, 0);
  while (diff !== 0) {
    let pick = -1;
    for (let l = 0; l < L; l++) {
      const gap = quota[l] - n[l];
      if (diff > 0) {
        if (pick < 0 || gap >= quota[pick] - n[pick]) pick = l; // >=: later (deeper) wins ties
      } else if (n[l] > 1 && (pick < 0 || gap < quota[pick] - n[pick])) {
        pick = l; // <: earlier (shallower) wins ties
      }
    }
    n[pick] += diff > 0 ? 1 : -1;
    diff += diff > 0 ? -1 : 1;
  }
  return n;
}

/** The same number of experts in every layer. */
export function uniformExperts(numLayers: number, perLayer: number, field = 'recipe.adapter.experts.per_layer'): number[] {
  if (!Number.isInteger(perLayer) || perLayer < 1) throw fieldError(field, perLayer, 'an integer >= 1');
  return new Array<number>(numLayers).fill(perLayer);
}

/** Experts active per token: min(k, n_l) (AlphaLoRA: 2 if n_l > 1 else 1 for k = 2). */
export function topKPerLayer(experts: readonly number[], k: number, field = 'recipe.adapter.top_k'): number[] {
  if (!Number.isInteger(k) || k < 1) throw fieldError(field, k, 'an integer >= 1');
  return experts.map((n) => Math.min(k, n));
}

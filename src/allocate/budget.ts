/**
 * The budget solver: given a family of plans indexed by one integer knob (total experts T, or the
 * top rank), pick the largest plan whose trainable (or active-per-token) parameter count is within
 * the target. Every candidate is counted with countPlan, so rounding effects (a larger T that
 * happens to count fewer parameters) cannot push a plan over the budget.
 */
import { countPlan, type PlanCount } from '../adapters/params.ts';
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError } from '../errors.ts';
import type { ModuleShapes } from '../model/families.ts';
import type { Budget } from '../names.ts';

export type { Budget };

export interface BudgetTarget {
  measure: 'trainable' | 'active';
  limit: number;
  /** How the recipe wrote it, for messages: `recipe.adapter.budget.percent: got 0.01`. */
  field: string;
  value: number;
}

/** Normalise a recipe budget into a parameter limit on one measure. */
export function budgetTarget(budget: Budget, baseParams: number, field = 'recipe.adapter.budget'): BudgetTarget {
  const keys = (['trainable', 'percent', 'active'] as const).filter((k) => budget[k] !== undefined && budget[k] !== null);
  if (keys.length !== 1) throw fieldError(field, budget, 'exactly one of {trainable: N} | {percent: P} | {active: N}');
  const key = keys[0];
  const value = budget[key]!;
  if (!(value > 0) || !Number.isFinite(value)) throw fieldError(`${field}.${key}`, value, 'a finite number > 0');
  if (key === 'percent') {
    return { measure: 'trainable', limit: Math.floor((value / 100) * baseParams), field: `${field}.percent`, value };
  }
  return { measure: key, limit: Math.floor(value), field: `${field}.${key}`, value };
}

export interface Solved {
  plan: AdapterPlan;
  count: PlanCount;
  knob: number;
}

/**
 * The plan with the most parameters (on the target's measure) within the limit, over knob values
 * lo..hi; ties keep the smaller knob. `describe` names the knob in the error raised when even the
 * smallest plan (knob = lo) is over the limit, which states that plan's size.
 */
export function largestWithin(
  target: BudgetTarget,
  shapes: ModuleShapes,
  lo: number,
  hi: number,
  planAt: (knob: number) => AdapterPlan,
  describe: string,
): Solved {
  let best: Solved | null = null;
  let smallest: Solved | null = null;
  for (let knob = lo; knob <= hi; knob++) {
    const plan = planAt(knob);
    const count = countPlan(plan, shapes);
    const size = count[target.measure];
    if (!smallest || size < smallest.count[target.measure]) smallest = { plan, count, knob };
    if (size <= target.limit && (!best || size > best.count[target.measure])) best = { plan, count, knob };
  }
  if (!best) {
    const need = smallest ? smallest.count[target.measure] : NaN;
    throw new HiloError(
      `${target.field}: got ${target.value} (${target.limit.toLocaleString('en-US')} ${target.measure} parameters); ` +
        `allowed: at least ${need.toLocaleString('en-US')} ${target.measure} parameters, the smallest feasible plan (${describe})`,
    );
  }
  return best;
}

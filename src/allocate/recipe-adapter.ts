/**
 * The recipe's `adapter:` section as allocation reads it (snake_case, as written in YAML).
 * The schema (src/recipe/schema.ts) owns the documentation and defaults of every field; this
 * type only lists what allocation uses, so it stays assignable from `Recipe['adapter']`.
 */
import type { Budget, RoutingStrategy, ScalingRule } from '../names.ts';
import type { Recipe } from '../recipe/schema.ts';

export interface AdapterSection {
  method: string;
  plan_path?: string | null;
  /** Absent: the model family's targets (targets.ts targetsOf). */
  target_modules?: readonly string[] | 'all-linear' | string;
  probe: string;
  experts: {
    pattern?: string | number | null;
    total?: number | null;
    beta: number;
    groups: number;
    per_layer: number;
  };
  rank: { r: number; min: number; max: number };
  strategy: RoutingStrategy;
  top_k: number;
  top_p: number;
  alpha: number;
  scaling: ScalingRule;
  fixed_scale: number;
  dropout: number;
  budget?: Budget | null;
}

/** Compile-time proof that a loaded recipe's adapter section is accepted as is. */
export const recipeAdapterFits: Recipe['adapter'] extends AdapterSection ? true : never = true;

/**
 * A plan says, for every decoder layer and adapted module, how many LoRA experts it gets,
 * their rank and how many are active per token. The allocation stage writes plans
 * (plan.json); the adapter stage reads them; nothing else must be passed to rebuild an adapter.
 */

import type { RoutingStrategy, ScalingRule } from '../names.ts';

export type { RoutingStrategy, ScalingRule };

export interface ModulePlan {
  /** Number of LoRA experts; 1 means plain LoRA with no router. */
  experts: number;
  /** LoRA rank of every expert of this module. */
  rank: number;
  /** Experts active per token under `topk` (clipped to `experts`); ignored by `dense`/`topp`. */
  topK: number;
}

export interface AdapterPlan {
  /** Which allocation produced it: lora | moe-uniform | mola | alphalora | hilo | manual. */
  method: string;
  /** Target modules as given (short names such as q_proj, or dotted suffixes such as attn.c_proj). */
  targetModules: string[];
  strategy: RoutingStrategy;
  /** Cumulative-probability threshold for `topp`. */
  topP: number;
  alpha: number;
  scaling: ScalingRule;
  /** The scale used when `scaling` is `fixed`. */
  fixedScale: number;
  dropout: number;
  /** layers[l][in-layer module path] for every adapted module; absent modules are not adapted. */
  layers: Array<Record<string, ModulePlan>>;
}

/** The LoRA scale of a module with rank `r` under the plan's rule. */
export function loraScale(plan: Pick<AdapterPlan, 'alpha' | 'scaling' | 'fixedScale'>, r: number): number {
  if (plan.scaling === 'fixed') return plan.fixedScale;
  if (plan.scaling === 'alpha/sqrt(r)') return plan.alpha / Math.sqrt(r);
  return plan.alpha / r;
}

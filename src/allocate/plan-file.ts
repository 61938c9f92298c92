/**
 * plan.json: the AdapterPlan exactly as training consumes it, and its summary (per-layer sizes,
 * totals, % of base) for `hilo plan`. Reading checks every field and the fit to the model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { countPlan } from '../adapters/params.ts';
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError } from '../errors.ts';
import { baseParams, moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { LORA_SCALINGS, ROUTING_STRATEGIES } from '../names.ts';
import { checkPlanFitsModel } from './targets.ts';

export function writePlanFile(file: string, plan: AdapterPlan): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(plan, null, 2)}\n`);
}

/** Read a plan.json and check it against the model; errors name `file: field`. */
export function readPlan(file: string, config: ModelConfig): AdapterPlan {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${file}: cannot read a plan.json (${(e as Error).message})`);
  }
  const f = (k: string) => `${file}: ${k}`;
  const num = (k: string) => {
    if (typeof raw[k] !== 'number' || !Number.isFinite(raw[k])) throw fieldError(f(k), raw[k], 'a finite number');
    return raw[k] as number;
  };
  if (typeof raw.method !== 'string') throw fieldError(f('method'), raw.method, 'a string');
  if (!Array.isArray(raw.targetModules) || !raw.targetModules.every((t) => typeof t === 'string')) {
    throw fieldError(f('targetModules'), raw.targetModules, 'a list of module names');
  }
  if (!(ROUTING_STRATEGIES as readonly unknown[]).includes(raw.strategy)) throw fieldError(f('strategy'), raw.strategy, ROUTING_STRATEGIES);
  if (!(LORA_SCALINGS as readonly unknown[]).includes(raw.scaling)) throw fieldError(f('scaling'), raw.scaling, LORA_SCALINGS);
  const plan: AdapterPlan = {
    method: raw.method,
    targetModules: raw.targetModules as string[],
    strategy: raw.strategy as AdapterPlan['strategy'],
    topP: num('topP'),
    alpha: num('alpha'),
    scaling: raw.scaling as AdapterPlan['scaling'],
    fixedScale: num('fixedScale'),
    dropout: num('dropout'),
    layers: raw.layers as AdapterPlan['layers'],
  };
  checkPlanFitsModel(plan, config, file);
  return plan;
}

export interface PlanRow {
  layer: number;
  /** Experts, rank and top-k of the layer's modules; "a/b" when modules differ. */
  experts: string;
  rank: string;
  topK: string;
  trainable: number;
  active: number;
}

export interface PlanSummary {
  rows: PlanRow[];
  trainable: number;
  active: number;
  baseParams: number;
  /** trainable as a percentage of the base model. */
  percentOfBase: number;
}

const distinct = (xs: number[]) => [...new Set(xs)].join('/') || '-';

export function summarizePlan(plan: AdapterPlan, config: ModelConfig): PlanSummary {
  const c = countPlan(plan, moduleShapes(config));
  const base = baseParams(config).total;
  const rows = plan.layers.map((mods, l) => {
    const ms = Object.values(mods);
    return {
      layer: l,
      experts: distinct(ms.map((m) => m.experts)),
      rank: distinct(ms.map((m) => m.rank)),
      topK: distinct(ms.map((m) => Math.min(m.topK, m.experts))),
      trainable: c.perLayer[l].trainable,
      active: c.perLayer[l].active,
    };
  });
  return { rows, trainable: c.trainable, active: c.active, baseParams: base, percentOfBase: (100 * c.trainable) / base };
}

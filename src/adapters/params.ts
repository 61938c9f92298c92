/**
 * Parameter accounting as pure functions of a plan and the module shapes.
 * An expert of rank r on a module in -> out holds r*(in+out) weights (A [r,in], B [out,r]);
 * a router (only when experts > 1) holds experts*in weights (Linear(in, E, bias=false)).
 * Closed form: sum_l n_l * (r_l * sum_m (in_m + out_m) + sum_m in_m) for uniform n_l, r_l.
 */
import type { ModuleShapes } from '../model/families.ts';
import type { AdapterPlan, ModulePlan } from './plan.ts';

export interface ParamCount {
  trainable: number;
  /** Parameters touched per token: active experts' LoRA weights + the router. */
  active: number;
}

/** Experts whose LoRA weights a token uses, on average, under the plan's strategy. */
export function activeExperts(m: ModulePlan, strategy: AdapterPlan['strategy']): number {
  if (m.experts <= 1 || strategy === 'dense') return m.experts;
  // topp activates a data-dependent number of experts; count its upper bound, top-k's min(k, E) otherwise.
  if (strategy === 'topp') return m.experts;
  return Math.min(m.topK, m.experts);
}

export function countModule(m: ModulePlan, shape: { in: number; out: number }, strategy: AdapterPlan['strategy']): ParamCount {
  const lora = m.rank * (shape.in + shape.out);
  const router = m.experts > 1 ? m.experts * shape.in : 0;
  return { trainable: m.experts * lora + router, active: activeExperts(m, strategy) * lora + router };
}

export interface PlanCount extends ParamCount {
  perLayer: ParamCount[];
  perModule: Array<Record<string, ParamCount>>;
}

export function countPlan(plan: Pick<AdapterPlan, 'layers' | 'strategy'>, shapes: ModuleShapes): PlanCount {
  const perLayer: ParamCount[] = [];
  const perModule: Array<Record<string, ParamCount>> = [];
  let trainable = 0;
  let active = 0;
  plan.layers.forEach((mods, l) => {
    const layer: ParamCount = { trainable: 0, active: 0 };
    const byModule: Record<string, ParamCount> = {};
    for (const [path, m] of Object.entries(mods)) {
      const shape = shapes[l]?.[path];
      if (!shape) throw new Error(`plan.layers[${l}]: module ${JSON.stringify(path)} does not exist in layer ${l}`);
      const c = countModule(m, shape, plan.strategy);
      byModule[path] = c;
      layer.trainable += c.trainable;
      layer.active += c.active;
    }
    perLayer.push(layer);
    perModule.push(byModule);
    trainable += layer.trainable;
    active += layer.active;
  });
  return { trainable, active, perLayer, perModule };
}


/** One row of the parameter table: an adapted module and what it holds. */
export interface ParamRow extends ParamCount {
  layer: number;
  module: string;
  experts: number;
  rank: number;
  /** Experts a token uses under the plan's strategy (activeExperts). */
  activeExperts: number;
  /** Router weights (experts·in when experts > 1), included in trainable and active. */
  router: number;
}

/** Per-module rows in plan order, for logging and result files; sums match countPlan. */
export function paramRows(plan: Pick<AdapterPlan, 'layers' | 'strategy'>, shapes: ModuleShapes): ParamRow[] {
  const counts = countPlan(plan, shapes); // validates the modules against the shapes
  const rows: ParamRow[] = [];
  plan.layers.forEach((mods, l) => {
    for (const [module, m] of Object.entries(mods)) {
      const router = m.experts > 1 ? m.experts * shapes[l][module].in : 0;
      rows.push({
        layer: l, module, experts: m.experts, rank: m.rank, activeExperts: activeExperts(m, plan.strategy), router,
        ...counts.perModule[l][module],
      });
    }
  });
  return rows;
}

/** A fixed-width text table of paramRows plus per-layer subtotals and the total. */
export function formatParamTable(plan: Pick<AdapterPlan, 'layers' | 'strategy'>, shapes: ModuleShapes): string {
  const rows = paramRows(plan, shapes);
  const c = countPlan(plan, shapes);
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = [['layer', 'module', 'experts', 'rank', 'active', 'router', 'trainable', 'active params']];
  for (const r of rows) lines.push([String(r.layer), r.module, String(r.experts), String(r.rank), String(r.activeExperts), n(r.router), n(r.trainable), n(r.active)]);
  c.perLayer.forEach((p, l) => lines.push([String(l), '(layer)', '', '', '', '', n(p.trainable), n(p.active)]));
  lines.push(['all', '(total)', '', '', '', '', n(c.trainable), n(c.active)]);
  const widths = lines[0].map((_, i) => Math.max(...lines.map((row) => row[i].length)));
  return lines.map((row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}

/**
 * The extra adapter_config.json keys of a hilo adapter package (on top of what saveAdapters
 * writes: format, plan, per-module experts/r/top_k/scaling, routing, alpha, coefficients), so
 * the package says everything about itself without the recipe: the base model and its
 * fingerprint, parameter counts, the probe and allocation that chose the plan.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Adapters } from '../adapters/inject.ts';
import { countPlan } from '../adapters/params.ts';
import { summarizePlan } from '../allocate/plan-file.ts';
import { moduleShapes } from '../model/families.ts';
import type { CausalLM } from '../model/types.ts';
import { modelFingerprint } from '../probe/fingerprint.ts';
import { readProbeFile } from '../probe/run.ts';
import type { ExportSource } from './source.ts';

/** The run's probe.json in short (kind, per-layer scores, settings), or what the recipe asked for. */
function probeSummary(src: ExportSource): Record<string, unknown> {
  const file = path.join(src.runDir, 'probe.json');
  if (!fs.existsSync(file)) return { kind: src.recipe.adapter.probe, measured: false };
  const p = readProbeFile(file);
  return { kind: p.kind, measured: true, layers: p.layers, settings: p.settings };
}

/** "3" -> 3; "2/4" (modules of the layer differ) stays a string. */
const num = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : s);

export function hiloPackageConfig(src: ExportSource, model: CausalLM, adapters: Adapters, provenance: Record<string, unknown>): Record<string, unknown> {
  const plan = adapters.plan;
  const a = src.recipe.adapter;
  const counted = countPlan(plan, moduleShapes(model.config));
  const summary = summarizePlan(plan, model.config);
  return {
    hilo_export: { ...provenance, run: src.runDir },
    base_model_name_or_path: src.recipe.model.path,
    base_model_fingerprint: modelFingerprint(src.recipe.model.path),
    trainable_params: adapters.numParams(),
    active_params: counted.active,
    base_params: summary.baseParams,
    trainable_percent_of_base: Number(summary.percentOfBase.toPrecision(6)),
    // per-layer view of the plan (the exact per-module plan is under "plan" and "modules")
    layers: summary.rows.map(({ layer, experts, rank, topK, trainable, active }) => ({ layer, experts: num(experts), r: num(rank), top_k: num(topK), trainable, active })),
    probe: probeSummary(src),
    allocation: { method: a.method, experts: a.experts, rank: a.rank, budget: a.budget, target_modules: a.target_modules },
  };
}

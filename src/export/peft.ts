/**
 * The PEFT LoRA format (`PeftModel.save_pretrained`): adapter_config.json with peft_type "LORA"
 * and adapter_model.safetensors with keys `base_model.model.<module path>.lora_A.weight` [r, in]
 * and `.lora_B.weight` [out, r]. Per-module ranks and scales go in rank_pattern/alpha_pattern
 * keyed by exact module paths, which stock PEFT matches with `^(.*\.)?(key)$`.
 *
 * Export: one-expert modules are copied exactly; a mixture is folded (fold.ts) into one LoRA of
 * rank Σ r_e with each expert weighted by its mean routing weight. Import: every PEFT module
 * becomes a one-expert hilo module.
 */
import type { Adapters } from '../adapters/inject.ts';
import { adapterTensors } from '../adapters/io.ts';
import { loraScale } from '../adapters/plan.ts';
import { familyOf, layerPrefix, moduleShapes, projectionPaths, targetMatches } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import type { Matrix } from './delta.ts';
import { foldExperts, type ExpertWeights } from './fold.ts';
import type { GateMeans } from './gate-means.ts';

export const PEFT_PREFIX = 'base_model.model.';

/** One exported module: its folded LoRA and PEFT scaling. */
export interface PeftModule {
  path: string;
  A: Matrix;
  B: Matrix;
  scaling: number;
  /** Experts folded into it (1: copied exactly). */
  experts: number;
}

export interface PeftExport {
  config: Record<string, unknown>;
  modules: PeftModule[];
}

/** The value most modules share (ties: the larger), so patterns list only the exceptions. */
function mostCommon(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0][0];
}

/** PEFT target_modules: the plan's short names when they select exactly the exported modules, else every path. */
function peftTargets(config: ModelConfig, targets: string[], paths: string[]): string[] {
  const short = targets.includes('all-linear') ? projectionPaths(config) : targets;
  const selected = moduleShapes(config).flatMap((mods, l) =>
    Object.keys(mods).filter((m) => short.some((t) => targetMatches(t, m))).map((m) => `${layerPrefix(config, l)}.${m}`));
  const same = selected.length === paths.length && selected.every((p) => paths.includes(p));
  return same ? [...short] : [...paths].sort();
}

const hf = (t: { shape: number[]; data: Float32Array }): Matrix => ({ shape: [t.shape[0], t.shape[1]], data: t.data });

/** A PEFT LoRA equivalent to `adapters` (exact for one-expert modules, folded with `gates` otherwise). */
export function peftFromAdapters(adapters: Adapters, config: ModelConfig, baseModel: string, gates: GateMeans): PeftExport {
  const plan = adapters.plan;
  const rslora = plan.scaling === 'alpha/sqrt(r)';
  // PEFT's scaling of the folded rank R is loraScale(plan, R); PEFT has no fixed scale: alpha = fixed_scale · r makes alpha/r the fixed scale
  const alphaFor = (R: number) => (plan.scaling === 'fixed' ? plan.fixedScale * R : plan.alpha);
  const tensors = adapterTensors(adapters);
  const get = (name: string) => hf(tensors.get(name)!);
  const modules: PeftModule[] = [];
  for (const [p, mix] of adapters.layers) {
    const { experts: E, rank: r } = mix.spec;
    const R = E * r;
    const scaling = loraScale(plan, R);
    const w = E > 1 ? gates.get(p) : [1];
    if (!w) throw new Error(`internal: no routing weights measured for ${p}`);
    const parts: ExpertWeights[] = Array.from({ length: E }, (_, e) => {
      const key = E === 1 ? p : `${p}.experts.${e}`; // io.ts's names (adapters/README.md)
      return { A: get(`${key}.lora_A.weight`), B: get(`${key}.lora_B.weight`), scale: loraScale(plan, r), weight: w[e] };
    });
    modules.push({ path: p, ...foldExperts(parts, scaling), scaling, experts: E });
  }
  const ranks = modules.map((m) => m.A.shape[0]);
  const r = mostCommon(ranks);
  const loraAlpha = alphaFor(r);
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  for (const m of modules) {
    const R = m.A.shape[0];
    if (R !== r) rankPattern[m.path] = R;
    if (alphaFor(R) !== loraAlpha) alphaPattern[m.path] = alphaFor(R);
  }
  const cfg: Record<string, unknown> = {
    alpha_pattern: alphaPattern, auto_mapping: null, base_model_name_or_path: baseModel, bias: 'none',
    fan_in_fan_out: familyOf(config).projectionLayout === 'conv1d', inference_mode: true, init_lora_weights: true, layer_replication: null,
    layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: loraAlpha, lora_dropout: plan.dropout,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r,
    rank_pattern: rankPattern, revision: null, target_modules: peftTargets(config, plan.targetModules, modules.map((m) => m.path)),
    task_type: 'CAUSAL_LM', use_dora: false, use_rslora: rslora,
  };
  return { config: cfg, modules };
}

/** The safetensors entries of a PEFT export, under PEFT's key names. */
export function peftTensors(modules: readonly PeftModule[]): Map<string, Matrix> {
  const out = new Map<string, Matrix>();
  for (const m of modules) {
    out.set(`${PEFT_PREFIX}${m.path}.lora_A.weight`, m.A);
    out.set(`${PEFT_PREFIX}${m.path}.lora_B.weight`, m.B);
  }
  return out;
}

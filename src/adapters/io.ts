/**
 * Adapter files: adapter_model.safetensors with MoE-PEFT-style keys in HF layouts, and
 * adapter_config.json holding the whole plan, so `loadAdapters(model, dir)` needs nothing else.
 *
 *   {module}.moe_gate.weight                 [E, in]    router (modules with E > 1)
 *   {module}.experts.{e}.lora_A.weight       [r, in]    expert e (E > 1)
 *   {module}.experts.{e}.lora_B.weight       [out, r]
 *   {module}.lora_A.weight / .lora_B.weight            plain LoRA (E = 1), PEFT's names
 *
 * `{module}` is the HF module path, e.g. model.layers.0.self_attn.q_proj. In memory the experts
 * of a module are packed in compute layout (mixture.ts); the (un)packing happens only here.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { readSafetensors, writeSafetensors, type StTensorInput } from '../model/safetensors.ts';
import { writeFileAtomic } from '../files.ts';
import type { CausalLM } from '../model/types.ts';
import { injectAdapters, type Adapters } from './inject.ts';
import type { MixtureLinear } from './mixture.ts';
import type { AdapterPlan } from './plan.ts';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_FORMAT = 'hilo-moe-lora';

interface HfTensor {
  shape: number[];
  data: Float32Array;
}

/** Where each HF tensor of one module lives in its packed variables: [kind, expert]. */
function tensorNames(path: string, experts: number): Array<[string, 'A' | 'B' | 'gate', number]> {
  if (experts === 1) return [[`${path}.lora_A.weight`, 'A', 0], [`${path}.lora_B.weight`, 'B', 0]];
  const out: Array<[string, 'A' | 'B' | 'gate', number]> = [[`${path}.moe_gate.weight`, 'gate', 0]];
  for (let e = 0; e < experts; e++) out.push([`${path}.experts.${e}.lora_A.weight`, 'A', e], [`${path}.experts.${e}.lora_B.weight`, 'B', e]);
  return out;
}

/** HF shape of one tensor of `mix`. */
function hfShape(mix: MixtureLinear, kind: 'A' | 'B' | 'gate'): number[] {
  const { rank, experts } = mix.spec;
  if (kind === 'A') return [rank, mix.inFeatures];
  if (kind === 'B') return [mix.outFeatures, rank];
  return [experts, mix.inFeatures];
}

/**
 * Copy between a packed kernel and one HF tensor. HF [rows, cols] element (i, j) is kernel
 * element (j, offset + i) for A and the gate (kernel [in, E·r] / [in, E]), and (offset + j, i)
 * for B (kernel [E·r, out]); the offset is e·r (A, B) or 0 (gate, whose rows are the experts).
 */
function kernelIndex(kind: 'A' | 'B' | 'gate', kernelCols: number, offset: number): (i: number, j: number) => number {
  return kind === 'B' ? (i, j) => (offset + j) * kernelCols + i : (i, j) => j * kernelCols + offset + i;
}

/** Every adapter tensor in HF layout under its file key (copies; reads the variables). */
export function adapterTensors(adapters: Adapters): Map<string, HfTensor> {
  const out = new Map<string, HfTensor>();
  for (const [p, mix] of adapters.layers) {
    const packed = { A: mix.weights.loraA, B: mix.weights.loraB, gate: mix.weights.router };
    for (const [name, kind, e] of tensorNames(p, mix.spec.experts)) {
      const v = packed[kind]!;
      const src = v.dataSync() as Float32Array;
      const shape = hfShape(mix, kind);
      const at = kernelIndex(kind, v.shape[1], kind === 'gate' ? 0 : e * mix.spec.rank);
      const data = new Float32Array(shape[0] * shape[1]);
      for (let i = 0; i < shape[0]; i++) for (let j = 0; j < shape[1]; j++) data[i * shape[1] + j] = src[at(i, j)];
      out.set(name, { shape, data });
    }
  }
  return out;
}

/** adapter_config.json: the plan verbatim, a per-module table for readers, and the loss weights. */
function adapterConfig(adapters: Adapters, extra: Record<string, unknown>): Record<string, unknown> {
  const p = adapters.plan;
  const modules: Record<string, unknown> = {};
  for (const [path, mix] of adapters.layers) {
    const { experts, rank, scale, routing } = mix.spec;
    modules[path] = { num_experts: experts, r: rank, top_k: experts > 1 ? routing.topK : 1, scaling: scale };
  }
  return {
    ...extra,
    format: ADAPTER_FORMAT,
    format_version: 1,
    task_type: 'CAUSAL_LM',
    method: p.method,
    target_modules: p.targetModules,
    routing_strategy: p.strategy,
    top_p: p.topP,
    lora_alpha: p.alpha,
    scaling: p.scaling,
    fixed_scale: p.fixedScale,
    lora_dropout: p.dropout,
    router_aux_loss_coef: adapters.options.balanceCoef,
    router_z_loss_coef: adapters.options.zLossCoef,
    seed: adapters.options.seed,
    modules,
    plan: p,
  };
}

/** Write adapter_model.safetensors + adapter_config.json into `dir` (created if needed). */
export function saveAdapters(adapters: Adapters, dir: string, extraConfig: Record<string, unknown> = {}): void {
  const tensors = new Map<string, StTensorInput>();
  for (const [name, t] of adapterTensors(adapters)) tensors.set(name, t);
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), tensors, { hilo: ADAPTER_FORMAT });
  writeFileAtomic(path.join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(adapterConfig(adapters, extraConfig), null, 2)}\n`);
}

function readConfig(dir: string): { plan: AdapterPlan; seed: number; balanceCoef: number; zLossCoef: number } {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!fs.existsSync(file)) throw new HiloError(`${dir}: no ${ADAPTER_CONFIG_FILE}; is this a hilo adapter directory?`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (cfg.format !== ADAPTER_FORMAT) throw new HiloError(`${file}: format: got ${JSON.stringify(cfg.format)}; allowed: "${ADAPTER_FORMAT}"`);
  const plan = cfg.plan as AdapterPlan | undefined;
  if (!plan || typeof plan !== 'object' || !Array.isArray(plan.layers)) throw new HiloError(`${file}: no "plan" object with "layers"`);
  const num = (k: string, d: number) => (typeof cfg[k] === 'number' ? (cfg[k] as number) : d);
  return { plan, seed: num('seed', 0), balanceCoef: num('router_aux_loss_coef', 0), zLossCoef: num('router_z_loss_coef', 0) };
}

/** Copy HF-layout tensors into the packed variables; every tensor must be there with its shape. */
function assignTensors(adapters: Adapters, tensors: Map<string, { shape: number[]; data: Float32Array | Int32Array }>, file: string): void {
  const expected = new Set<string>();
  for (const [p, mix] of adapters.layers) {
    const packed = { A: mix.weights.loraA, B: mix.weights.loraB, gate: mix.weights.router };
    const buffers = { A: new Float32Array(packed.A.size), B: new Float32Array(packed.B.size), gate: new Float32Array(packed.gate?.size ?? 0) };
    for (const [name, kind, e] of tensorNames(p, mix.spec.experts)) {
      expected.add(name);
      const t = tensors.get(name);
      const shape = hfShape(mix, kind);
      if (!t) throw new HiloError(`${file}: missing tensor "${name}" [${shape.join(', ')}]`);
      if (t.shape.join() !== shape.join()) throw new HiloError(`${file}: tensor "${name}" has shape [${t.shape.join(', ')}]; the plan implies [${shape.join(', ')}]`);
      const at = kernelIndex(kind, packed[kind]!.shape[1], kind === 'gate' ? 0 : e * mix.spec.rank);
      for (let i = 0; i < shape[0]; i++) for (let j = 0; j < shape[1]; j++) buffers[kind][at(i, j)] = t.data[i * shape[1] + j];
    }
    for (const kind of ['A', 'B', 'gate'] as const) {
      const v = packed[kind];
      if (v) tf.tidy(() => v.assign(tf.tensor(buffers[kind], v.shape)));
    }
  }
  const unexpected = [...tensors.keys()].filter((n) => !expected.has(n));
  if (unexpected.length > 0) throw new HiloError(`${file}: tensors the plan does not have: ${unexpected.slice(0, 5).map((n) => `"${n}"`).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}`);
}

/** Inject the adapters described by `dir` into `model` and load their weights. */
export function loadAdapters(model: CausalLM, dir: string): Adapters {
  const { plan, seed, balanceCoef, zLossCoef } = readConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(file)) throw new HiloError(`${dir}: no ${ADAPTER_WEIGHTS_FILE}`);
  const { tensors } = readSafetensors(file);
  let adapters: Adapters;
  try {
    adapters = injectAdapters(model, plan, { seed, balanceCoef, zLossCoef });
  } catch (e) {
    // the plan came from the file: say which
    if (e instanceof HiloError) throw new HiloError(`${path.join(dir, ADAPTER_CONFIG_FILE)}: ${e.message}`);
    throw e;
  }
  try {
    assignTensors(adapters, tensors, file);
  } catch (e) {
    adapters.dispose();
    throw e;
  }
  return adapters;
}

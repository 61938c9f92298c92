/**
 * Importing a PEFT LoRA adapter directory into hilo: every PEFT module becomes a one-expert
 * module (plain LoRA) of a plan derived from the config and the tensor shapes, so the result
 * is an ordinary hilo adapter (saveAdapters, training from its plan, export again).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { injectAdapters, type Adapters } from '../adapters/inject.ts';
import { loraScale, type AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError } from '../errors.ts';
import { readSafetensors } from '../model/safetensors.ts';
import { layerPrefix } from '../model/families.ts';
import type { CausalLM } from '../model/types.ts';
import type { Matrix } from './delta.ts';
import { PEFT_PREFIX } from './peft.ts';

export interface PeftAdapter {
  config: Record<string, unknown>;
  /** Module path -> its lora_A [r, in] and lora_B [out, r]. */
  modules: Map<string, { A: Matrix; B: Matrix }>;
  /** Where it came from, for messages. */
  source: string;
}

/** PEFT's pattern lookup: the first key k with `^(.*\.)?(k)$` matching the module path. */
export function patternValue(pattern: unknown, modulePath: string): number | undefined {
  if (!pattern || typeof pattern !== 'object') return undefined;
  for (const [k, v] of Object.entries(pattern)) if (new RegExp(`^(.*\\.)?(${k})$`).test(modulePath)) return Number(v);
  return undefined;
}

const KEY = /^(.+)\.lora_([AB])\.weight$/;

/** Read adapter_config.json + adapter_model.safetensors of a PEFT LoRA directory. */
export function readPeftAdapter(dir: string): PeftAdapter {
  const cfgFile = path.join(dir, 'adapter_config.json');
  const wFile = path.join(dir, 'adapter_model.safetensors');
  if (!fs.existsSync(cfgFile)) throw new HiloError(`${dir}: no adapter_config.json; is this a PEFT adapter directory?`);
  if (!fs.existsSync(wFile)) throw new HiloError(`${dir}: no adapter_model.safetensors (a legacy adapter_model.bin must be converted with PEFT first)`);
  const config = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  if (config.peft_type !== 'LORA') throw fieldError(`${cfgFile}: peft_type`, config.peft_type, '"LORA"');
  if (config.use_dora) throw fieldError(`${cfgFile}: use_dora`, config.use_dora, 'false (DoRA has no hilo equivalent)');
  if (config.bias !== undefined && config.bias !== 'none') throw fieldError(`${cfgFile}: bias`, config.bias, '"none"');
  const modules = new Map<string, { A: Matrix; B: Matrix }>();
  const parts = new Map<string, Partial<{ A: Matrix; B: Matrix }>>();
  for (const [name, t] of readSafetensors(wFile).tensors) {
    const m = KEY.exec(name);
    if (!m || !m[1].startsWith(PEFT_PREFIX) || t.shape.length !== 2 || !(t.data instanceof Float32Array)) {
      throw new HiloError(`${wFile}: tensor "${name}" is not a LoRA weight (${PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight, float, 2-D)`);
    }
    const p = m[1].slice(PEFT_PREFIX.length);
    parts.set(p, { ...parts.get(p), [m[2]]: { shape: [t.shape[0], t.shape[1]], data: t.data } });
  }
  for (const [p, { A, B }] of parts) {
    if (!A || !B) throw new HiloError(`${wFile}: module ${p} has only lora_${A ? 'A' : 'B'}`);
    if (B.shape[1] !== A.shape[0]) throw new HiloError(`${wFile}: ${p}: lora_B [${B.shape}] does not fit lora_A [${A.shape}]`);
    modules.set(p, { A, B });
  }
  if (modules.size === 0) throw new HiloError(`${wFile}: no LoRA tensors`);
  return { config, modules, source: dir };
}

/** In-layer address of a module path, e.g. model.layers.3.mlp.up_proj -> [3, "mlp.up_proj"]. */
function address(model: CausalLM, p: string, source: string): [number, string] {
  for (let l = 0; l < model.config.numLayers; l++) {
    const prefix = `${layerPrefix(model.config, l)}.`;
    if (p.startsWith(prefix) && model.modules.has(p)) return [l, p.slice(prefix.length)];
  }
  throw new HiloError(`${source}: module ${p} is not an adaptable linear of this ${model.config.modelType} model`);
}

/** Inject `peft` into `model` as one-expert modules with its exact weights and scales. */
export function injectPeft(model: CausalLM, peft: PeftAdapter): Adapters {
  const c = peft.config;
  const alpha = typeof c.lora_alpha === 'number' ? c.lora_alpha : 8; // PEFT's default
  const rslora = c.use_rslora === true;
  const layers: AdapterPlan['layers'] = Array.from({ length: model.config.numLayers }, () => ({}));
  const inLayer = new Set<string>();
  for (const [p, { A }] of peft.modules) {
    const [l, m] = address(model, p, peft.source);
    const expected = patternValue(c.rank_pattern, p) ?? c.r;
    if (typeof expected === 'number' && expected !== A.shape[0]) {
      throw new HiloError(`${peft.source}: ${p}: lora_A has rank ${A.shape[0]} but the config (r / rank_pattern) says ${expected}`);
    }
    layers[l][m] = { experts: 1, rank: A.shape[0], topK: 1 };
    inLayer.add(m);
  }
  const plan: AdapterPlan = {
    method: 'peft', targetModules: [...inLayer], strategy: 'topk', topP: 1, alpha,
    scaling: rslora ? 'alpha/sqrt(r)' : 'alpha/r', fixedScale: 1,
    dropout: typeof c.lora_dropout === 'number' ? c.lora_dropout : 0, layers,
  };
  const adapters = injectAdapters(model, plan);
  try {
    for (const [p, { A, B }] of peft.modules) {
      const mix = adapters.layers.get(p)!;
      const r = A.shape[0];
      if (A.shape[1] !== mix.inFeatures || B.shape[0] !== mix.outFeatures) {
        throw new HiloError(`${peft.source}: ${p}: lora_A [${A.shape}] / lora_B [${B.shape}] do not fit the module (in ${mix.inFeatures}, out ${mix.outFeatures})`);
      }
      // a per-module alpha_pattern has no place in a plan's one alpha: fold the ratio into B
      const factor = loraScale({ ...plan, alpha: patternValue(c.alpha_pattern, p) ?? alpha }, r) / loraScale(plan, r);
      tf.tidy(() => {
        mix.weights.loraA.assign(tf.transpose(tf.tensor2d(A.data, A.shape))); // [r, in] -> [in, r]
        const b = tf.transpose(tf.tensor2d(B.data, B.shape)); // [out, r] -> [r, out]
        mix.weights.loraB.assign(factor === 1 ? b : tf.mul(b, factor));
      });
    }
  } catch (e) {
    adapters.dispose();
    throw e;
  }
  return adapters;
}

/** Load the PEFT LoRA directory `dir` into `model` (one-expert hilo modules); the caller disposes. */
export function loadPeftAdapter(model: CausalLM, dir: string): Adapters {
  return injectPeft(model, readPeftAdapter(dir));
}

/**
 * Injection: swap the planned entries of `model.modules` for mixture layers that wrap them,
 * and undo it. The plan is checked against the model first, so a wrong plan fails with the
 * field, the value and what the model has, before any variable is made.
 */
import * as tf from '@tensorflow/tfjs';
import { fieldError, HiloError } from '../errors.ts';
import { layerPrefix, targetMatches } from '../model/families.ts';
import type { CausalLM, LinearModule } from '../model/types.ts';
import { LORA_SCALINGS, ROUTING_STRATEGIES } from '../names.ts';
import { MixtureLinear } from './mixture.ts';
import { loraScale, type AdapterPlan, type ModulePlan } from './plan.ts';

export interface InjectOptions {
  /** Seeds the initial A and router weights (per module, independent of the other modules). */
  seed?: number;
  /** Weight of each router's balance loss on ctx.auxLosses (recipe adapter.balance_coef). */
  balanceCoef?: number;
  /** Weight of each router's z-loss (recipe adapter.z_loss_coef). */
  zLossCoef?: number;
}

export interface Adapters {
  readonly plan: AdapterPlan;
  readonly options: Required<InjectOptions>;
  /** Mixture layers by HF module path, in plan order (layer, then the plan's module order). */
  readonly layers: Map<string, MixtureLinear>;
  /**
   * Trainable variables by name: `{module}.lora_A.kernel` [in, E·r], `{module}.lora_B.kernel`
   * [E·r, out], `{module}.moe_gate.kernel` [in, E]; compute layout, all experts of a module packed
   * (io.ts writes the per-expert HF tensors).
   */
  readonly variables: Map<string, tf.Variable>;
  /** Number of trainable weights actually held (equals countPlan(...).trainable). */
  numParams(): number;
  /** Put the base modules back into model.modules (idempotent). */
  remove(): void;
  /** remove() and free the variables. */
  dispose(): void;
}

/** Does the plan's target list select this in-layer path (`all-linear` selects every module)? */
function selected(targets: string[], path: string): boolean {
  return targets.some((t) => t === 'all-linear' || targetMatches(t, path));
}

/** In-layer module paths of layer l that the model has, e.g. self_attn.q_proj. */
function layerModules(model: CausalLM, l: number): string[] {
  const prefix = `${layerPrefix(model.config, l)}.`;
  return [...model.modules.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

function checkCount(field: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw fieldError(field, v, `an integer >= ${min}`);
}

/** Throws a HiloError naming the first field of `plan` that this model cannot take. */
export function checkPlan(plan: AdapterPlan, model: CausalLM): void {
  if (!(ROUTING_STRATEGIES as readonly string[]).includes(plan.strategy)) throw fieldError('plan.strategy', plan.strategy, ROUTING_STRATEGIES);
  if (!(LORA_SCALINGS as readonly string[]).includes(plan.scaling)) throw fieldError('plan.scaling', plan.scaling, LORA_SCALINGS);
  if (plan.strategy === 'topp' && !(plan.topP > 0 && plan.topP <= 1)) throw fieldError('plan.topP', plan.topP, 'a number in (0, 1]');
  if (!(plan.dropout >= 0 && plan.dropout < 1)) throw fieldError('plan.dropout', plan.dropout, 'a number in [0, 1)');
  if (plan.scaling === 'fixed' ? !Number.isFinite(plan.fixedScale) : !Number.isFinite(plan.alpha)) {
    const field = plan.scaling === 'fixed' ? 'fixedScale' : 'alpha';
    throw fieldError(`plan.${field}`, plan[field], 'a finite number');
  }
  if (!Array.isArray(plan.targetModules)) throw fieldError('plan.targetModules', plan.targetModules, 'a list of module names');
  const L = model.config.numLayers;
  if (!Array.isArray(plan.layers) || plan.layers.length !== L) {
    throw fieldError('plan.layers', `${plan.layers?.length} layers`, `${L} entries, one per decoder layer of this model`);
  }
  const existing = layerModules(model, 0);
  for (const t of plan.targetModules) {
    if (t !== 'all-linear' && !existing.some((p) => targetMatches(t, p))) {
      throw fieldError('plan.targetModules', t, `names of this model's modules: ${existing.join(', ')} (or all-linear)`);
    }
  }
  plan.layers.forEach((mods, l) => {
    const have = layerModules(model, l);
    for (const [path, m] of Object.entries(mods)) {
      const field = `plan.layers[${l}][${JSON.stringify(path)}]`;
      if (!have.includes(path)) throw fieldError(`plan.layers[${l}]`, path, have);
      if (!selected(plan.targetModules, path)) {
        throw fieldError(field, path, `modules selected by plan.targetModules ${JSON.stringify(plan.targetModules)}`);
      }
      checkCount(`${field}.experts`, m.experts, 0);
      checkCount(`${field}.rank`, m.rank, 0);
      if (m.experts > 1 && plan.strategy === 'topk') checkCount(`${field}.topK`, m.topK, 1);
    }
  });
}

/** A/B/router variables of one module, initialised like PEFT/MoLA (A and router U(±1/√in), B = 0). */
function makeMixture(path: string, base: LinearModule, m: ModulePlan, plan: AdapterPlan, opts: Required<InjectOptions>): MixtureLinear {
  const { inFeatures: din, outFeatures: dout } = base;
  const er = m.experts * m.rank;
  const bound = 1 / Math.sqrt(din); // kaiming_uniform_(a=√5) with fan_in = in
  const seed = (what: string) => `${opts.seed}:${path}:${what}`; // per-module streams: plans can differ elsewhere
  // tidy: tf.variable shares the initial tensor's data, which would otherwise stay alive
  const loraA = tf.tidy(() => tf.variable(tf.randomUniform([din, er], -bound, bound, 'float32', seed('lora_A')) as tf.Tensor2D, true));
  const loraB = tf.tidy(() => tf.variable(tf.zeros([er, dout]) as tf.Tensor2D, true));
  const router = m.experts > 1
    ? tf.tidy(() => tf.variable(tf.randomUniform([din, m.experts], -bound, bound, 'float32', seed('moe_gate')) as tf.Tensor2D, true))
    : null;
  const spec = {
    experts: m.experts,
    rank: m.rank,
    scale: loraScale(plan, m.rank),
    routing: { strategy: plan.strategy, topK: Math.min(m.topK, m.experts), topP: plan.topP },
  };
  const options = { dropout: plan.dropout, balanceCoef: opts.balanceCoef, zLossCoef: opts.zLossCoef };
  return new MixtureLinear(path, base, spec, { loraA, loraB, router }, options, opts.seed);
}

/**
 * Wrap every module the plan lists (experts and rank >= 1) with a mixture layer, in place.
 * Modules with 0 experts or rank 0 stay as they are.
 */
export function injectAdapters(model: CausalLM, plan: AdapterPlan, options: InjectOptions = {}): Adapters {
  checkPlan(plan, model);
  const opts: Required<InjectOptions> = { seed: 0, balanceCoef: 0.01, zLossCoef: 0, ...options };
  const layers = new Map<string, MixtureLinear>();
  const variables = new Map<string, tf.Variable>();
  const replaced = new Map<string, LinearModule>();
  plan.layers.forEach((mods, l) => {
    for (const [inLayer, m] of Object.entries(mods)) {
      if (m.experts < 1 || m.rank < 1) continue;
      const path = `${layerPrefix(model.config, l)}.${inLayer}`;
      const base = model.modules.get(path)!;
      if (base instanceof MixtureLinear) throw new HiloError(`${path} already has adapters: remove() them before injecting again`);
      const mix = makeMixture(path, base, m, plan, opts);
      layers.set(path, mix);
      replaced.set(path, base);
      variables.set(`${path}.lora_A.kernel`, mix.weights.loraA);
      variables.set(`${path}.lora_B.kernel`, mix.weights.loraB);
      if (mix.weights.router) variables.set(`${path}.moe_gate.kernel`, mix.weights.router);
    }
  });
  if (layers.size === 0) throw new HiloError('plan adapts no module: every listed module has 0 experts or rank 0');
  for (const [path, mix] of layers) model.modules.set(path, mix);
  const remove = () => {
    for (const [path, base] of replaced) if (model.modules.get(path) === layers.get(path)) model.modules.set(path, base);
  };
  return {
    plan,
    options: opts,
    layers,
    variables,
    numParams: () => [...variables.values()].reduce((s, v) => s + v.size, 0),
    remove,
    dispose: () => {
      remove();
      for (const v of variables.values()) v.dispose();
    },
  };
}

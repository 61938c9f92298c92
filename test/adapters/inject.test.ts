/**
 * Injection into the real stories260K Llama (5 layers, hidden 64, GQA): identity at init,
 * training touches only adapter variables, counts match the plan, errors name what exists.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters } from '../../src/adapters/inject.ts';
import { loadAdapters, saveAdapters } from '../../src/adapters/io.ts';
import { MixtureLinear } from '../../src/adapters/mixture.ts';
import { countPlan } from '../../src/adapters/params.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { initBackend } from '../../src/backend/index.ts';
import { HiloError } from '../../src/errors.ts';
import { loadModel } from '../../src/model/load.ts';
import { moduleShapes } from '../../src/model/families.ts';
import type { CausalLM, ForwardContext } from '../../src/model/types.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL_DIR = STORIES260K;
const ALL = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

/** Per-layer experts 1,2,3,4,4 and ranks 2,4,4,6,8; layer 2 leaves out k_proj; plain LoRA in layer 0. */
function testPlan(strategy: AdapterPlan['strategy'] = 'topk'): AdapterPlan {
  const experts = [1, 2, 3, 4, 4];
  const ranks = [2, 4, 4, 6, 8];
  return {
    method: 'manual', targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    strategy, topP: 0.7, alpha: 16, scaling: 'alpha/r', fixedScale: 1, dropout: 0.1,
    layers: experts.map((E, l) => Object.fromEntries(ALL.filter((m) => !(l === 2 && m === 'self_attn.k_proj')).map((m) => [m, { experts: E, rank: ranks[l], topK: 2 }]))),
  };
}

let model: CausalLM;
const ids = () => tf.tensor2d([[1, 200, 37, 90, 4, 450, 11, 2], [1, 5, 6, 7, 8, 9, 0, 0]], undefined, 'int32') as tf.Tensor2D;
const attentionMask = () => tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]) as tf.Tensor2D;
const tokenMask = () => tf.tidy(() => tf.reshape(attentionMask(), [-1]) as tf.Tensor1D);

function logits(ctx?: ForwardContext): Float32Array {
  return tf.tidy(() => model.forward(ids(), { attentionMask: attentionMask(), ctx }).dataSync() as Float32Array);
}

/** Give every B random values so the adapters change the output. */
function randomiseB(adapters: ReturnType<typeof injectAdapters>, seed: number): void {
  for (const mix of adapters.layers.values()) {
    tf.tidy(() => mix.weights.loraB.assign(tf.randomNormal(mix.weights.loraB.shape, 0, 0.05, 'float32', seed++)));
  }
}

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
});
afterAll(() => model?.dispose());

describe('injectAdapters on stories260K', () => {
  it('with B = 0 the logits equal the base model exactly, in eval and with dropout on', () => {
    const before = tf.memory().numTensors;
    const base = logits();
    const adapters = injectAdapters(model, testPlan(), { seed: 3 });
    let s = 0;
    const ctx: ForwardContext = { training: true, auxLosses: [], dropoutSeed: { next: () => s++ } };
    expect(logits({ training: false, auxLosses: [] })).toEqual(base);
    expect(logits(ctx)).toEqual(base);
    expect(ctx.auxLosses.length).toBe(4 * 7 - 1); // training contexts get one weighted loss per router
    tf.dispose(ctx.auxLosses);
    adapters.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('holds exactly the parameters countPlan predicts, per module and in total', () => {
    const plan = testPlan();
    const adapters = injectAdapters(model, plan);
    const c = countPlan(plan, moduleShapes(model.config));
    expect(adapters.numParams()).toBe(c.trainable);
    for (const [p, mix] of adapters.layers) {
      const l = Number(p.split('.')[2]);
      const inLayer = p.split('.').slice(3).join('.');
      const held = mix.variables().reduce((a, v) => a + v.size, 0);
      expect(held, p).toBe(c.perModule[l][inLayer].trainable);
      expect(mix.weights.router === null, p).toBe(plan.layers[l][inLayer].experts === 1);
    }
    expect(adapters.layers.size).toBe(5 * 7 - 1);
    expect(model.modules.get('model.layers.2.self_attn.k_proj')).toBe(model.baseModules.get('model.layers.2.self_attn.k_proj'));
    adapters.dispose();
  });

  it('initialises A and routers in U(±1/√in) and B at zero', () => {
    const adapters = injectAdapters(model, testPlan(), { seed: 1 });
    const mix = adapters.layers.get('model.layers.4.mlp.down_proj')!; // in = 172
    const a = mix.weights.loraA.dataSync();
    const bound = 1 / Math.sqrt(172);
    expect(Math.max(...Array.from(a, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(a, Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(Array.from(mix.weights.loraB.dataSync()).every((v) => v === 0)).toBe(true);
    adapters.dispose();
  });

  it('an Adam step changes adapter variables and leaves every base weight bit-identical', () => {
    const before = tf.memory().numTensors;
    const snapshot = new Map([...model.weights].map(([k, v]) => [k, (v.dataSync() as Float32Array).slice()]));
    const adapters = injectAdapters(model, testPlan(), { seed: 2, balanceCoef: 0.01, zLossCoef: 0.001 });
    randomiseB(adapters, 10);
    const gate = adapters.variables.get('model.layers.3.mlp.up_proj.moe_gate.kernel')!;
    const gate0 = (gate.dataSync() as Float32Array).slice();
    const opt = tf.train.adam(1e-2);
    let s = 0;
    const ctx: ForwardContext = { training: true, auxLosses: [], dropoutSeed: { next: () => s++ }, tokenMask: tokenMask() };
    tf.tidy(() => {
      opt.minimize(() => {
        ctx.auxLosses.length = 0;
        const lg = model.forward(ids(), { attentionMask: attentionMask(), ctx });
        const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(tf.reshape(ids(), [-1]), 512), tf.reshape(lg, [-1, 512]));
        expect(ctx.auxLosses.length).toBe(4 * 7 - 1); // one per router: layers 1-4, layer 2 without k_proj
        return tf.add(ce, tf.addN(ctx.auxLosses)) as tf.Scalar;
      }, false, [...adapters.variables.values()]);
    });
    tf.dispose([...ctx.auxLosses, ctx.tokenMask!]);
    for (const [k, v] of model.weights) expect(v.dataSync(), k).toEqual(snapshot.get(k));
    expect(gate.dataSync()).not.toEqual(gate0);
    opt.dispose();
    adapters.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('no tensor leaks across 100 forward/backward passes of the adapted model', () => {
    // a few modules (plain LoRA, top-p experts, dense-sized MLP experts): each pass costs mostly the base model
    const plan = testPlan('topp');
    plan.layers = plan.layers.map((mods, l) => Object.fromEntries(Object.entries(mods).filter(([m]) => (l === 0 && m === 'self_attn.q_proj') || (l === 1 && m === 'self_attn.v_proj') || (l === 4 && m === 'mlp.down_proj'))));
    const adapters = injectAdapters(model, plan, { seed: 4, zLossCoef: 0.001 });
    randomiseB(adapters, 40);
    const tok = tokenMask();
    const vars = [...adapters.variables.values()];
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      let s = i * 1000;
      const ctx: ForwardContext = { training: true, auxLosses: [], tokenMask: tok, routerStats: new Map(), dropoutSeed: { next: () => s++ } };
      const { value, grads } = tf.variableGrads(() => {
        const lg = model.forward(ids(), { attentionMask: attentionMask(), ctx });
        return tf.add(tf.mean(tf.square(lg)), tf.addN(ctx.auxLosses)) as tf.Scalar;
      }, vars);
      expect(Object.keys(grads).length).toBe(vars.length);
      tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses, ...ctx.routerStats!.values()]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tok.dispose();
    adapters.dispose();
  });

  it('remove() puts the base modules back', () => {
    const base = logits();
    const adapters = injectAdapters(model, testPlan('dense'));
    randomiseB(adapters, 20);
    expect(logits()).not.toEqual(base);
    adapters.remove();
    for (const [p, m] of model.baseModules) expect(model.modules.get(p)).toBe(m);
    expect(logits()).toEqual(base);
    adapters.dispose();
  });

  it('refuses to wrap a module twice', () => {
    const a = injectAdapters(model, testPlan());
    expect(() => injectAdapters(model, testPlan())).toThrow(/already has adapters/);
    a.dispose();
  });
});

describe('plan/model mismatches are HiloErrors naming the field, value and what exists', () => {
  const bad = (edit: (p: AdapterPlan) => void) => {
    const p = testPlan();
    edit(p);
    return () => injectAdapters(model, p);
  };
  it.each([
    ['target matching nothing', (p: AdapterPlan) => { p.targetModules = ['c_attn']; }, /plan.targetModules: got "c_attn"; allowed: .*self_attn.q_proj.*mlp.down_proj/],
    ['wrong layer count', (p: AdapterPlan) => { p.layers.pop(); }, /plan.layers: got "4 layers"; allowed: 5 entries/],
    ['unknown module', (p: AdapterPlan) => { p.layers[1]['mlp.fc1'] = { experts: 2, rank: 2, topK: 1 }; }, /plan.layers\[1\]: got "mlp.fc1"; allowed: .*"mlp.up_proj"/],
    ['module outside the targets', (p: AdapterPlan) => { p.targetModules = ['q_proj']; }, /plan.layers\[0\]\["self_attn.k_proj"\]: got "self_attn.k_proj"; allowed: modules selected by/],
    ['bad strategy', (p: AdapterPlan) => { (p as { strategy: string }).strategy = 'topK'; }, /plan.strategy: got "topK"; allowed: "topk" \| "topp" \| "dense"/],
    ['missing alpha', (p: AdapterPlan) => { delete (p as Partial<AdapterPlan>).alpha; }, /plan.alpha: got nothing; allowed: a finite number/],
    ['fractional rank', (p: AdapterPlan) => { p.layers[3]['mlp.up_proj'].rank = 2.5; }, /plan.layers\[3\]\["mlp.up_proj"\].rank: got 2.5; allowed: an integer >= 0/],
  ] as const)('%s', (_n, edit, message) => {
    const before = tf.memory().numTensors;
    const f = bad(edit);
    expect(f).toThrow(HiloError);
    expect(f).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
    for (const [p, m] of model.baseModules) expect(model.modules.get(p)).toBe(m);
  });
});

describe('saveAdapters -> loadAdapters', () => {
  it.each(['topk', 'topp', 'dense'] as const)('%s: identical outputs, keys in MoE-PEFT layout, plan recorded', (strategy) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-adapters-'));
    try {
      const plan = testPlan(strategy);
      const a = injectAdapters(model, plan, { seed: 5, balanceCoef: 0.02, zLossCoef: 0.001 });
      randomiseB(a, 30);
      const want = logits();
      saveAdapters(a, dir, { base_model_name_or_path: 'stories260K' });
      a.dispose();
      expect(logits()).not.toEqual(want);
      const b = loadAdapters(model, dir);
      expect(logits()).toEqual(want);
      expect(b.plan).toEqual(plan);
      expect(b.options).toEqual({ seed: 5, balanceCoef: 0.02, zLossCoef: 0.001 });
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
      expect(cfg.base_model_name_or_path).toBe('stories260K');
      expect(cfg.modules['model.layers.4.mlp.down_proj']).toEqual({ num_experts: 4, r: 8, top_k: 2, scaling: 2 });
      b.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('MixtureLinear is what the model now calls', () => {
  const a = injectAdapters(model, testPlan());
  expect(model.modules.get('model.layers.1.mlp.up_proj')).toBeInstanceOf(MixtureLinear);
  a.dispose();
});

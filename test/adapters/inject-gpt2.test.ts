/** Injection into GPT-2 (Conv1D modules, transformer.h.N prefix, PEFT suffix targets). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters } from '../../src/adapters/inject.ts';
import { loadAdapters, saveAdapters } from '../../src/adapters/io.ts';
import { countPlan } from '../../src/adapters/params.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadModel } from '../../src/model/load.ts';
import { moduleShapes } from '../../src/model/families.ts';
import type { CausalLM } from '../../src/model/types.ts';

let model: CausalLM;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(path.join(import.meta.dirname, '../fixtures/models/tiny-gpt2'));
});
afterAll(() => model?.dispose());

const MODULES = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];
// `c_proj` selects both attn.c_proj and mlp.c_proj (PEFT's suffix rule)
const plan = (): AdapterPlan => ({
  method: 'manual', targetModules: ['c_attn', 'c_proj', 'c_fc'], strategy: 'topk', topP: 0.8, alpha: 8,
  scaling: 'alpha/sqrt(r)', fixedScale: 1, dropout: 0,
  layers: [0, 1].map((l) => Object.fromEntries(MODULES.map((m) => [m, { experts: l + 1, rank: 4, topK: 1 }]))),
});
const ids = () => tf.tensor2d([[3, 14, 15, 9, 26, 5]], undefined, 'int32') as tf.Tensor2D;
const logits = () => tf.tidy(() => model.forward(ids()).dataSync() as Float32Array);

describe('GPT-2', () => {
  it('B = 0 keeps the logits, random B changes them, save/load restores them', () => {
    const before = tf.memory().numTensors;
    const base = logits();
    const a = injectAdapters(model, plan(), { seed: 1 });
    expect(a.layers.size).toBe(8);
    expect(a.numParams()).toBe(countPlan(plan(), moduleShapes(model.config)).trainable);
    expect(a.variables.has('transformer.h.1.mlp.c_proj.moe_gate.kernel')).toBe(true);
    expect(logits()).toEqual(base);
    let s = 50;
    for (const mix of a.layers.values()) tf.tidy(() => mix.weights.loraB.assign(tf.randomNormal(mix.weights.loraB.shape, 0, 0.1, 'float32', s++)));
    const adapted = logits();
    expect(adapted).not.toEqual(base);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-gpt2-adapter-'));
    try {
      saveAdapters(a, dir);
      a.dispose();
      expect(logits()).toEqual(base);
      const b = loadAdapters(model, dir);
      expect(logits()).toEqual(adapted);
      b.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a Llama target on GPT-2 lists the GPT-2 module names', () => {
    const p = plan();
    p.targetModules = ['q_proj'];
    expect(() => injectAdapters(model, p)).toThrow('plan.targetModules: got "q_proj"; allowed: names of this model\'s modules: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (or all-linear)');
  });
});

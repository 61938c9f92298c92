/**
 * GPT-2's Conv1D layout ([in, out] weights): the PEFT export says fan_in_fan_out, keeps PEFT's
 * [r, in] / [out, r] LoRA shapes, and an independent Conv1D merge reproduces the adapted model.
 * Importing applies rank_pattern and alpha_pattern as PEFT does.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectAdapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { initBackend } from '../../src/backend/index.ts';
import { mergedTensors } from '../../src/export/merged.ts';
import { peftFromAdapters, peftTensors } from '../../src/export/peft.ts';
import { loadPeftAdapter } from '../../src/export/peft-import.ts';
import { buildModel, loadModel, readModelConfig } from '../../src/model/load.ts';
import { encodeSafetensors, readSafetensors } from '../../src/model/safetensors.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { FLOAT_FLOOR, maxAbsDiff, randomise, relDiff, ROOT, tmpDir } from './helpers.ts';

const GPT2 = path.join(ROOT, 'test/fixtures/models/tiny-gpt2');
const PLAN: AdapterPlan = {
  method: 'lora', targetModules: ['c_attn', 'mlp.c_proj'], strategy: 'topk', topP: 1, alpha: 8, scaling: 'alpha/sqrt(r)', fixedScale: 1, dropout: 0,
  layers: [{ 'attn.c_attn': { experts: 1, rank: 2, topK: 1 }, 'mlp.c_proj': { experts: 1, rank: 4, topK: 1 } }, { 'attn.c_attn': { experts: 1, rank: 4, topK: 1 } }],
};

let model: CausalLM;
const logits = (m: CausalLM) => tf.tidy(() => m.forward(tf.tensor2d([[3, 17, 42, 5, 79, 0, 11], [8, 9, 10, 1, 2, 3, 4]], undefined, 'int32') as tf.Tensor2D).dataSync() as Float32Array);

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(GPT2);
});
afterAll(() => model?.dispose());

describe('PEFT export of GPT-2 (Conv1D)', () => {
  it('says fan_in_fan_out, keeps [r, in] / [out, r], and an independent Conv1D merge gives the adapted logits', () => {
    const before = tf.memory().numTensors;
    const adapters = injectAdapters(model, PLAN);
    randomise(adapters, 3, 0.2);
    const adapted = logits(model);
    const peft = peftFromAdapters(adapters, model.config, 'tiny-gpt2', new Map());
    const merged = mergedTensors(model, peft.modules);
    adapters.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(maxAbsDiff(adapted, logits(model))).toBeGreaterThan(1e-2);

    expect(peft.config).toMatchObject({
      fan_in_fan_out: true, use_rslora: true, r: 4, lora_alpha: 8, rank_pattern: { 'transformer.h.0.attn.c_attn': 2 }, alpha_pattern: {},
      // layer 1's mlp.c_proj is not adapted: exact paths instead of the short names
      target_modules: ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn'],
    });
    const shapes = Object.fromEntries([...peftTensors(peft.modules)].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': [2, 32], 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': [96, 2],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight': [4, 128], 'base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight': [32, 4],
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': [4, 32], 'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': [96, 4],
    });

    // independent: Conv1D W [in, out] gets (B·A)ᵀ · alpha/√r, element by element
    const base = readSafetensors(path.join(GPT2, 'model.safetensors')).tensors;
    for (const m of peft.modules) {
      const name = [...base.keys()].find((k) => k.endsWith(`${m.path.replace(/^transformer\./, '')}.weight`))!;
      const W = base.get(name)!;
      const [r, din] = m.A.shape;
      const dout = m.B.shape[0];
      expect(W.shape).toEqual([din, dout]);
      const s = 8 / Math.sqrt(r);
      const data = Float32Array.from(W.data);
      for (let i = 0; i < din; i++) for (let o = 0; o < dout; o++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += m.B.data[o * r + k] * m.A.data[k * din + i];
        data[i * dout + o] += s * acc;
      }
      base.set(name, { ...W, data });
    }
    const independent = buildModel(readModelConfig(GPT2), base);
    const viaExport = buildModel(model.config, merged);
    try {
      for (const m of [independent, viaExport]) {
        const got = logits(m);
        expect(relDiff(got, adapted)).toBeLessThan(1e-5);
        expect(maxAbsDiff(got, adapted)).toBeLessThan(FLOAT_FLOOR);
      }
    } finally {
      independent.dispose();
      viaExport.dispose();
    }
  });

  it('imports rank_pattern and a per-module alpha_pattern with the exact PEFT scales', () => {
    const adapters = injectAdapters(model, PLAN);
    randomise(adapters, 9, 0.2);
    const adapted = logits(model);
    const peft = peftFromAdapters(adapters, model.config, 'tiny-gpt2', new Map());
    adapters.dispose();
    // rewrite one module with alpha 2 (PEFT scale 2/√4 = 1 instead of 8/√4 = 4) and a 4x larger B: same ΔW
    const dir = tmpDir();
    const changed = peft.modules.map((m) => (m.path === 'transformer.h.1.attn.c_attn' ? { ...m, B: { ...m.B, data: m.B.data.map((v) => 4 * v) } } : m));
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...peft.config, alpha_pattern: { 'h.1.attn.c_attn': 2 } }));
    fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), encodeSafetensors(peftTensors(changed)));
    const imported = loadPeftAdapter(model, dir);
    try {
      expect([...imported.layers.values()].map((m) => [m.spec.rank, m.spec.scale])).toEqual([[2, 8 / Math.sqrt(2)], [4, 4], [4, 4]]);
      expect(relDiff(logits(model), adapted)).toBeLessThan(1e-6);
    } finally {
      imported.dispose();
    }
    // a rank that contradicts the config is refused
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...peft.config, rank_pattern: {} }));
    expect(() => loadPeftAdapter(model, dir)).toThrow(/transformer.h.0.attn.c_attn: lora_A has rank 2 but the config \(r \/ rank_pattern\) says 4/);
  });
});

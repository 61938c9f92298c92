/**
 * A PEFT LoRA folder written by scripts/make-peft-fixture.py (PyTorch, PEFT's documented layout:
 * rank_pattern with a suffix key, alpha_pattern, float64 reference logits): hilo imports it to
 * the reference logits and exports it back with the same keys, shapes, ranks and weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterTensors } from '../../src/adapters/io.ts';
import { initBackend } from '../../src/backend/index.ts';
import { peftFromAdapters, peftTensors } from '../../src/export/peft.ts';
import { loadPeftAdapter } from '../../src/export/peft-import.ts';
import { loadModel } from '../../src/model/load.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { FLOAT_FLOOR, maxAbsDiff, MODEL_DIR, relDiff, ROOT } from './helpers.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/peft/stories260K-lora');
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'reference.json'), 'utf8'));
let model: CausalLM;

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
});
afterAll(() => model?.dispose());

describe('a PEFT LoRA folder from PyTorch', () => {
  it('imports to the reference logits, with PEFT ranks and scales', () => {
    const before = tf.memory().numTensors;
    const adapters = loadPeftAdapter(model, FIXTURE);
    try {
      const got = tf.tidy(() => model.forward(tf.tensor2d(ref.input_ids, undefined, 'int32') as tf.Tensor2D, { attentionMask: tf.tensor2d(ref.attention_mask) as tf.Tensor2D }).dataSync());
      const want = (ref.logits as number[][][]).flat(2);
      expect(relDiff(got, want)).toBeLessThan(1e-5);
      expect(maxAbsDiff(got, want)).toBeLessThan(FLOAT_FLOOR);
      const ranks = Object.fromEntries([...adapters.layers].map(([p, m]) => [p, m.spec.rank]));
      expect(ranks['model.layers.0.self_attn.q_proj']).toBe(2); // exact rank_pattern key
      expect(ranks['model.layers.4.mlp.down_proj']).toBe(8); // suffix key "layers.4.mlp.down_proj"
      expect(Object.values(ranks).filter((r) => r === 4)).toHaveLength(13);
      expect(adapters.plan).toMatchObject({ method: 'peft', alpha: 8, scaling: 'alpha/r', strategy: 'topk' });
    } finally {
      adapters.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('exports back with the same keys, shapes and A/B bits (alpha_pattern folded into B exactly)', () => {
    const adapters = loadPeftAdapter(model, FIXTURE);
    try {
      const peft = peftFromAdapters(adapters, model.config, 'stories260K', new Map());
      expect(peft.config).toMatchObject({
        peft_type: 'LORA', r: 4, lora_alpha: 8, alpha_pattern: {}, use_rslora: false, fan_in_fan_out: false,
        rank_pattern: { 'model.layers.0.self_attn.q_proj': 2, 'model.layers.4.mlp.down_proj': 8 },
      });
      const fixture = readSafetensors(path.join(FIXTURE, 'adapter_model.safetensors')).tensors;
      const again = peftTensors(peft.modules);
      expect([...again.keys()].sort()).toEqual([...fixture.keys()].sort());
      for (const [k, t] of fixture) {
        expect(again.get(k)!.shape, k).toEqual(t.shape);
        // layer 2 v_proj had alpha 32 (scale 8) where the plan's alpha 8 gives 2: its B is 4x, exactly
        const factor = k === 'base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight' ? 4 : 1;
        expect(again.get(k)!.data, k).toEqual((t.data as Float32Array).map((v) => v * factor));
      }
      // and the hilo package holds the same tensors under PEFT's names minus the prefix
      expect(adapterTensors(adapters).get('model.layers.0.self_attn.q_proj.lora_A.weight')!.data)
        .toEqual(fixture.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.data);
    } finally {
      adapters.dispose();
    }
  });
});

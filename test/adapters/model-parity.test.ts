/**
 * The adapted model against PyTorch: stories260K with ref_moe.py adapters (per-layer experts
 * 1,2,3,4,2 and ranks 2,2,4,4,2 on q/v/down, B ~ N(0, 0.02)), written in hilo's adapter format by
 * scripts/make-moe-fixtures.py. Loading that directory must reproduce the reference logits and
 * aux loss, and saving it again must give back the same tensors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters, saveAdapters } from '../../src/adapters/io.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadModel } from '../../src/model/load.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import type { CausalLM, ForwardContext } from '../../src/model/types.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL_DIR = STORIES260K;
const ADAPTER_DIR = path.join(import.meta.dirname, '../fixtures/moe/stories260K-adapter');
const ref = JSON.parse(fs.readFileSync(path.join(ADAPTER_DIR, 'reference.json'), 'utf8')) as {
  tokens: number[][]; attention_mask: number[][]; aux_loss_unmasked: number; logits: number[][][];
};

let model: CausalLM;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
});
afterAll(() => model?.dispose());

describe('adapted stories260K vs ref_moe.py', () => {
  it('loadAdapters reproduces the PyTorch logits at real positions and the summed aux loss', () => {
    const before = tf.memory().numTensors;
    const adapters = loadAdapters(model, ADAPTER_DIR);
    expect(adapters.layers.size).toBe(15);
    const ctx: ForwardContext = { training: true, auxLosses: [] }; // dropout 0 in this plan; no tokenMask, as ref_moe
    const logits = tf.tidy(() => model.forward(tf.tensor2d(ref.tokens, undefined, 'int32') as tf.Tensor2D, {
      attentionMask: tf.tensor2d(ref.attention_mask) as tf.Tensor2D, ctx,
    }).arraySync());
    let worst = 0;
    ref.tokens.forEach((row, b) => row.forEach((_, t) => {
      if (ref.attention_mask[b][t] === 0) return; // padded queries are meaningless, as in HF
      ref.logits[b][t].forEach((v, i) => { worst = Math.max(worst, Math.abs(logits[b][t][i] - v)); });
    }));
    expect(worst).toBeLessThan(3e-5); // measured 8.6e-6 (float32 vs float64)
    expect(ctx.auxLosses.length).toBe(4 * 3); // routers in layers 1-4
    const aux = tf.tidy(() => tf.addN(ctx.auxLosses).dataSync()[0]);
    expect(aux).toBeCloseTo(ref.aux_loss_unmasked, 4);
    tf.dispose(ctx.auxLosses);
    adapters.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('saving the loaded adapters writes the same tensors back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-resave-'));
    try {
      const adapters = loadAdapters(model, ADAPTER_DIR);
      saveAdapters(adapters, dir);
      adapters.dispose();
      const want = readSafetensors(path.join(ADAPTER_DIR, 'adapter_model.safetensors')).tensors;
      const got = readSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors;
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [k, t] of want) {
        expect(got.get(k)!.shape, k).toEqual(t.shape);
        expect(got.get(k)!.data, k).toEqual(t.data);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  type PlanEdit = (plan: { layers: Array<Record<string, { rank: number }>> }) => void;
  /** A copy of the fixture whose adapter_config.json plan is edited by `edit`; returns its folder. */
  function editedCopy(edit: PlanEdit): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-bad-adapter-'));
    const cfg = JSON.parse(fs.readFileSync(path.join(ADAPTER_DIR, 'adapter_config.json'), 'utf8'));
    edit(cfg.plan);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(cfg));
    fs.copyFileSync(path.join(ADAPTER_DIR, 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
    return dir;
  }

  it.each([
    ['a plan the model cannot take is reported against adapter_config.json', ((p) => { p.layers.push({}); }) as PlanEdit,
      /adapter_config.json: plan.layers: got "6 layers"; allowed: 5 entries/],
    ['a misshapen tensor is named with the file', ((p) => { p.layers[3]['mlp.down_proj'].rank = 8; }) as PlanEdit, // the file holds rank 4
      /adapter_model.safetensors: tensor "model.layers.3.mlp.down_proj.experts.0.lora_A.weight" has shape \[4, 172\]; the plan implies \[8, 172\]/],
  ] as const)('%s', (_name, edit, message) => {
    const dir = editedCopy(edit);
    try {
      const before = tf.memory().numTensors;
      expect(() => loadAdapters(model, dir)).toThrow(message);
      expect(tf.memory().numTensors).toBe(before);
      for (const [p, m] of model.baseModules) expect(model.modules.get(p)).toBe(m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

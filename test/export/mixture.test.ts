/**
 * A mixture run (1-4 experts per layer, top-2) on stories260K: the hilo package reloads to the
 * same logits, from the final adapter or a checkpoint; the folded exports (PEFT, merged) report
 * an approximation error that a recomputation from the written files reproduces.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../src/adapters/io.ts';
import { countPlan } from '../../src/adapters/params.ts';
import { loraScale } from '../../src/adapters/plan.ts';
import { initBackend } from '../../src/backend/index.ts';
import { heldOutBatches } from '../../src/export/approx.ts';
import { exportRun } from '../../src/export/run-export.ts';
import { loadModel } from '../../src/model/load.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import { moduleShapes } from '../../src/model/families.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { modelFingerprint } from '../../src/probe/fingerprint.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { logitsOf, makeRun, MODEL_DIR, planOf, tmpDir, writeCheckpoint } from './helpers.ts';

const MODULES = ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'];
const PLAN = planOf([1, 2, 3, 4, 2], [2, 2, 4, 2, 4], MODULES);
let model: CausalLM;
let dir: string;
let runDir: string;
let moe: Float32Array;

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
  dir = tmpDir();
  const run = makeRun(dir, 'mix', model, PLAN, 7);
  runDir = run.runDir;
  moe = logitsOf(model);
  await writeCheckpoint(run, 4);
  run.adapters.dispose();
}, 60_000);
afterAll(() => model?.dispose());

describe('hilo package', () => {
  it('reloads with loadAdapters to identical logits and describes itself without the recipe', async () => {
    const out = path.join(dir, 'pkg');
    const before = tf.memory().numTensors;
    const r = await exportRun(runDir, { out });
    expect(tf.memory().numTensors).toBe(before);
    expect(r).toMatchObject({ out, format: 'hilo', status: 'written' });
    const adapters = loadAdapters(model, out);
    try {
      expect(logitsOf(model)).toEqual(moe);
    } finally {
      adapters.dispose();
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    const counted = countPlan(PLAN, moduleShapes(model.config));
    expect(cfg).toMatchObject({
      format: 'hilo-moe-lora', base_model_name_or_path: MODEL_DIR, base_model_fingerprint: modelFingerprint(MODEL_DIR),
      method: 'manual', routing_strategy: 'topk', lora_alpha: 16, scaling: 'alpha/r', router_aux_loss_coef: 0.01,
      target_modules: ['q_proj', 'v_proj', 'down_proj'], trainable_params: counted.trainable, active_params: counted.active,
      probe: { kind: 'depth', measured: false }, plan: PLAN,
      hilo_export: { format: 'hilo', source: path.join(runDir, 'adapter'), run: runDir },
    });
    expect(cfg.layers.map((l: { experts: number; r: number; top_k: number }) => [l.experts, l.r, l.top_k])).toEqual([[1, 2, 1], [2, 2, 2], [3, 4, 2], [4, 2, 2], [2, 4, 2]]);
    expect(cfg.modules['model.layers.3.self_attn.q_proj']).toEqual({ num_experts: 4, r: 2, top_k: 2, scaling: 8 });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'))).toEqual(PLAN);
  }, 60_000);

  it('from checkpoint-4 (trainable.safetensors rebuilt on plan.json) holds the same weights', async () => {
    const fromCkpt = path.join(dir, 'pkg-ckpt');
    await exportRun(runDir, { out: fromCkpt, checkpoint: '4' });
    const a = fs.readFileSync(path.join(dir, 'pkg', 'adapter_model.safetensors'));
    expect(fs.readFileSync(path.join(fromCkpt, 'adapter_model.safetensors')).equals(a)).toBe(true);
    const cfg = JSON.parse(fs.readFileSync(path.join(fromCkpt, 'adapter_config.json'), 'utf8'));
    expect(cfg.hilo_export.source).toBe(path.join(runDir, 'checkpoint-4'));
  }, 60_000);
});

/** ||merged − moe|| / ||moe|| over real tokens, recomputed with plain loops over the logits. */
function recomputeError(reference: CausalLM, candidate: CausalLM): number {
  const { batches } = heldOutBatches(loadRecipe(path.join(runDir, 'recipe.json')));
  let d = 0;
  let n = 0;
  for (const b of batches) {
    const [x, y] = [reference, candidate].map((m) => tf.tidy(() => m.forward(tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'), { attentionMask: tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen]) }).dataSync()));
    const V = x.length / (b.batchSize * b.seqLen);
    for (let p = 0; p < b.batchSize * b.seqLen; p++) {
      if (!b.attentionMask[p]) continue;
      for (let v = p * V; v < (p + 1) * V; v++) {
        d += (y[v] - x[v]) ** 2;
        n += x[v] ** 2;
      }
    }
  }
  return Math.sqrt(d / n);
}

describe('folded exports of a mixture', () => {
  it('merged: the reported relative logit error is > 0 and matches a recomputation from the written model', async () => {
    const out = path.join(dir, 'merged');
    const before = tf.memory().numTensors;
    const r = await exportRun(runDir, { format: 'merged', out, calibration: 3 });
    expect(tf.memory().numTensors).toBe(before); // calibration, merge and error measurement free everything
    expect(r.exact).toBe(false);
    const rec = JSON.parse(fs.readFileSync(path.join(out, 'hilo_export.json'), 'utf8'));
    expect(rec).toMatchObject({ format: 'merged', exact: false, folded_modules: 12, calibration: { batches: 3 } });
    const reported = rec.approximation_error.relative_logit_error;
    expect(reported).toBe(r.error!.relative);
    expect(reported).toBeGreaterThan(1e-3);
    const merged = await loadModel(out);
    const adapters = loadAdapters(model, path.join(runDir, 'adapter'));
    try {
      expect(Math.abs(recomputeError(model, merged) - reported) / reported).toBeLessThan(1e-4);
    } finally {
      adapters.dispose();
      merged.dispose();
    }
  }, 90_000);

  it('peft: each mixture is one LoRA of rank Σr whose scale·B·A is Σ_e w_e s_e B_e A_e with the reported weights', async () => {
    const out = path.join(dir, 'peft');
    const before = tf.memory().numTensors;
    const r = await exportRun(runDir, { format: 'peft', out, calibration: 3 });
    expect(tf.memory().numTensors).toBe(before);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    // same folding as the merged export: the same error
    const merged = JSON.parse(fs.readFileSync(path.join(dir, 'merged', 'hilo_export.json'), 'utf8'));
    expect(Math.abs(r.error!.relative - merged.approximation_error.relative_logit_error) / r.error!.relative).toBeLessThan(1e-4);
    expect(cfg.rank_pattern).toEqual(Object.fromEntries([[0, 2], [1, 4], [2, 12]].flatMap(([l, R]) => MODULES.map((m) => [`model.layers.${l}.${m}`, R]))));
    expect(cfg.r).toBe(8); // ranks Σr by layer 2, 4, 12, 8, 8: the common one is r, the rest patterns
    const p = 'model.layers.3.self_attn.q_proj'; // 4 experts of rank 2
    const w: number[] = cfg.hilo_export.routing_weights[p];
    expect(w).toHaveLength(4);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5); // top-2 gates are renormalised
    const peft = readSafetensors(path.join(out, 'adapter_model.safetensors')).tensors;
    const hilo = readSafetensors(path.join(runDir, 'adapter', 'adapter_model.safetensors')).tensors;
    const A = peft.get(`base_model.model.${p}.lora_A.weight`)!;
    const B = peft.get(`base_model.model.${p}.lora_B.weight`)!;
    expect([A.shape, B.shape]).toEqual([[8, 64], [64, 8]]);
    const s = cfg.lora_alpha / 8;
    const sExpert = loraScale(PLAN, 2);
    let worst = 0;
    for (let o = 0; o < 64; o++) {
      for (let i = 0; i < 64; i++) {
        let folded = 0;
        for (let k = 0; k < 8; k++) folded += B.data[o * 8 + k] * A.data[k * 64 + i];
        let want = 0;
        for (let e = 0; e < 4; e++) {
          const Ae = hilo.get(`${p}.experts.${e}.lora_A.weight`)!.data;
          const Be = hilo.get(`${p}.experts.${e}.lora_B.weight`)!.data;
          for (let k = 0; k < 2; k++) want += w[e] * sExpert * Be[o * 2 + k] * Ae[k * 64 + i];
        }
        worst = Math.max(worst, Math.abs(s * folded - want));
      }
    }
    expect(worst).toBeLessThan(1e-6);
  }, 90_000);
});

/**
 * tiny-gpt2 on webgpu, where its LayerNorms and the token NLL run as hilo's GPU programs
 * (src/backend/webgpu-layer-norm.ts, webgpu-token-nll.ts): PyTorch's logits and loss for the
 * fixture's padded batch, and a LoRA step's gradients as wasm gives them, through every norm's
 * backward and the NLL's.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { injectAdapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { shutdownBackend } from '../../src/backend/index.ts';
import { loadModel } from '../../src/model/load.ts';
import { IGNORE_INDEX } from '../../src/ops/cross-entropy.ts';
import { shiftedLabels } from '../../src/train/loss.ts';
import { fixture } from '../helpers/fixtures.ts';
import { noAdapter, useBackend, worst } from '../ops/parity.ts';

const dir = fixture('models/tiny-gpt2');
const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as {
  input_ids: number[][]; attention_mask: number[][]; logits: number[][][]; loss: number;
};

const [B, T] = [ref.input_ids.length, ref.input_ids[0].length];
/** HF's labels for the batch: the ids, IGNORE_INDEX on padding; shifted as the loss takes them. */
const targets = shiftedLabels(Int32Array.from(ref.input_ids.flat().map((id, i) => (ref.attention_mask.flat()[i] ? id : IGNORE_INDEX))), B, T);
const TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

/** The base model's logits [B, T, V] and mean NLL, then a LoRA's gradients (B seeded away from zero, so A's are not all zero). */
async function probe(): Promise<{ logits: Float32Array; loss: number; grads: Map<string, Float32Array> }> {
  const model = await loadModel(dir);
  const ids = tf.tensor2d(ref.input_ids, undefined, 'int32') as tf.Tensor2D;
  const attentionMask = tf.tensor2d(ref.attention_mask) as tf.Tensor2D;
  const count = targets.filter((t) => t !== IGNORE_INDEX).length;
  const meanNll = () => model.tokenNll(ids, targets, { attentionMask }).sum().div(count) as tf.Scalar;
  const [logits, loss] = tf.tidy(() => [model.forward(ids, { attentionMask }), meanNll()]);
  const mods = Object.fromEntries(TARGETS.map((t) => [t, { experts: 1, rank: 4, topK: 1 }]));
  const plan: AdapterPlan = {
    method: 'lora', targetModules: TARGETS, strategy: 'topk', topP: 0.8, alpha: 8, scaling: 'alpha/r', fixedScale: 1, dropout: 0,
    layers: Array.from({ length: model.config.numLayers }, () => ({ ...mods })),
  };
  const adapters = injectAdapters(model, plan, { seed: 0 });
  try {
    let seed = 1;
    for (const v of adapters.variables.values()) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', seed++)));
    const { value, grads } = tf.variableGrads(meanNll, [...adapters.variables.values()]);
    const out = { logits: (await logits.data()) as Float32Array, loss: (await loss.data())[0], grads: new Map<string, Float32Array>() };
    for (const [name, v] of adapters.variables) out.grads.set(name, (await grads[v.name]!.data()) as Float32Array); // tfjs's own names differ per model
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  } finally {
    tf.dispose([ids, attentionMask, logits, loss]);
    adapters.dispose();
    model.dispose();
  }
}

describe.skipIf(!!noAdapter)('tiny-gpt2 on webgpu', () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  it("gives PyTorch's logits and loss, and wasm's LoRA gradients, with its norms and NLL as hilo's programs", async () => {
    await useBackend('wasm');
    const want = await probe();
    await useBackend('webgpu'); // every op on the GPU
    const before = tf.memory().numTensors;
    let got = want;
    const info = await tf.profile(async () => {
      got = await probe();
    });
    expect(tf.memory().numTensors).toBe(before);
    const names = new Set(info.kernels.map((k) => k.name));
    for (const k of ['HiloLayerNormGpu', 'HiloLayerNormGpuDx', 'HiloTokenNll', 'HiloTokenNllGrad']) expect(names, k).toContain(k);
    for (const k of ['HiloLayerNormGpuDw', 'HiloLayerNormGpuDb', 'ScatterNd']) expect(names, k).not.toContain(k); // frozen norm weights: dx alone

    const V = ref.logits[0][0].length;
    let diff = 0;
    ref.logits.forEach((rows, b) => rows.forEach((row, t) => {
      if (ref.attention_mask[b][t]) row.forEach((x, v) => (diff = Math.max(diff, Math.abs(x - got.logits[(b * T + t) * V + v]))));
    }));
    expect(diff).toBeLessThan(1e-4);
    expect(got.loss).toBeCloseTo(ref.loss, 5);
    expect(got.grads.size).toBe(want.grads.size);
    for (const [name, g] of want.grads) {
      expect(Math.max(...g.map(Math.abs)), name).toBeGreaterThan(0);
      expect(worst(got.grads.get(name)!, g), name).toBeLessThan(1e-4);
    }
  });
});

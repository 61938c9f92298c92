/**
 * Exports and saves of a base held outside the tensor engine in bf16, as every real-size model is
 * (HILO_HEAP_WEIGHTS=0 sends stories260K that way; model.dtype bfloat16 rounds it): the merged
 * model stays bf16, what no adapter touched is the base's own bytes, an adapted weight is
 * bf16(W + ΔW), and nothing of the model passes through the wasm heap on the way to the file.
 * A GPT-2-large merged export died of a full heap this way before (its f32 weights went through it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { injectAdapters } from '../../src/adapters/inject.ts';
import { initBackend } from '../../src/backend/index.ts';
import { heldOutBatches, HELD_OUT_LOGIT_BYTES } from '../../src/export/approx.ts';
import { loraDeltaWeight } from '../../src/export/delta.ts';
import { mergedTensors } from '../../src/export/merged.ts';
import { peftFromAdapters } from '../../src/export/peft.ts';
import { exportRun } from '../../src/export/run-export.ts';
import { BaseCausalLM, type RawTensorData } from '../../src/model/causal-lm.ts';
import { loadModel } from '../../src/model/load.ts';
import { floatToBf16, readSafetensors, readSafetensorsHeader } from '../../src/model/safetensors.ts';
import { saveModel } from '../../src/model/save.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { decodeAll } from '../../src/ops/stored.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { logitsOf, makeRun, maxAbsDiff, MODEL_DIR, planOf, randomise, relDiff, tmpDir } from './helpers.ts';

const MODULES = ['self_attn.q_proj', 'mlp.down_proj'];
const PLAN = planOf([1, 2, 1, 3, 1], [2, 4, 2, 2, 4], MODULES);
let model: CausalLM;
let dir: string;
let runDir: string;
let moe: Float32Array;
const bf16 = (x: number) => new Float32Array(new Uint32Array([floatToBf16(x) << 16]).buffer)[0];

beforeAll(async () => {
  process.env.HILO_HEAP_WEIGHTS = '0';
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR, { dtype: 'bfloat16' });
  dir = tmpDir();
  const run = makeRun(dir, 'mix', model, PLAN, 5);
  runDir = run.runDir;
  moe = logitsOf(model);
  run.adapters.dispose();
  const file = path.join(runDir, 'recipe.json');
  const recipe = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...recipe, model: { ...recipe.model, dtype: 'bfloat16' } }, null, 2));
}, 60_000);

afterAll(() => {
  model?.dispose();
  delete process.env.HILO_HEAP_WEIGHTS;
});

describe('a bf16 base held outside the engine', () => {
  it('is held outside (the premise of every test below)', () => {
    expect(model.storage).toEqual({ dtype: 'bfloat16', outside: true });
    expect(model.hostTensors().get('model.layers.0.self_attn.q_proj.weight')).toMatchObject({ dtype: 'bfloat16' });
  });

  it('saves as bf16 from its held bytes, in shards past maxShardBytes, and loads back to the same logits', async () => {
    const out = path.join(dir, 'saved');
    await saveModel(model, out, { maxShardBytes: 200_000 });
    const files = fs.readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort();
    expect(files.length).toBeGreaterThan(1);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(files));
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const held = model.hostTensors();
    for (const f of files) {
      const { tensors } = readSafetensors(path.join(out, f));
      for (const [name, e] of readSafetensorsHeader(path.join(out, f)).entries) {
        expect(e.dtype, name).toBe('BF16');
        const h = held.get(name)!;
        const want = 'bytes' in h ? decodeAll({ dtype: h.dtype, rows: 1, cols: tensors.get(name)!.data.length, layout: 'in-out', bytes: h.bytes }) : Float32Array.from(h.data, bf16);
        expect(Array.from(tensors.get(name)!.data), name).toEqual(Array.from(want));
      }
    }
    const again = await loadModel(out);
    try {
      expect(Array.from(logitsOf(again))).toEqual(Array.from(logitsOf(model)));
    } finally {
      again.dispose();
    }
  });

  it('merges: untouched weights are the base bytes themselves, adapted ones bf16(W + ΔW)', async () => {
    const adapters = injectAdapters(model, PLAN, { seed: 3 });
    try {
      randomise(adapters, 11);
      const peft = peftFromAdapters(adapters, model.config, MODEL_DIR, new Map(PLAN.layers.flatMap((l, i) => Object.entries(l).map(([m, s]) => [`model.layers.${i}.${m}`, Array(s.experts).fill(1 / s.experts)]))));
      const base = model.hostTensors();
      const merged = mergedTensors(model, peft.modules);
      const untouched = merged.get('model.layers.0.self_attn.k_proj.weight') as RawTensorData;
      expect(untouched.bytes).toBe((base.get('model.layers.0.self_attn.k_proj.weight') as RawTensorData).bytes);
      const m = peft.modules.find((x) => x.path === 'model.layers.1.mlp.down_proj')!;
      const w = base.get(`${m.path}.weight`) as RawTensorData;
      const got = merged.get(`${m.path}.weight`) as RawTensorData;
      expect(got.dtype).toBe('bfloat16');
      expect(got.bytes).not.toBe(w.bytes);
      const [rows, cols] = w.shape;
      const W = decodeAll({ dtype: 'bfloat16', rows, cols, layout: 'out-in', bytes: w.bytes });
      const delta = loraDeltaWeight(m.A, m.B, m.scaling, false).data;
      const G = decodeAll({ dtype: 'bfloat16', rows, cols, layout: 'out-in', bytes: got.bytes });
      expect(Array.from(G)).toEqual(Array.from(W, (v, i) => bf16(Math.fround(v + delta[i]))));
      expect(maxAbsDiff(G, W)).toBeGreaterThan(0); // the adapter did move the weight
    } finally {
      adapters.remove();
      adapters.dispose();
    }
  });

  it('`hilo export --format merged` writes a bf16 model whose logits are the mixture\'s within bf16 rounding, never reading the weights onto the engine', async () => {
    const onEngine = vi.spyOn(BaseCausalLM.prototype, 'hfTensors');
    const res = await exportRun(runDir, { format: 'merged', out: path.join(dir, 'merged'), calibration: 1 });
    expect(onEngine).not.toHaveBeenCalled();
    onEngine.mockRestore();
    expect(res.error!.relative).toBeGreaterThan(0);
    expect(res.error!.relative).toBeLessThan(0.05);
    for (const [name, e] of readSafetensorsHeader(path.join(res.out, 'model.safetensors')).entries) expect(e.dtype, name).toBe('BF16');
    const written = await loadModel(res.out);
    try {
      expect(relDiff(logitsOf(written), moe)).toBeLessThan(0.05);
    } finally {
      written.dispose();
    }
  }, 60_000);

  it('scores held-out data in batches whose logits stay under HELD_OUT_LOGIT_BYTES', () => {
    const recipe = loadRecipe(path.join(runDir, 'recipe.json'));
    const all = heldOutBatches(recipe);
    expect(all.batches[0].batchSize).toBe(recipe.train.eval_batch_size);
    // a vocabulary for which 2 of these (<= 24-token) sequences fit the bound and 4 would not
    const V = 1_200_000;
    const big = heldOutBatches(recipe, V);
    for (const b of big.batches) expect(4 * b.batchSize * b.seqLen * V).toBeLessThanOrEqual(HELD_OUT_LOGIT_BYTES);
    expect(Math.max(...big.batches.map((b) => b.batchSize))).toBe(2);
    expect(big.batches.reduce((n, b) => n + b.batchSize, 0)).toBe(all.sequences); // the same sequences, in smaller batches
  });
});

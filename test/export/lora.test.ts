/**
 * A plain-LoRA run (one expert per module, ranks 2,4,4,6,8 by layer) on stories260K: the PEFT
 * export follows PEFT's documented layout exactly and, merged by an independent loop over the
 * HF weights, reproduces the adapted model (to float32's floor, see FLOAT_FLOOR); importing it back gives the same logits; the merged
 * export scores like the adapted model through `hilo score`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { loadPeftAdapter } from '../../src/export/peft-import.ts';
import { exportRun } from '../../src/export/run-export.ts';
import { buildModel, loadModel, readModelConfig } from '../../src/model/load.ts';
import { generate, scoreIds } from '../../src/model/generate.ts';
import { readSafetensors, readSafetensorsHeader } from '../../src/model/safetensors.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { FLOAT_FLOOR, HILO, LLAMA, logitsOf, makeRun, maxAbsDiff, MODEL_DIR, planOf, relDiff, tmpDir } from './helpers.ts';

const RANKS = [2, 4, 4, 6, 8];
const IDS = [1, 403, 407, 261, 378, 90, 4, 450, 11];
let model: CausalLM;
let dir: string;
let runDir: string;
let adapted: Float32Array;
let adaptedLogprobs: Array<number | null>;
let adaptedGenerated: number[];

beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
  dir = tmpDir();
  const run = makeRun(dir, 'lora', model, planOf([1, 1, 1, 1, 1], RANKS), 5);
  runDir = run.runDir;
  adapted = logitsOf(model);
  adaptedLogprobs = (await scoreIds(model, IDS)).logprobs;
  adaptedGenerated = (await generate(model, IDS.slice(0, 4), { maxNewTokens: 8 })).ids;
  run.adapters.dispose();
  expect(maxAbsDiff(adapted, logitsOf(model))).toBeGreaterThan(1e-3); // the adapters matter
}, 60_000);
afterAll(() => model?.dispose());

describe('PEFT export of one-expert modules', () => {
  let out: string;
  beforeAll(async () => {
    out = path.join(dir, 'peft');
    const before = tf.memory().numTensors;
    const r = await exportRun(runDir, { format: 'peft', out });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.exact).toBe(true);
    expect(r.error!.relative).toBeLessThan(1e-6);
  }, 60_000);

  it("writes PEFT's documented config and key names/shapes", () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(Object.keys(cfg)).toEqual([...Object.keys(cfg)].sort());
    const { hilo_export: _h, ...peft } = cfg;
    const exceptions = (l: number, v: number) => Object.fromEntries(LLAMA.map((m) => [`model.layers.${l}.${m}`, v]));
    expect(peft).toEqual({
      alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: MODEL_DIR, bias: 'none', fan_in_fan_out: false,
      inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
      loftq_config: {}, lora_alpha: 16, lora_dropout: 0.05, megatron_config: null, megatron_core: 'megatron.core',
      modules_to_save: null, peft_type: 'LORA', r: 4,
      rank_pattern: { ...exceptions(0, 2), ...exceptions(3, 6), ...exceptions(4, 8) }, revision: null,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
    });
    const header = readSafetensorsHeader(path.join(out, 'adapter_model.safetensors'));
    expect(header.metadata).toEqual({ format: 'pt' });
    // stories260K: hidden 64, 8 heads x 8, 4 kv heads x 8, intermediate 172
    const io: Record<string, [number, number]> = {
      'self_attn.q_proj': [64, 64], 'self_attn.k_proj': [64, 32], 'self_attn.v_proj': [64, 32], 'self_attn.o_proj': [64, 64],
      'mlp.gate_proj': [64, 172], 'mlp.up_proj': [64, 172], 'mlp.down_proj': [172, 64],
    };
    const want: Record<string, number[]> = {};
    RANKS.forEach((r, l) => {
      for (const m of LLAMA) {
        want[`base_model.model.model.layers.${l}.${m}.lora_A.weight`] = [r, io[m][0]];
        want[`base_model.model.model.layers.${l}.${m}.lora_B.weight`] = [io[m][1], r];
      }
    });
    const got = Object.fromEntries([...header.entries].map(([name, e]) => [name, e.shape]));
    expect(got).toEqual(want);
    expect(new Set([...header.entries.values()].map((e) => e.dtype))).toEqual(new Set(['F32']));
  });

  it('merged by an independent W + scale·B·A loop over the HF weights gives the adapted logits to 1e-5', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    const lora = readSafetensors(path.join(out, 'adapter_model.safetensors')).tensors;
    const base = readSafetensors(path.join(MODEL_DIR, 'model.safetensors')).tensors;
    for (const [key, A] of lora) {
      if (!key.endsWith('.lora_A.weight')) continue;
      const module = key.slice('base_model.model.'.length, -'.lora_A.weight'.length);
      const B = lora.get(key.replace('lora_A', 'lora_B'))!;
      const W = base.get(`${module}.weight`)!; // nn.Linear [out, in]
      const [r, din] = A.shape;
      const dout = B.shape[0];
      expect(W.shape).toEqual([dout, din]);
      const scale = (cfg.alpha_pattern[module] ?? cfg.lora_alpha) / (cfg.rank_pattern[module] ?? cfg.r);
      const data = Float32Array.from(W.data);
      for (let o = 0; o < dout; o++) {
        for (let i = 0; i < din; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B.data[o * r + k] * A.data[k * din + i];
          data[o * din + i] += scale * s;
        }
      }
      base.set(`${module}.weight`, { ...W, data });
    }
    const merged = buildModel(readModelConfig(MODEL_DIR), base);
    try {
      const got = logitsOf(merged);
      expect(relDiff(got, adapted)).toBeLessThan(1e-5);
      expect(maxAbsDiff(got, adapted)).toBeLessThan(FLOAT_FLOOR);
    } finally {
      merged.dispose();
    }
  });

  it('imports back (loadPeftAdapter) as one-expert modules with identical logits', () => {
    const before = tf.memory().numTensors;
    const adapters = loadPeftAdapter(model, out);
    try {
      expect([...adapters.layers.values()].every((m) => m.spec.experts === 1)).toBe(true);
      expect([...adapters.layers.values()].map((m) => m.spec.rank)).toEqual(RANKS.flatMap((r) => LLAMA.map(() => r)));
      expect(maxAbsDiff(logitsOf(model), adapted)).toBeLessThan(1e-6);
    } finally {
      adapters.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('merged export of one-expert modules', () => {
  it('`hilo score` on the merged folder equals the adapted model; loadModel + generate continue like it', async () => {
    const out = path.join(dir, 'merged');
    const r = await exportRun(runDir, { format: 'merged', out });
    expect(r.exact).toBe(true);
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'hilo_export.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const score = spawnSync(process.execPath, [HILO, 'score', '--model', out, '--ids', IDS.join(','), '--json', '--backend', 'wasm'], { encoding: 'utf8' });
    expect(score.status, score.stderr).toBe(0);
    const { logprobs } = JSON.parse(score.stdout);
    expect(logprobs[0]).toBeNull();
    expect(relDiff(logprobs.slice(1), adaptedLogprobs.slice(1) as number[])).toBeLessThan(1e-5);
    expect(maxAbsDiff(logprobs.slice(1), adaptedLogprobs.slice(1) as number[])).toBeLessThan(FLOAT_FLOOR);
    // generate (what `hilo generate` runs) on the folder as loadModel opens it: greedy = the adapted model's
    const reloaded = await loadModel(out);
    try {
      expect((await generate(reloaded, IDS.slice(0, 4), { maxNewTokens: 8 })).ids).toEqual(adaptedGenerated);
    } finally {
      reloaded.dispose();
    }
  }, 90_000);
});

/**
 * hilo's training step at the real shapes of issue 25, one row per shape, as JSON lines:
 *
 *   npx tsx scripts/bench-real-size.ts [--backend webgpu] (--shape qwen2.5-0.5b | --model DIR)...
 *       [--batch 8] [--seq 512] [--rows moe,forward] [--steps 3] [--warmup 1] [--dtype bfloat16]
 *       [--checkpoint] [--layers N] [--json FILE]
 *
 * --shape NAME builds a frozen model of src/model/real-shapes.ts's config (or `tiny`, bench-train's
 * random Llama, for a smoke run) in memory, its weight
 * matrices held outside the engine in --dtype (default bfloat16: a 7B base is 13.5 GB, not 27)
 * and filled with N(0, initializer_range) values cheaply (a block of seeded normals repeated:
 * throughput does not depend on the values, and drawing and encoding 7e9 takes most of an hour);
 * --model DIR loads a folder (scripts/make-model-shapes.ts writes real-shape ones) as `hilo
 * train` does. Rows: moe, the training loop's step (src/train/step.ts's microBatchGradients of
 * CE + router losses, clip 1.0, AdamW) with MoE-LoRA on all 7 projections, 4 experts, rank 8,
 * top-2, alpha 16; forward, frozen forward + CE. The batch is random token ids, all labelled.
 * Each row prints {shape, row, batch, seq, steps, step_ms (median), tokens_per_s, load_s,
 * first_step_s, loss, trainable, peak_rss_mib, tf_mib} as a JSON line (and appends it to --json).
 * --layers N keeps a --shape's first N decoder layers: every tensor at its real size (the
 * embedding, the head, each projection), so a small device (lavapipe) can check that a shape's
 * tensors bind and its step runs, without the whole model's memory or time.
 * scripts/device-real-size.sh runs it on a GPU machine beside PyTorch's rows.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { injectAdapters } from '../src/adapters/inject.ts';
import type { AdapterPlan } from '../src/adapters/plan.ts';
import { initBackend, shutdownBackend } from '../src/backend/index.ts';
import { HiloError } from '../src/errors.ts';
import type { RawTensorData } from '../src/model/causal-lm.ts';
import { normaliseConfig } from '../src/model/config.ts';
import { seededNormal } from '../src/model/init.ts';
import { familyOf } from '../src/model/families.ts';
import { buildModel, loadModel } from '../src/model/load.ts';
import { REAL_SHAPES } from '../src/model/real-shapes.ts';
import type { CausalLM, ModelConfig } from '../src/model/types.ts';
import { encodeShared, STORED_DTYPES, type StoredDtype } from '../src/ops/stored.ts';
import { AdamW } from '../src/train/adamw.ts';
import { clipFactor } from '../src/train/clip.ts';
import { microBatchGradients } from '../src/train/step.ts';

const { values: opt } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    shape: { type: 'string', multiple: true, default: [] },
    model: { type: 'string', multiple: true, default: [] },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '512' },
    rows: { type: 'string', default: 'moe,forward' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    dtype: { type: 'string', default: 'bfloat16' },
    checkpoint: { type: 'boolean', default: false },
    layers: { type: 'string' },
    json: { type: 'string' },
  },
});

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const ROWS = ['moe', 'forward'] as const;

function whole(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new HiloError(`--${name}: got "${raw}"; expected a whole number >= ${min}`);
  return n;
}
const B = whole('batch', opt.batch!, 1);
const T = whole('seq', opt.seq!, 2);
const STEPS = whole('steps', opt.steps!, 1);
const WARMUP = whole('warmup', opt.warmup!, 0);
const rows = opt.rows!.split(',').filter(Boolean);
for (const r of rows) if (!(ROWS as readonly string[]).includes(r)) throw new HiloError(`--rows: got "${r}"; allowed: ${ROWS.join(', ')}`);
if (!(STORED_DTYPES as readonly string[]).includes(opt.dtype!)) throw new HiloError(`--dtype: got "${opt.dtype}"; allowed: ${STORED_DTYPES.join(' | ')}`);
const DTYPE = opt.dtype as StoredDtype;
const LAYERS = opt.layers === undefined ? null : whole('layers', opt.layers, 1);
/** The real shapes, and `tiny` (scripts/bench-train.ts's random Llama) for a smoke run of the scripts. */
const SHAPES: Record<string, Record<string, unknown>> = {
  ...REAL_SHAPES,
  tiny: {
    model_type: 'llama', vocab_size: 4096, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 8,
    num_key_value_heads: 4, rope_theta: 1e4, rms_norm_eps: 1e-5, tie_word_embeddings: false, max_position_embeddings: 2048,
  },
};
for (const s of opt.shape!) if (!(s in SHAPES)) throw new HiloError(`--shape: got "${s}"; known: ${Object.keys(SHAPES).join(', ')}`);
for (const d of opt.model!) if (!fs.existsSync(`${d}/config.json`)) throw new HiloError(`--model: no config.json in ${d} (scripts/make-model-shapes.ts writes real-shape folders)`);
if (!opt.shape!.length && !opt.model!.length) throw new HiloError(`nothing to run: give --shape NAME (one of ${Object.keys(SHAPES).join(', ')}) or --model DIR`);

/** Every projection of every layer: 4 experts, rank 8, top-2 (PEFT target_modules of all 7). */
function moePlan(c: ModelConfig): AdapterPlan {
  const mods = Object.fromEntries(TARGETS.map((t) => [`${/gate|up|down/.test(t) ? 'mlp' : 'self_attn'}.${t}`, { experts: 4, rank: 8, topK: 2 }]));
  return {
    method: 'moe-uniform', targetModules: TARGETS, strategy: 'topk', topP: 0.8, alpha: 16, scaling: 'alpha/r', fixedScale: 1,
    dropout: 0, layers: Array.from({ length: c.numLayers }, () => ({ ...mods })),
  };
}

/**
 * A frozen model of `config`, its matrices outside the engine in DTYPE: one block of seeded
 * N(0, std) values encoded once and copied over every matrix (memcpy speed: encoding 7e9 values
 * one by one would take most of an hour).
 */
function shapeModel(config: ModelConfig): CausalLM {
  const normal = seededNormal(0);
  const draws = Float32Array.from({ length: 1 << 20 }, normal);
  const encoded = new Map<number, Uint8Array>(); // sd -> the block in DTYPE's bytes
  const blockOf = (sd: number) => {
    let b = encoded.get(sd);
    if (!b) encoded.set(sd, (b = new Uint8Array(encodeShared(draws.map((x) => x * sd), DTYPE)).slice()));
    return b;
  };
  const std = config.initializerRange ?? 0.02;
  const width = DTYPE === 'float32' ? 4 : 2;
  const tensors = new Map<string, RawTensorData>();
  for (const s of familyOf(config).weightSpecs(config)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    let bytes: SharedArrayBuffer;
    if (s.init === 'normal') {
      const block = blockOf(std * (s.stdScale ?? 1));
      bytes = new SharedArrayBuffer(n * width);
      const out = new Uint8Array(bytes);
      for (let i = 0; i < out.length; i += block.length) out.set(block.subarray(0, Math.min(block.length, out.length - i)), i);
    } else bytes = encodeShared(new Float32Array(n).fill(s.init === 'ones' ? 1 : 0), DTYPE);
    tensors.set(s.name, { shape: s.shape, dtype: DTYPE, bytes });
  }
  return buildModel(config, tensors, { source: config.modelType, storage: { dtype: DTYPE, outside: true } });
}

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
let peakRss = 0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function randomIds(vocab: number): Int32Array {
  let s = 1234;
  return Int32Array.from({ length: B * T }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 8) % vocab);
}

async function runRow(name: string, model: CausalLM, row: (typeof ROWS)[number], loadS: number): Promise<Record<string, unknown>> {
  const c = model.config;
  const ids = randomIds(c.vocabSize);
  const batch = { inputIds: ids, attentionMask: new Float32Array(B * T).fill(1), labels: ids, batchSize: B, seqLen: T };
  const adapters = row === 'moe' ? injectAdapters(model, moePlan(c), { seed: 0, balanceCoef: 0.01 }) : null;
  const adam = adapters ? new AdamW(adapters.variables, { weightDecay: 0.01 }) : null;
  const byName = adapters ? new Map([...adapters.variables].map(([k, v]) => [v.name, k])) : null;
  const step = async (): Promise<number> => {
    if (!adapters) {
      const nll = tf.tidy(() => model.tokenNll(tf.tensor2d(ids, [B, T], 'int32'), Int32Array.from(ids, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]))));
      const mean = tf.tidy(() => nll.mean());
      const v = (await mean.data())[0];
      tf.dispose([nll, mean]);
      return v;
    }
    const r = await microBatchGradients(model, [...adapters.variables.values()], { kind: 'tokens', batch }, { seedParts: [0], checkpointLayers: opt.checkpoint });
    const named = new Map(Object.entries(r.grads).map(([n, g]) => [byName!.get(n)!, g]));
    const { factor } = await clipFactor(named, 1.0);
    adam!.apply(named, 2e-4, factor);
    tf.dispose([...named.values()]);
    return r.loss;
  };
  const t0 = performance.now();
  let loss = await step();
  const firstS = (performance.now() - t0) / 1000;
  peakRss = Math.max(peakRss, rssMiB());
  for (let i = 1; i < WARMUP; i++) await step();
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const s0 = performance.now();
    loss = await step();
    times.push(performance.now() - s0);
    peakRss = Math.max(peakRss, rssMiB());
  }
  const stepMs = median(times);
  const out = {
    bench: 'hilo_real_size', shape: name, backend: tf.getBackend(), row, batch: B, seq: T, dtype: DTYPE, steps: STEPS, warmup: Math.max(1, WARMUP),
    step_ms: Math.round(stepMs), tokens_per_s: Math.round((B * T) / (stepMs / 1000)), load_s: +loadS.toFixed(1), first_step_s: +firstS.toFixed(1),
    loss: +loss.toFixed(4), trainable: adapters?.numParams() ?? 0, peak_rss_mib: Math.round(peakRss), tf_mib: Math.round(tf.memory().numBytes / 2 ** 20),
    checkpoint_layers: opt.checkpoint, date: new Date().toISOString(),
  };
  adam?.dispose();
  adapters?.dispose();
  return out;
}

async function main(): Promise<void> {
  const info = await initBackend(opt.backend as 'webgpu');
  console.error(`backend ${info.name}: ${info.detail}; batch ${B} x ${T}, ${WARMUP} warm-up + ${STEPS} timed steps`);
  const sources = [...opt.shape!.map((s) => ({ name: LAYERS ? `${s} (first ${LAYERS} layers)` : s, make: async () => shapeModel(normaliseConfig(LAYERS ? { ...SHAPES[s], num_hidden_layers: LAYERS } : SHAPES[s])) })),
    ...opt.model!.map((d) => ({ name: d, make: () => loadModel(d) }))];
  let failed = false;
  for (const src of sources) {
    const t0 = performance.now();
    let model: CausalLM | null = null;
    try {
      model = await src.make();
      const loadS = (performance.now() - t0) / 1000;
      console.error(`${src.name}: built in ${loadS.toFixed(1)} s`);
      for (const row of rows as Array<(typeof ROWS)[number]>) {
        const r = await runRow(src.name, model, row, loadS);
        const line = JSON.stringify(r);
        console.log(line);
        if (opt.json) fs.appendFileSync(opt.json, `${line}\n`);
      }
    } catch (e) {
      failed = true;
      const line = JSON.stringify({ bench: 'hilo_real_size', shape: src.name, error: (e as Error).message.split('\n')[0] });
      console.log(line);
      if (opt.json) fs.appendFileSync(opt.json, `${line}\n`);
    } finally {
      (model as { dispose?: () => void } | null)?.dispose?.();
    }
  }
  await shutdownBackend();
  process.exitCode = failed ? 1 : 0;
}

await main();

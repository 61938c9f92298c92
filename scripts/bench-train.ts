/**
 * Training throughput of hilo (issue 9), optionally beside PyTorch's reference in the same run.
 *
 *   npm run bench -- [--backend wasm|webgpu|cpu|tensorflow] [--models tiny,stories] [--steps 12]
 *                    [--warmup 3] [--block 3] [--leak-steps 1000] [--data-parallel auto|N] [--compare-torch]
 *                    [--json FILE] [--profile] [--model DIR] [--rows moe,lora,forward]
 *                    [--checkpointing off|on|both] [--torch-args "..."] [--batch 8] [--seq 128]
 *
 * --compare-torch runs ../shared/bench/torch_train_bench.py (the team's PyTorch reference) just before and just after each
 * model's rows and sets hilo against the mean of the two (`spread`: how far apart they are).
 * Models: `tiny` (random Llama: vocab 4096, hidden 256, 4 layers, 8 heads, 4 kv heads,
 * intermediate 688, rope 1e4, untied, as torch_train_bench.py) and `stories`
 * (test/fixtures/models/stories260K, committed with the tests); --model DIR (or a --models entry with
 * a slash) is an HF folder, e.g. a real shape from scripts/make-model-shapes.ts, loaded as `hilo
 * train` loads it (bf16 matrices outside the wasm heap when large) and given to PyTorch as
 * --model-dir (float32 there). Batch 8 x 128 random tokens. Rows per model (--rows picks some):
 *   moe      MoE-LoRA on all 7 projections: 4 experts, rank 8, top-2, alpha 16
 *   lora     plain LoRA r8 (one expert, no router)
 *   forward  frozen forward + CE, no gradients
 * --checkpointing on: the training rows recompute each decoder layer in the backward
 * (train.gradient_checkpointing); both: a moe-ckpt row beside moe, interleaved with it, so their
 * step-time ratio is taken at the same moments of the machine. PyTorch never checkpoints.
 * --torch-args: extra flags for torch_train_bench.py (e.g. "--no-alt-mode"); rows left out by
 * --rows are skipped there too.
 * A step is the training loop's step (src/train/loop.ts): the gradients of CE + router losses
 * over the adapter variables from the loop's GradientSource (src/train/gradients.ts: this thread,
 * or split over data-parallel replicas as train.data_parallel does: --data-parallel, default
 * auto = one per core on wasm and cpu),
 * clip to 1.0, AdamW(lr 2e-4, wd 0.01 as torch's default). The forward row splits its rows over
 * the same replicas, as evaluation does.
 * Each row: 3 warm-up steps, --steps timed (default 12), median. The MoE and LoRA rows of a model
 * are timed together, in turns of --block steps (default 3) after an untimed one, each on its own
 * copy of the model, so their ratio is taken at the same moments of the machine. GFLOP/s counts matmul FLOPs
 * (scripts/bench-train-flops.ts), set against [1024,256]x[256,4096] timed in the same run.
 * The leak check (--leak-models, default stories) runs the MoE row's model, adapters and step
 * for --leak-steps steps on a (replicas) x 16 batch and compares tf.memory().numTensors (the
 * main thread's plus every replica's), RSS and (wasm) the main thread's heap after step 10 and
 * after the last one. RSS swings by ~100 MiB with V8's
 * garbage collection of tfjs's per-op JS objects; the wasm heap is what a leak would grow.
 * --profile: one step's kernels by time and count (HILO_PROFILE_TOP of them, default 12),
 * BatchMatMul (plus the kernel HILO_PROFILE_KERNEL names) by shape (HILO_PROFILE_SHAPES of them,
 * default 12), and with a native BLAS the main thread's sgemm calls by shape, the fused
 * kernels' own included.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { injectAdapters } from '../src/adapters/inject.ts';
import type { AdapterPlan } from '../src/adapters/plan.ts';
import { tallySgemm, type SgemmTally } from '../src/backend/blas.ts';
import { initBackend, shutdownBackend } from '../src/backend/index.ts';
import type { Batch } from '../src/data/batch.ts';
import { HiloError } from '../src/errors.ts';
import { normaliseConfig } from '../src/model/config.ts';
import { createRandomModel } from '../src/model/init.ts';
import { loadModel } from '../src/model/load.ts';
import type { CausalLM, ModelConfig } from '../src/model/types.ts';
import { AdamW } from '../src/train/adamw.ts';
import { clipFactor } from '../src/train/clip.ts';
import { crossEntropy, shiftedLabels } from '../src/train/loss.ts';
import { startGradients, type GradientSource } from '../src/train/gradients.ts';
import { resolveDataParallel, type ReplicaSpec } from '../src/train/replicas.ts';
import { forwardFlops, forwardStepFlops, trainStepFlops } from './bench-train-flops.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * The team's shared folder beside the repository (the PyTorch reference, only for
 * --compare-torch). HILO_SHARED moves it: the device pack (scripts/pack-device.sh) carries the
 * reference and stories260K in its own shared/, since a bundle has no repository around it.
 */
const SHARED = process.env.HILO_SHARED ?? path.resolve(ROOT, '../shared');
const STORIES = process.env.HILO_SHARED ? path.join(SHARED, 'models/stories260K') : path.join(ROOT, 'test/fixtures/models/stories260K');
const TORCH_BENCH = path.join(SHARED, 'bench/torch_train_bench.py');
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
/** Rows x tokens of every timed step (--batch, --seq), the same on the PyTorch side. */
const BATCH = positiveInt('batch', 8);
const SEQ = positiveInt('seq', 128);
const LR = 2e-4;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function positiveInt(name: string, fallback: number): number {
  const v = Number(flag(name) ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new HiloError(`--${name} ${flag(name)}: expected a whole number >= 1`);
  return v;
}
const backendName = flag('backend') ?? 'wasm';
const slow = backendName === 'webgpu' || backendName === 'cpu'; // lavapipe / plain JS: keep it short
const STEPS = Number(flag('steps') ?? (slow ? 3 : 12));
/** Timed steps a row runs in one go before the next row's turn (timeInterleaved). */
const BLOCK = Number(flag('block') ?? 3);
const WARMUP = Number(flag('warmup') ?? (slow ? 1 : 3));
const LEAK_STEPS = Number(flag('leak-steps') ?? (slow ? 0 : 1000));
const MODELS = flag('model') ? [flag('model')!] : (flag('models') ?? 'tiny,stories').split(',');
/** A model given as an HF folder rather than by name. */
const isFolder = (name: string) => name.includes('/');
const modelLabel = (name: string) => (isFolder(name) ? path.basename(path.resolve(name)) : name);
type RowKind = 'moe' | 'moe-ckpt' | 'lora' | 'forward';
const CHECKPOINTING = flag('checkpointing') ?? 'off';
if (!['off', 'on', 'both'].includes(CHECKPOINTING)) throw new HiloError(`--checkpointing ${CHECKPOINTING}: expected off, on or both`);
const ROWS = (flag('rows') ?? 'moe,lora,forward').split(',');
for (const r of ROWS) if (!['moe', 'lora', 'forward'].includes(r)) throw new HiloError(`--rows: got "${r}"; allowed: moe, lora, forward`);
/** Training rows, in their interleaved group, and whether each recomputes its layers. */
const TRAIN_ROWS: RowKind[] = [...(ROWS.includes('moe') ? (CHECKPOINTING === 'both' ? ['moe', 'moe-ckpt'] as const : ['moe'] as const) : []), ...(ROWS.includes('lora') ? ['lora'] as const : [])];
const checkpointsLayers = (row: RowKind) => row === 'moe-ckpt' || (CHECKPOINTING === 'on' && row !== 'forward');
/** train.data_parallel for the training rows: auto or a count (resolved once the backend is up). */
const DATA_PARALLEL_FLAG = flag('data-parallel') ?? 'auto';
let DATA_PARALLEL = 1;
/** Models whose MoE row gets the leak check (--leak-steps steps on a replicas x LEAK_SEQ batch). */
const LEAK_MODELS = (flag('leak-models') ?? 'stories').split(',');
const LEAK_SEQ = 16;

/** Every projection of every layer adapted alike (PEFT target_modules of all 7). */
function uniformPlan(c: ModelConfig, experts: number, rank: number, topK: number): AdapterPlan {
  const mods = Object.fromEntries(TARGETS.map((t) => [`${t.startsWith('gate') || t.startsWith('up') || t.startsWith('down') ? 'mlp' : 'self_attn'}.${t}`, { experts, rank, topK }]));
  return {
    method: experts > 1 ? 'moe-uniform' : 'lora', targetModules: TARGETS, strategy: 'topk', topP: 0.8,
    alpha: 16, scaling: 'alpha/r', fixedScale: 1, dropout: 0, layers: Array.from({ length: c.numLayers }, () => ({ ...mods })),
  };
}

/** Seeded random token batch [B, T] (LCG: the same ids every run). */
function randomIds(vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: BATCH * SEQ }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 8) % vocab);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
/** Size of the wasm backend's memory (it only grows), or undefined on other backends. */
const wasmHeapMiB = () => {
  const heap = (tf.engine().backend as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
  return heap ? heap.buffer.byteLength / 2 ** 20 : undefined;
};
let peakRss = 0;
const notePeak = () => (peakRss = Math.max(peakRss, rssMiB()));

/** Every token of `ids` [B, T] labelled with the next one (HF labels: the loss shifts them). */
function lmBatch(ids: Int32Array, B: number, T: number): Batch {
  return { inputIds: ids, attentionMask: new Float32Array(B * T).fill(1), labels: ids, batchSize: B, seqLen: T };
}

/**
 * One optimizer step as src/train/loop.ts runs it with gradient_accumulation_steps 1, from the
 * loop's own pieces: the gradient source's CE + router losses (this thread's, or the replicas'
 * sum over the batch's shards), clipFactor(1.0), AdamW.apply scaling by it, the source told of
 * the update.
 */
async function trainStep(source: GradientSource, opt: AdamW, ids: Int32Array, B = BATCH, T = SEQ): Promise<number> {
  const { loss, grads } = await source.gradients({ kind: 'tokens', batch: lmBatch(ids, B, T) }, [0]);
  const { factor } = await clipFactor(grads, 1.0);
  opt.apply(grads, LR, factor);
  source.updated();
  tf.dispose([...grads.values()]);
  return loss;
}

/**
 * Frozen forward + CE, no tape (torch's forward_ row); with replicas, the batch's rows split over
 * them as evaluation does (Replicas.score: each scores its rows, the main thread its own).
 */
async function forwardStep(model: CausalLM, replicas: GradientSource | null, ids: Int32Array, labels: Int32Array): Promise<number> {
  if (replicas) {
    const { nll, tokens } = await replicas.score(lmBatch(ids, BATCH, SEQ));
    return nll.reduce((a, b) => a + b, 0) / tokens.reduce((a, b) => a + b, 0);
  }
  const loss = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d(ids, [BATCH, SEQ], 'int32'));
    return crossEntropy(logits.reshape([BATCH * SEQ, logits.shape[2]]), labels).loss;
  });
  const v = (await loss.data())[0];
  loss.dispose();
  return v;
}

interface Row {
  model: string; row: string; trainable: number; stepMs: number;
  /** Median CPU time of the process per step (user + system): on a loaded machine, the steadier figure. */
  cpuMs: number; tokensPerS: number; gflops: number;
  loss: number; tensorsAfter10?: number; tensorsAfterLeak?: number; leakSteps?: number; rssAfter10MiB?: number; rssAfterLeakMiB?: number;
  /** The wasm heap (tensors, XNNPACK's packed weights, kept transposes); RSS also swings with V8's GC. */
  wasmHeapAfter10MiB?: number; wasmHeapAfterLeakMiB?: number;
  tfBytes: number; load: number;
  /** Data-parallel replicas of the training rows (1: the main thread alone). */
  replicas: number;
}

/** A row ready to time: its model, adapters, optimizer, gradient source and step function. */
interface Prepared {
  name: string;
  row: RowKind;
  model: CausalLM;
  adapters: ReturnType<typeof injectAdapters> | null;
  opt: AdamW | null;
  /** This thread, or the data-parallel replicas (--data-parallel). */
  gradients: GradientSource;
  ids: Int32Array;
  step: () => Promise<number>;
  flopsPerStep: number;
  /** tfjs bytes the row's model, adapters and optimizer hold (several rows' models are up at once). */
  tfBytes: number;
}

async function prepareRow(name: string, opened: Opened, row: Prepared['row'], flopsPerStep: number, bytesBefore: number): Promise<Prepared> {
  const { model, source } = opened;
  const c = model.config;
  const ids = randomIds(c.vocabSize, 1234);
  const labels = shiftedLabels(ids, BATCH, SEQ);
  const adapters = row === 'forward' ? null : injectAdapters(model, row === 'lora' ? uniformPlan(c, 1, 8, 1) : uniformPlan(c, 4, 8, 2), { seed: 0, balanceCoef: 0.01 });
  const opt = adapters ? new AdamW(adapters.variables, { weightDecay: 0.01 }) : null;
  const checkpointLayers = checkpointsLayers(row);
  const spec: ReplicaSpec = { backend: tf.getBackend(), model: source, trainable: false, adapters: adapters ? { plan: adapters.plan, options: adapters.options } : null, checkpointLayers };
  const gradients = await startGradients(model, adapters?.variables ?? model.weights, spec, DATA_PARALLEL);
  const step = () => (adapters ? trainStep(gradients, opt!, ids) : forwardStep(model, gradients.count > 1 ? gradients : null, ids, labels));
  return { name, row, model, adapters, opt, gradients, ids, step, flopsPerStep, tfBytes: tf.memory().numBytes - bytesBefore };
}

async function disposeRow(p: Prepared): Promise<void> {
  await p.gradients.close();
  p.opt?.dispose();
  p.adapters?.dispose();
}

/**
 * Time the rows' steps in interleaved blocks: WARMUP steps of each, then round by round, each
 * row runs one untimed step (its caches warm again after the other rows') and BLOCK timed
 * ones, until every row has STEPS. This machine's speed drifts by up to ~2x over minutes: rows
 * timed one after the other can see different machines, and their ratio (MoE/LoRA) with them.
 * Returns each row's step times and the process's CPU time per step (ms).
 */
async function timeInterleaved(rows: Prepared[]): Promise<Timed[]> {
  const out: Timed[] = rows.map(() => ({ times: [], cpuTimes: [], loss: NaN }));
  for (const r of rows) for (let i = 0; i < WARMUP; i++) await r.step();
  while (out.some((o) => o.times.length < STEPS)) {
    for (const [i, r] of rows.entries()) {
      if (out[i].times.length >= STEPS) continue;
      await r.step();
      for (let j = 0; j < BLOCK && out[i].times.length < STEPS; j++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        out[i].loss = await r.step();
        const cpu = process.cpuUsage(c0);
        out[i].times.push(performance.now() - t0);
        out[i].cpuTimes.push((cpu.user + cpu.system) / 1000);
        notePeak();
      }
    }
  }
  return out;
}

/** A row's timed steps (ms), the process's CPU time in each (ms), and the last step's loss. */
interface Timed {
  times: number[];
  cpuTimes: number[];
  loss: number;
}

async function measureRow(p: Prepared, timed: Timed, profile: boolean): Promise<Row> {
  const { name, row, model, adapters, opt, gradients } = p;
  const allTensors = () => tf.memory().numTensors + gradients.workerTensors().reduce((a, b) => a + b, 0);
  const stepMs = median(timed.times);
  const loss = timed.loss;
  const out: Row = {
    model: modelLabel(name), row, trainable: adapters?.numParams() ?? 0, stepMs, tokensPerS: (BATCH * SEQ) / (stepMs / 1000),
    cpuMs: median(timed.cpuTimes), gflops: p.flopsPerStep / stepMs / 1e6, loss, tfBytes: p.tfBytes, load: os.loadavg()[0],
    replicas: gradients.count,
  };
  if (row === 'moe' && LEAK_STEPS > 10 && LEAK_MODELS.includes(name)) {
    // Same model, adapters, optimizer, replicas and step function on a (replicas) x 16 batch: the
    // tensor count does not depend on the batch, and 1000 full-size steps would take most of an hour.
    const rows = gradients.count;
    const leakIds = p.ids.slice(0, rows * LEAK_SEQ);
    const small = () => trainStep(gradients, opt!, leakIds, rows, LEAK_SEQ);
    let done = 0;
    for (; done < 10; done++) await small();
    out.tensorsAfter10 = allTensors();
    out.rssAfter10MiB = rssMiB();
    out.wasmHeapAfter10MiB = wasmHeapMiB();
    for (; done < LEAK_STEPS; done++) {
      await small();
      if (done % 50 === 0) notePeak();
    }
    out.tensorsAfterLeak = allTensors();
    out.rssAfterLeakMiB = rssMiB();
    out.wasmHeapAfterLeakMiB = wasmHeapMiB();
    out.leakSteps = LEAK_STEPS;
    notePeak();
  }
  if (profile) await profileStep(p);
  return out;
}

/** --profile: one step's kernels by time and count, and BatchMatMul (or HILO_PROFILE_KERNEL) by shape. */
async function profileStep(p: Prepared): Promise<void> {
  const { name, row, step } = p;
  // On webgpu, also count GPU programs: tfjs kernels such as Reshape and Identity dispatch none,
  // and one kernel can dispatch several (hilo's fused AdamW and router kernels do).
  const gpu = tf.backend() as unknown as { runWebGPUProgram?: (...a: unknown[]) => unknown };
  const run = gpu.runWebGPUProgram;
  let programs = 0;
  if (run) gpu.runWebGPUProgram = function (this: unknown, ...a: unknown[]) { programs++; return run.apply(this, a); };
  const sgemm: SgemmTally = new Map();
  tallySgemm(sgemm);
  const info = await tf.profile(async () => void (await step())).finally(() => {
    tallySgemm(null);
    if (run) delete gpu.runWebGPUProgram;
  });
  if (run) console.log(`\n${name}/${row}: ${programs} GPU programs dispatched in one step`);
  /** Time and count per key. */
  const tally = (by: Map<string, { ms: number; n: number }>, key: string, ms: number) => {
    const e = by.get(key) ?? { ms: 0, n: 0 };
    by.set(key, { ms: e.ms + ms, n: e.n + 1 });
  };
  const byKernel = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) tally(byKernel, k.name, k.kernelTimeMs as number);
  const total = [...byKernel.values()].reduce((a, b) => a + b.ms, 0);
  console.log(`\nprofile ${name}/${row}: ${info.kernels.length} kernels, ${total.toFixed(0)} ms in kernels`);
  for (const [k, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(process.env.HILO_PROFILE_TOP ?? 12))) {
    console.log(`  ${k.padEnd(22)} ${e.ms.toFixed(1).padStart(8)} ms ${(100 * e.ms / total).toFixed(1).padStart(5)}%  x${e.n}`);
  }
  const byShape = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels.filter((k) => k.name === 'BatchMatMul' || k.name === (process.env.HILO_PROFILE_KERNEL ?? ''))) {
    const key = `${k.name === 'BatchMatMul' ? '' : `${k.name} `}${k.inputShapes.map((s) => `[${s}]`).join('x')} -> [${k.outputShapes[0]}]`;
    tally(byShape, key, k.kernelTimeMs as number);
  }
  const shapes = Number(process.env.HILO_PROFILE_SHAPES ?? 12);
  console.log('  BatchMatMul by shape:');
  for (const [k, e] of [...byShape].sort((a, b) => b[1].ms - a[1].ms).slice(0, shapes)) console.log(`    ${k.padEnd(44)} ${e.ms.toFixed(1).padStart(8)} ms  x${e.n}`);
  if (sgemm.size) {
    // the BLAS products of this thread (the main replica), the fused kernels' included
    const all = [...sgemm.values()].reduce((a, b) => ({ ms: a.ms + b.ms, n: a.n + b.n }), { ms: 0, n: 0 });
    console.log(`  sgemm on this thread: ${all.ms.toFixed(1)} ms in ${all.n} calls; by transposes and m x n x k:`);
    for (const [k, e] of [...sgemm].sort((a, b) => b[1].ms - a[1].ms).slice(0, shapes)) console.log(`    ${k.padEnd(44)} ${e.ms.toFixed(2).padStart(8)} ms  x${e.n}`);
  }
}

/** The backend's own untransposed matmul rate, best of 10 after a 3 s warm-up: the ceiling a step is set against. */
async function matmulGflops(): Promise<number> {
  const a = tf.randomNormal([1024, 256], 0, 1, 'float32', 1);
  const b = tf.randomNormal([256, 4096], 0, 1, 'float32', 2);
  let best = Infinity;
  // V8 compiles wasm in tiers (Liftoff first, TurboFan in the background, per worker thread):
  // the threaded build reaches full speed only after a second or two of work.
  const warmUntil = performance.now() + 3000;
  for (let timed = 0; timed < 10; ) {
    // 5 products back to back, then one element read (a GPU backend runs asynchronously):
    // reading the whole 16 MB product back would be timed as well.
    const t0 = performance.now();
    for (let j = 0; j < 4; j++) tf.matMul(a, b).dispose();
    const y = tf.matMul(a, b);
    const corner = tf.slice(y, [0, 0], [1, 1]);
    await corner.data();
    tf.dispose([y, corner]);
    if (t0 >= warmUntil) {
      best = Math.min(best, (performance.now() - t0) / 5);
      timed++;
    }
  }
  tf.dispose([a, b]);
  return (2 * 1024 * 256 * 4096) / best / 1e6;
}

/** A frozen model and how a data-parallel replica builds it again. */
interface Opened {
  model: CausalLM;
  source: ReplicaSpec['model'];
}

async function openModel(name: string): Promise<Opened> {
  if (name === 'stories') return { model: await loadModel(STORIES), source: { dir: STORIES } };
  if (isFolder(name)) {
    // as `hilo train` opens it: replicas take this thread's weights in shared memory as they are
    const model = await loadModel(name);
    return { model, source: { dir: name, storage: model.storage, shared: model.sharedTensors() } };
  }
  const config = normaliseConfig({
    model_type: 'llama', vocab_size: 4096, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4,
    num_attention_heads: 8, num_key_value_heads: 4, rope_theta: 1e4, rms_norm_eps: 1e-5, tie_word_embeddings: false,
    max_position_embeddings: 2048,
  });
  return { model: createRandomModel(config, 0, { trainable: false }), source: { config, seed: 0 } };
}

/** torch_train_bench.py with the same configuration; null (and a note) when Python/torch is missing. */
function runTorch(name: string): Record<string, any> | null {
  const python = process.env.HILO_PYTHON ?? '/usr/bin/python3';
  const args = [TORCH_BENCH, '--steps', String(Math.max(STEPS, 10)), '--warmup', String(WARMUP), '--batch', String(BATCH), '--seq', String(SEQ)];
  if (name === 'stories') args.push('--model-dir', STORIES);
  if (isFolder(name)) args.push('--model-dir', name);
  if (!ROWS.includes('lora')) args.push('--skip-lora');
  if (!ROWS.includes('forward')) args.push('--skip-forward');
  args.push(...(flag('torch-args') ?? '').split(' ').filter(Boolean));
  const r = spawnSync(python, args, { env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' }, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`torch bench (${name}) failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

/** PyTorch's figure for a row: the faster MoE mode, plain LoRA, forward. */
function torchFor(t: Record<string, any>, row: string): { tokensPerS: number; stepMs: number; mode?: string } {
  if (row === 'lora') return { tokensPerS: t.lora_tokens_per_s, stepMs: t.lora_step_ms };
  if (row === 'forward') return { tokensPerS: t.forward_tokens_per_s, stepMs: t.forward_step_ms };
  const modes = [{ mode: t.moe.mode, tokensPerS: t.tokens_per_s, stepMs: t.step_ms },
    ...Object.entries(t.other_modes ?? {}).map(([mode, m]: [string, any]) => ({ mode, tokensPerS: m.tokens_per_s, stepMs: m.step_ms }))];
  return modes.sort((a, b) => b.tokensPerS - a.tokensPerS)[0];
}

/** PyTorch's runs for one model: just before hilo's rows of it and just after. */
interface TorchRuns {
  before: Record<string, any> | null;
  after: Record<string, any> | null;
}

/**
 * A row's PyTorch figure from the runs around hilo's: their mean, and how far apart they are.
 * This machine's speed moves by up to ~1.7x over minutes (multi-threaded work the most), so a
 * single run before or after can be taken in another speed than hilo's rows.
 */
function torchRow(runs: TorchRuns, row: string): { tokensPerS: number; mode?: string; spread: number } | null {
  const got = [runs.before, runs.after].filter((t): t is Record<string, any> => t !== null).map((t) => torchFor(t, row));
  if (!got.length) return null;
  const tps = got.map((g) => g.tokensPerS);
  const mean = tps.reduce((a, b) => a + b, 0) / tps.length;
  return { tokensPerS: mean, mode: got[0].mode, spread: (Math.max(...tps) - Math.min(...tps)) / mean };
}

function printTable(rows: Row[], matmul: number, torch: Map<string, TorchRuns>): void {
  const head = ['model', 'row', 'replicas', 'trainable', 'step ms', 'cpu ms', 'tok/s', 'GFLOP/s', '% mm', 'tensors @10', `@leak`, 'RSS MiB', 'wasm MiB', 'tf MiB', 'load', 'torch tok/s', 'spread', 'hilo/torch'];
  const lines = rows.map((r) => {
    const t = torch.get(r.model);
    const tr = t ? torchRow(t, r.row) : null;
    return [r.model, r.row, String(r.replicas), String(r.trainable), r.stepMs.toFixed(0), r.cpuMs.toFixed(0), r.tokensPerS.toFixed(0), r.gflops.toFixed(2), (100 * r.gflops / matmul).toFixed(0),
      r.tensorsAfter10?.toString() ?? '', r.tensorsAfterLeak !== undefined ? `${r.tensorsAfterLeak} @${r.leakSteps}` : '',
      r.rssAfterLeakMiB !== undefined ? `${r.rssAfter10MiB!.toFixed(0)}→${r.rssAfterLeakMiB.toFixed(0)}` : '',
      r.wasmHeapAfterLeakMiB !== undefined ? `${r.wasmHeapAfter10MiB!.toFixed(0)}→${r.wasmHeapAfterLeakMiB.toFixed(0)}` : '', (r.tfBytes / 2 ** 20).toFixed(1), r.load.toFixed(1),
      tr ? `${tr.tokensPerS.toFixed(0)}${tr.mode ? ` (${tr.mode})` : ''}` : '', tr ? `${(100 * tr.spread).toFixed(0)}%` : '', tr ? `${(r.tokensPerS / tr.tokensPerS).toFixed(2)}x` : ''];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((s, i) => (i < 2 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l));
}

async function main(): Promise<void> {
  if (MODELS.includes('stories') && !existsSync(path.join(STORIES, 'config.json'))) {
    const fix = process.env.HILO_SHARED
      ? 'HILO_SHARED points there; unset it to use the copy in test/fixtures/models'
      : 'restore it with `git checkout -- test/fixtures/models/stories260K`';
    throw new HiloError(`no stories260K at ${STORIES} (no config.json there): ${fix}, or leave it out with --models tiny`);
  }
  const info = await initBackend(backendName);
  DATA_PARALLEL = resolveDataParallel(DATA_PARALLEL_FLAG === 'auto' ? 'auto' : Number(DATA_PARALLEL_FLAG), BATCH, info);
  console.log(`backend ${info.name}: ${info.detail}; batch ${BATCH}x${SEQ}, ${WARMUP} warm-up + ${STEPS} timed steps (median; MoE and LoRA interleaved in blocks of ${BLOCK}), leak check ${LEAK_STEPS} steps; ` +
    `training rows on ${DATA_PARALLEL} data-parallel replica${DATA_PARALLEL === 1 ? '' : 's'} (--data-parallel ${DATA_PARALLEL_FLAG})`);
  const matmul = await matmulGflops();
  console.log(`backend matmul [1024,256]x[256,4096]: ${matmul.toFixed(1)} GFLOP/s (load ${os.loadavg()[0].toFixed(1)})`);
  const rows: Row[] = [];
  const compare = process.argv.includes('--compare-torch');
  const torch = new Map<string, TorchRuns>();
  for (const name of MODELS) {
    const before = compare ? runTorch(name) : null;
    // The training rows are timed together, interleaved (timeInterleaved), each on its own copy
    // of the model; the forward row after them, on a third.
    for (const group of [TRAIN_ROWS, ROWS.includes('forward') ? ['forward' as const] : []]) {
      if (group.length === 0) continue;
      const prepared: Prepared[] = [];
      for (const row of group) {
        const bytesBefore = tf.memory().numBytes;
        const opened = await openModel(name);
        const c = opened.model.config;
        // model FLOPs: a checkpointed row's recomputed forward is not counted
        const plan = row === 'forward' ? null : row === 'lora' ? uniformPlan(c, 1, 8, 1) : uniformPlan(c, 4, 8, 2);
        const f = forwardFlops(c, BATCH, SEQ, plan);
        prepared.push(await prepareRow(name, opened, row, row === 'forward' ? forwardStepFlops(f) : trainStepFlops(f), bytesBefore));
      }
      const timed = await timeInterleaved(prepared);
      for (const [i, p] of prepared.entries()) {
        rows.push(await measureRow(p, timed[i], process.argv.includes('--profile') && p.row !== 'forward'));
        console.error(`  ${modelLabel(name)}/${p.row}: ${rows.at(-1)!.stepMs.toFixed(0)} ms`);
        await disposeRow(p);
        (p.model as { dispose?: () => void }).dispose?.();
      }
    }
    if (compare) torch.set(modelLabel(name), { before, after: runTorch(name) });
  }
  printTable(rows, matmul, torch);
  for (const [name, runs] of torch) {
    const spread = torchRow(runs, 'moe')?.spread ?? 0;
    if (spread > 0.15) console.log(`${name}: PyTorch's runs before and after hilo's differ by ${(100 * spread).toFixed(0)}%: the machine's speed moved; compare with care`);
  }
  const moe = rows.filter((r) => r.row === 'moe');
  for (const r of moe) {
    const lora = rows.find((x) => x.model === r.model && x.row === 'lora');
    const ckpt = rows.find((x) => x.model === r.model && x.row === 'moe-ckpt');
    console.log(`${r.model}:` + (lora ? ` MoE/LoRA step ${(r.stepMs / lora.stepMs).toFixed(2)}x (target <= 1.25)` : '') +
      (ckpt ? ` checkpointing on/off step ${(ckpt.stepMs / r.stepMs).toFixed(2)}x, CPU ${(ckpt.cpuMs / r.cpuMs).toFixed(2)}x (target <= 1.4)` : '') +
      (r.tensorsAfterLeak !== undefined ? `; tensors ${r.tensorsAfter10} after 10 steps, ${r.tensorsAfterLeak} after ${r.leakSteps}` : ''));
  }
  console.log(`peak RSS ${peakRss.toFixed(0)} MiB; process max RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  const file = flag('json');
  if (file) {
    const result = {
      bench: 'hilo_train', date: new Date().toISOString(), backend: info.name, detail: info.detail, node: process.version,
      cpus: os.cpus().length, batch: BATCH, seq: SEQ, warmup: WARMUP, steps: STEPS, block: BLOCK, leakSteps: LEAK_STEPS,
      matmulGflops: matmul, peakRssMiB: process.resourceUsage().maxRSS / 1024, rows,
      torch: Object.fromEntries(torch),
    };
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    console.log(`wrote ${file}`);
  }
  await shutdownBackend();
}

// A sentence, not a stack: an error thrown past the wasm backend's own handlers is printed with
// the line of minified tfjs source it passed through.
await main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof HiloError ? e.message : ((e as Error)?.stack ?? String(e))}`);
  process.exit(1);
});

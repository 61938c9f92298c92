/**
 * The memory estimate of a recipe's run (src/allocate/memory.ts) from what is known before a
 * weight is read: config.json, the checkpoint's dtype from the safetensors headers, the recipe,
 * its adapter plan, the backend and the machine. `checkRunMemory` stops a run that cannot fit
 * with the estimate, what is available, and the changes to the recipe that would fit.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AdapterPlan } from '../adapters/plan.ts';
import { countPlan } from '../adapters/params.ts';
import { HiloError } from '../errors.ts';
import { checkpointFiles } from '../model/checkpoint-files.ts';
import { readSafetensorsHeader } from '../model/safetensors.ts';
import { baseParams, moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import type { Recipe } from '../recipe/schema.ts';
import { machineMemory } from './machine-memory.ts';
import {
  estimateMemory, formatMemory, formatMemoryEstimate, HEAP_F32, WASM_HEAP_LIMIT,
  type FrozenStorage, type MachineMemory, type MemoryEstimate, type MemoryInput, type WeightDtype,
} from './memory.ts';

/**
 * Floats per token the adapted modules keep for the backward pass: each module's dropped-out
 * input and its mask (2 in), the experts' down-projections before and after gating (2 E r), the
 * router's logits, probabilities and gates (3 E, only with a router) and the output and sum (2 out).
 */
export function adapterRowFloats(plan: Pick<AdapterPlan, 'layers'>, config: ModelConfig): number {
  const shapes = moduleShapes(config);
  let floats = 0;
  plan.layers.forEach((mods, l) => {
    for (const [name, m] of Object.entries(mods)) {
      const s = shapes[l]?.[name];
      if (!s) continue; // countPlan names the bad module; the estimate is not the place
      floats += 2 * s.in + 2 * m.experts * m.rank + (m.experts > 1 ? 3 * m.experts : 0) + 2 * s.out;
    }
  });
  return floats;
}

const ST_TO_HF: Record<string, WeightDtype> = { F32: 'float32', F64: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** The float dtype most of the checkpoint's values are stored in, from its headers alone. */
export function checkpointDtype(dir: string): WeightDtype {
  let files: string[];
  try {
    files = [...(checkpointFiles(dir)?.shards.keys() ?? [])].map((f) => path.join(dir, f));
  } catch {
    return 'float32'; // the loader names a broken index; the estimate assumes the largest dtype
  }
  const bytesBy = new Map<WeightDtype, number>();
  for (const f of files) {
    for (const e of readSafetensorsHeader(f).entries.values()) {
      const d = ST_TO_HF[e.dtype];
      if (d) bytesBy.set(d, (bytesBy.get(d) ?? 0) + e.offsets[1] - e.offsets[0]);
    }
  }
  return [...bytesBy].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'float32';
}

/**
 * How a run stores its frozen weights, from the loader's decision (src/model/load.ts storageFor:
 * outside the wasm heaps, once per process in the checkpoint's own dtype or model.dtype, when
 * the backend has a frozen-linear kernel and the matrices pass the heap cap; else float32 in
 * every replica's heap).
 */
export function frozenStorageFor(storage: WeightPlacement, stored: WeightDtype): FrozenStorage {
  if (!storage.outside) return HEAP_F32;
  return { dtype: storage.dtype === 'auto' ? stored : storage.dtype, place: 'host' };
}

/** The loader's storage decision, as src/model/causal-lm.ts WeightStorage states it. */
export interface WeightPlacement {
  dtype: 'auto' | WeightDtype;
  outside: boolean;
}

export interface RunMemoryOptions {
  backend: string;
  mode: 'train' | 'forward';
  /** Data-parallel replicas (train.data_parallel resolved). */
  replicas: number;
  /** Every base weight trainable (adapter.method none, training). */
  fullTraining: boolean;
  /** Rows per pass; default train.batch_size (train) or train.eval_batch_size (forward). */
  batch?: number;
  machine?: MachineMemory;
  /** Known from the caller's looking at the model folder; read from the headers otherwise. */
  checkpointDtype?: WeightDtype;
  /** Where the loader will put the frozen weights (src/model/load.ts storageFor); default: float32 in the heaps. */
  storage?: WeightPlacement;
}

/** The estimate's input for a recipe whose plan is `plan` (null: no adapters). */
export function memoryInputForRecipe(recipe: Recipe, config: ModelConfig, plan: Pick<AdapterPlan, 'layers' | 'strategy'> | null, o: RunMemoryOptions): MemoryInput {
  const stored = o.checkpointDtype ?? checkpointDtype(recipe.model.path);
  const trainable = o.fullTraining ? baseParams(config).total : plan ? countPlan(plan, moduleShapes(config)).trainable : 0;
  const train = recipe.train as Recipe['train'] & { gradient_checkpointing?: boolean };
  return {
    config,
    checkpointDtype: stored,
    storage: frozenStorageFor(o.storage ?? { dtype: 'auto', outside: false }, stored),
    mode: o.mode,
    fullTraining: o.fullTraining,
    adapters: { trainable, rowFloats: plan && !o.fullTraining ? adapterRowFloats(plan, config) : 0 },
    batch: o.batch ?? (o.mode === 'train' ? recipe.train.batch_size : recipe.train.eval_batch_size),
    evalBatch: o.mode === 'train' ? recipe.train.eval_batch_size : null,
    seqLen: recipe.data.max_length,
    replicas: o.replicas,
    gradientCheckpointing: train.gradient_checkpointing === true,
    heapLimit: o.backend === 'wasm' ? WASM_HEAP_LIMIT : null,
    machine: o.machine ?? machineMemory(),
  };
}

/** A change to the recipe, as key=value overrides, and the input it would give. */
interface Change {
  /** Changes of one kind are tried smallest first; the first that fits is the advice. */
  kind: string;
  overrides: string;
  input: MemoryInput;
}

/** The recipe with `batch` rows per micro-batch, the effective batch kept by accumulating. */
function withBatch(m: MemoryInput, recipe: Recipe, b: number): Change {
  const key = m.mode === 'train' ? 'train.batch_size' : 'train.eval_batch_size';
  const accumulate = m.mode === 'train' ? ` train.gradient_accumulation_steps=${Math.ceil((m.batch * recipe.train.gradient_accumulation_steps) / b)}` : '';
  const evalBatch = m.evalBatch === null ? null : Math.min(m.evalBatch, b);
  const evalToo = evalBatch !== m.evalBatch ? ` train.eval_batch_size=${evalBatch}` : '';
  return { kind: 'batch', overrides: `${key}=${b}${accumulate}${evalToo}`, input: { ...m, batch: b, evalBatch, replicas: Math.min(m.replicas, b) } };
}

const halvings = (from: number, min: number) => {
  const out: number[] = [];
  for (let x = Math.floor(from / 2); x >= min; x = Math.floor(x / 2)) out.push(x);
  return out;
};

/** Changes a user can make, each kind smallest first; each is judged by re-estimating. */
function candidateChanges(m: MemoryInput, recipe: Recipe): Change[] {
  const out: Change[] = [];
  if (m.replicas > 1) out.push({ kind: 'replicas', overrides: 'train.data_parallel=1', input: { ...m, replicas: 1 } });
  const checkpointing = 'gradient_checkpointing' in recipe.train;
  if (m.mode === 'train' && !m.gradientCheckpointing && checkpointing) {
    out.push({ kind: 'checkpointing', overrides: 'train.gradient_checkpointing=true', input: { ...m, gradientCheckpointing: true } });
  }
  for (const b of halvings(m.batch, 1)) out.push(withBatch(m, recipe, b));
  for (const t of halvings(m.seqLen, 8)) out.push({ kind: 'length', overrides: `data.max_length=${t}`, input: { ...m, seqLen: t } });
  // together: one replica, checkpointing, the longest sequences that fit, then the largest batch
  for (const t of [m.seqLen, ...halvings(m.seqLen, 8)]) {
    for (const b of [m.batch, ...halvings(m.batch, 1)]) {
      const c = withBatch({ ...m, replicas: 1, seqLen: t, gradientCheckpointing: m.gradientCheckpointing || checkpointing }, recipe, b);
      const parts = ['train.data_parallel=1', ...(checkpointing && !m.gradientCheckpointing ? ['train.gradient_checkpointing=true'] : []),
        ...(b < m.batch ? [c.overrides] : []), ...(t < m.seqLen ? [`data.max_length=${t}`] : [])];
      out.push({ kind: 'together', overrides: parts.join(' '), input: c.input });
    }
  }
  return out;
}

/** What to change: the first change of each kind whose estimate fits, or why nothing will. */
export function memoryAdvice(m: MemoryInput, recipe: Recipe): string[] {
  const fitting = new Map<string, string>();
  const changes = candidateChanges(m, recipe);
  for (const c of changes) {
    if (fitting.has(c.kind)) continue;
    const e = estimateMemory(c.input);
    if (e.problems.length === 0) fitting.set(c.kind, `${c.overrides} (estimated ${formatMemory(e.total)}${e.heapLimit ? `, heap ${formatMemory(e.heap)}` : ''})`);
  }
  if (fitting.size > 0) return [...fitting.values()];
  const floor = estimateMemory(changes.at(-1)!.input);
  const weights = floor.items.find((i) => i.name === 'frozen weights' || i.name === 'weights + AdamW state');
  const why = weights && floor.heapLimit !== null && weights.heapBytes > floor.heapLimit * 0.75
    ? `the model's weights alone take ${formatMemory(weights.heapBytes)} of a wasm heap's ${formatMemory(floor.heapLimit)}`
    : `even 1 sequence of ${changes.at(-1)!.input.seqLen} tokens on 1 replica needs ${formatMemory(floor.total)}`;
  return [`no batch, length or replica count fits: ${why}; use a smaller model, or a machine with more free memory`];
}

/** Set HILO_MEMORY_CHECK=off to run anyway when the estimate is wrong for your machine. */
export const MEMORY_CHECK_ENV = 'HILO_MEMORY_CHECK';

/** The estimate as a HiloError when it breaks a limit (null when it fits or the check is off). */
export function memoryError(e: MemoryEstimate, m: MemoryInput, recipe: Recipe, what: string, env: NodeJS.ProcessEnv = process.env): HiloError | null {
  if (e.problems.length === 0 || env[MEMORY_CHECK_ENV] === 'off') return null;
  const advice = memoryAdvice(m, recipe).map((a) => `  - ${a}`).join('\n');
  return new HiloError(
    `${what} would not fit in memory: ${e.problems.join('; and ')}. Nothing was loaded.\n` +
      `Estimate for ${recipe.model.path} (${m.seqLen} tokens x ${m.batch} rows, ${m.replicas} replica${m.replicas === 1 ? '' : 's'}):\n` +
      `${formatMemoryEstimate(e)}\nWhat would fit (as key=value overrides):\n${advice}\n` +
      `(${MEMORY_CHECK_ENV}=off skips this check.)`,
  );
}

/** Estimate a run and throw its HiloError when it cannot fit; returns the estimate otherwise. */
export function checkRunMemory(recipe: Recipe, config: ModelConfig, plan: Pick<AdapterPlan, 'layers' | 'strategy'> | null, o: RunMemoryOptions, what = 'this run'): MemoryEstimate {
  const input = memoryInputForRecipe(recipe, config, plan, o);
  const e = estimateMemory(input);
  const err = memoryError(e, input, recipe, what);
  if (err) throw err;
  return e;
}

/** The plan inside a trained adapter folder (adapter_config.json), or null when it has none. */
export function planOfAdapterDir(dir: string): AdapterPlan | null {
  try {
    const plan = (JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as { plan?: AdapterPlan }).plan;
    return plan && Array.isArray(plan.layers) ? plan : null;
  } catch {
    return null; // loadAdapters names what is wrong with the folder
  }
}

/** The estimate and its verdict as `hilo plan` prints them. */
export function memoryReport(e: MemoryEstimate, m: MemoryInput, recipe: Recipe, backend: string): string {
  const head = `memory estimate (${backend}, ${m.seqLen} tokens x ${m.batch} rows, ${m.replicas} replica${m.replicas === 1 ? '' : 's'}):`;
  const verdict = e.problems.length === 0
    ? 'fits'
    : `would NOT fit: ${e.problems.join('; and ')}.\nWhat would fit (as key=value overrides):\n${memoryAdvice(m, recipe).map((a) => `  - ${a}`).join('\n')}`;
  return `${head}\n${formatMemoryEstimate(e)}\n${verdict}`;
}

/**
 * The least any use of a model needs: its weights loaded (decoded, then uploaded) and one
 * short forward. Commands that load a model without a training recipe (generate, score, export,
 * the probes) stop here, before reading a weight, when even that cannot fit.
 */
export function checkModelLoad(config: ModelConfig, dir: string, backend: string, storage: WeightPlacement = { dtype: 'auto', outside: false }): void {
  const stored = checkpointDtype(dir);
  const input: MemoryInput = {
    config, checkpointDtype: stored, storage: frozenStorageFor(storage, stored), mode: 'forward', fullTraining: false,
    adapters: { trainable: 0, rowFloats: 0 }, batch: 1, evalBatch: null, seqLen: 8, replicas: 1, gradientCheckpointing: false,
    heapLimit: backend === 'wasm' ? WASM_HEAP_LIMIT : null, machine: machineMemory(),
  };
  const e = estimateMemory(input);
  if (e.problems.length === 0 || process.env[MEMORY_CHECK_ENV] === 'off') return;
  throw new HiloError(
    `${dir}: the model cannot be loaded: ${e.problems.join('; and ')}. Nothing was loaded.\n${formatMemoryEstimate(e)}\n` +
      `Use a smaller model or a machine with more free memory (${MEMORY_CHECK_ENV}=off skips this check).`,
  );
}

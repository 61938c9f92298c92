/**
 * How much memory a run will take, from numbers alone (config, recipe, plan, machine), so that
 * a run that cannot fit stops before anything big is allocated, with the estimate, what is
 * available and what to change, instead of an OS kill or a raw wasm `Aborted()` minutes in.
 *
 * The model of memory, per process:
 *   - every replica (the main thread and each data-parallel worker) owns a wasm heap (on wasm);
 *     a heap holds its tensors and never shrinks, and tfjs-backend-wasm's tops out at 4 GiB;
 *   - a heap holds the frozen weights when `storage.place` is "heap" (today: float32, one copy
 *     per replica, plus the tied head transposed once), the trainables (values and gradients;
 *     AdamW's two moments on the main thread only), the activations the backward pass keeps,
 *     and the logits with their softmax and gradient [rows, vocab];
 *   - outside the heaps: the Node runtime of each thread, the shared parameter and gradient
 *     buffers of the replicas, frozen weights stored "host" (once per process, shared), and
 *     while loading, the decoded float32 copy of the checkpoint a loading thread holds.
 * The process peaks either while loading (the last replicas decode their copy while the others'
 * heaps are full) or during a step; the estimate is the larger of the two.
 *
 * Byte counts for activations are counted tensor by tensor from the forward pass (src/model/
 * llama.ts, src/adapters/mixture.ts) and scaled by ACTIVATION_SLACK, measured against peak RSS
 * (scripts/bench-results/memory-estimate.md).
 */
import { baseParams, familyOf } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { chunkRows } from '../ops/chunk-rows.ts';

/** As src/model/llama.ts builds them (not imported: this file stays free of tfjs). */
const INITIAL_ROPE_POSITIONS = 2048;

export { WASM_HEAP_LIMIT } from '../backend/limits.ts';

export const GiB = 2 ** 30;

/**
 * Tokens one evaluation forward scores at once (src/train/evaluate.ts rowNll): rows of a larger
 * evaluation batch go through a few at a time. A wasm heap never shrinks, and its allocator keeps
 * the blocks of the shapes it has served: an evaluation part of 8 x 128 after training shards of
 * 4 x 128 grew each replica's heap past the step's peak. A forward keeps no tape, so at this
 * size it stays below a checkpointed training shard of as many tokens.
 */
export const EVAL_CHUNK_TOKENS = 512;

/** Rows of `seqLen` tokens an evaluation forward takes at once: at least 1. */
export function evalChunkRows(seqLen: number, tokens = EVAL_CHUNK_TOKENS): number {
  return Math.max(1, Math.floor(tokens / Math.max(1, seqLen)));
}

/** Bytes per stored value of each frozen-weight dtype, in HF's words. */
export const DTYPE_BYTES = { float32: 4, bfloat16: 2, float16: 2 } as const;
export type WeightDtype = keyof typeof DTYPE_BYTES;

/**
 * How the frozen base weights are held. Today every replica uploads float32 copies into its
 * own wasm heap ({dtype: float32, place: heap}); storage that keeps them once per process in
 * their own dtype outside the heaps is {dtype, place: host}.
 */
export interface FrozenStorage {
  dtype: WeightDtype;
  place: 'heap' | 'host';
}
export const HEAP_F32: FrozenStorage = { dtype: 'float32', place: 'heap' };

/**
 * What a training step really keeps over the tensors layerFloats and adapterRowFloats count:
 * the gradient tape holds every op's saved inputs and outputs (casts, reshapes that copy,
 * transposes, masks) and the backward's gradients overlap them. Measured by
 * scripts/bench-memory.ts at 1.9-2.2 on SmolLM2-135M and Qwen2.5-0.5B shapes.
 */
export const ACTIVATION_SLACK = 2;

/**
 * A checkpointed layer's recomputation at its peak, as a share of the floats layerFloats and
 * adapterRowFloats count for it, with the wasm allocator's gaps: the lean backward
 * (src/ops/recompute.ts) frees each node's saved tensors and gradients once past them, so the
 * layer's tape and its gradients do not pile up. Measured on a 1-layer Llama-3.2-1B shape at
 * 4 x 128 tokens (HILO_HEAP_TRACE): 0.81 of them live at the peak, the heap 1.26x its live bytes
 * (scripts/bench-results/real-size.md).
 */
export const RECOMPUTE_SHARE = 1;
/** Node + tfjs + the wasm module of the main thread, and of each replica worker, before any tensor. */
export const MAIN_RUNTIME_BYTES = 300 * 2 ** 20;
export const WORKER_RUNTIME_BYTES = 120 * 2 ** 20;

export interface AdapterShape {
  /** Parameters the optimizer updates (adapters + routers, or every base weight). */
  trainable: number;
  /** Floats per token that the adapted modules keep for the backward pass (adapterRowFloats). */
  rowFloats: number;
}

export interface MachineMemory {
  /** Bytes a new allocation can get now: the least of MemAvailable and the cgroup's headroom. */
  availableBytes: number;
  totalBytes: number;
  /** Where availableBytes came from, in words (e.g. "MemAvailable", "cgroup memory.max"). */
  source: string;
}

export interface MemoryInput {
  config: ModelConfig;
  /** Float dtype of the checkpoint on disk; loading reads one tensor of it at a time. */
  checkpointDtype: WeightDtype;
  storage: FrozenStorage;
  /** train: forward + backward + AdamW; forward: eval / scoring (no tape). */
  mode: 'train' | 'forward';
  /** Every base weight is trainable (adapter.method none): no frozen copy, AdamW on all. */
  fullTraining: boolean;
  adapters: AdapterShape;
  /** Rows of a micro-batch (train.batch_size, or eval_batch_size for forward). */
  batch: number;
  /** Rows of an evaluation batch during training (train.eval_batch_size), or null for none. */
  evalBatch: number | null;
  seqLen: number;
  /** Replicas a micro-batch is split over (1 = the main thread alone). */
  replicas: number;
  /** Recompute each decoder layer in the backward pass: keep only its input. */
  gradientCheckpointing: boolean;
  /** Bytes one heap can hold (WASM_HEAP_LIMIT on wasm), null where tensors are not in a capped heap. */
  heapLimit: number | null;
  machine: MachineMemory;
}

export interface MemoryItem {
  name: string;
  /** For the whole process (per-replica terms already multiplied). */
  bytes: number;
  /** The same term in the main thread's heap (0 when it lives outside the heaps). */
  heapBytes: number;
  /** How it was counted, e.g. "2 replicas x 1.84 GiB". */
  detail: string;
}

export interface MemoryEstimate {
  items: MemoryItem[];
  /** Peak while loading (the replicas' decoded copies beside the full heaps). */
  loadPeak: number;
  /** Peak during a step. */
  stepPeak: number;
  /** max(loadPeak, stepPeak): what the machine must have free. */
  total: number;
  /** The main thread's heap at its peak (the largest heap), and its cap. */
  heap: number;
  heapLimit: number | null;
  available: number;
  /** Empty when the run fits; else each limit it breaks, in words. */
  problems: string[];
}

/**
 * Floats one decoder layer keeps per token for the backward pass (rows), and per sequence for
 * attention's [heads, T, T] scores and probabilities: the norms' inputs and outputs, q/k/v and
 * their rotated forms, attention's output, the MLP's gate, up, activation and product, and the
 * residual sums.
 */
export function layerFloats(c: ModelConfig, seqLen: number): { perRow: number; perSequence: number } {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  return { perRow: 6 * H + 5 * q + 6 * kv + 5 * I, perSequence: 2 * c.numHeads * seqLen * seqLen };
}

const fmt = (b: number) => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`);
export { fmt as formatMemory };

interface Pass {
  activations: number;
  logits: number;
  logitCopies: number;
  rows: number;
  detail: string;
}

/** Bytes one replica's pass over its shard of `batch` sequences keeps at its peak. */
function pass(m: MemoryInput, mode: 'train' | 'forward', batch: number): Pass {
  const c = m.config;
  const shard = Math.ceil(batch / Math.max(1, m.replicas)); // the main thread's shard, the largest
  // a forward scores its rows a chunk at a time (evalChunkRows)
  const seqs = mode === 'forward' ? Math.min(shard, evalChunkRows(m.seqLen)) : shard;
  const rows = seqs * m.seqLen;
  const layer = layerFloats(c, m.seqLen);
  const perLayer = rows * (layer.perRow + m.adapters.rowFloats / Math.max(1, c.numLayers)) + seqs * layer.perSequence;
  const what = `${seqs} x ${m.seqLen} tokens${m.replicas > 1 ? ' per replica' : ''}${seqs < shard ? ` at a time (of ${shard})` : ''}`;
  let floats: number;
  let detail: string;
  if (mode === 'forward') {
    // without a tape each layer's intermediates go when the layer is done (BaseCausalLM.layerStep):
    // one layer's at a time, plus every layer's output [rows, H] until the pass ends
    floats = perLayer + c.numLayers * rows * c.hiddenSize;
    detail = `${m.mode === 'train' ? 'evaluation ' : ''}forward: one layer's ${fmt(perLayer * 4)} + ${c.numLayers} layer outputs, ${what}`;
  } else if (m.gradientCheckpointing) {
    // each layer's input [rows, H], and the gradient flowing back through them, beside one layer's
    // recomputation with its gradients
    floats = (c.numLayers + 1) * rows * c.hiddenSize + RECOMPUTE_SHARE * perLayer;
    detail = `training step: each layer's input + one layer recomputed, ${what}`;
  } else {
    floats = ACTIVATION_SLACK * c.numLayers * perLayer;
    detail = `training step: ${c.numLayers} layers x ${fmt(ACTIVATION_SLACK * perLayer * 4)} kept for the backward, ${what}`;
  }
  // logits [rows, V]: a step's forward makes them and the exps it keeps for the backward, whose
  // recomputation makes the exps again and their gradient (the logits themselves freed: nothing
  // saved them); a trainable head's whole tape keeps all three. A frozen head's come a chunk of
  // rows at a time (src/ops/cross-entropy.ts chunkedTokenNll)
  const logitCopies = mode === 'train' ? (m.fullTraining ? 3 : 2) : 2;
  const logitRows = m.fullTraining ? rows : chunkRows(c.vocabSize, rows);
  return { activations: floats * 4, logits: logitCopies * logitRows * c.vocabSize * 4, logitCopies, rows: logitRows, detail };
}

/** The estimate of a run; pure. */
export function estimateMemory(m: MemoryInput): MemoryEstimate {
  const c = m.config;
  const P = Math.max(1, m.replicas);
  const { total: values, embedding } = baseParams(c);
  const items: MemoryItem[] = [];
  const add = (name: string, perReplica: number, count: number, inHeap: boolean, detail: string) => {
    items.push({ name, bytes: perReplica * count, heapBytes: inHeap ? perReplica : 0, detail });
  };
  const xP = (b: number) => (P > 1 ? `${P} replicas x ${fmt(b)}` : fmt(b));

  // frozen weights (none when they are the trainables)
  const frozenValues = m.fullTraining ? 0 : values;
  // a heap model's tied head is its own transposed copy; stored weights multiply by the embedding itself
  const tiedHead = !m.fullTraining && c.tieWordEmbeddings && m.storage.place === 'heap' ? embedding : 0;
  const frozenBytes = (frozenValues + tiedHead) * DTYPE_BYTES[m.storage.dtype];
  const frozenDetail = `${(frozenValues / 1e6).toFixed(0)}M values${tiedHead ? ' + the tied head transposed' : ''} in ${m.storage.dtype}`;
  if (frozenBytes > 0) {
    if (m.storage.place === 'heap') add('frozen weights', frozenBytes, P, true, `${frozenDetail}, in every replica's heap: ${xP(frozenBytes)}`);
    else add('frozen weights', frozenBytes, 1, false, `${frozenDetail}, once outside the heaps, shared by the replicas`);
  }
  // built for min(max_position_embeddings, 2048) rows, doubled when a longer sequence comes
  let ropeRows = Math.min(c.maxPositions, INITIAL_ROPE_POSITIONS);
  while (ropeRows < m.seqLen) ropeRows *= 2;
  const rope = familyOf(c).positions === 'rope' ? 2 * ropeRows * c.headDim * 4 : 0;
  add('RoPE tables', rope, P, true, `cos and sin [${ropeRows}, ${c.headDim}] float32`);

  // trainables: values + gradient in every replica, AdamW moments on the main thread, and a
  // shared buffer per worker (parameters in, its gradients out: src/train/replicas.ts)
  const t = m.adapters.trainable;
  if (m.mode === 'train') {
    const mainBytes = t * 4 * 4;
    items.push({
      name: m.fullTraining ? 'weights + AdamW state' : 'adapters + AdamW state',
      bytes: mainBytes + (P - 1) * t * 12,
      heapBytes: mainBytes,
      detail: `${(t / 1e6).toFixed(2)}M trainable: values, gradients, 2 moments (float32)${P > 1 ? '; values + gradients per worker and a shared buffer each' : ''}`,
    });
  } else {
    add('adapters', t * 4, P, true, `${(t / 1e6).toFixed(2)}M values (float32)`);
  }

  // activations and logits of the largest pass a replica runs: a training step, or the
  // evaluation's forward (the model's forward is one tidy, so every layer's tensors live to its end)
  const passes = [pass(m, m.mode, m.batch)];
  if (m.mode === 'train' && m.evalBatch) passes.push(pass(m, 'forward', m.evalBatch));
  const big = passes.reduce((a, b) => (b.activations + b.logits > a.activations + a.logits ? b : a));
  add('activations', big.activations, P, true, P > 1 ? `${big.detail}: ${xP(big.activations)}` : big.detail);
  add('logits', big.logits, P, true, `${big.logitCopies} x [${big.rows}, ${c.vocabSize}] float32${P > 1 ? ` in each of ${P} replicas` : ''}`);

  add('runtime', MAIN_RUNTIME_BYTES, 1, false, 'Node, tfjs and the wasm module');
  if (P > 1) add('replica runtimes', WORKER_RUNTIME_BYTES, P - 1, false, `${P - 1} worker threads`);

  const stepPeak = items.reduce((s, i) => s + i.bytes, 0);
  // Loading: a thread decodes the whole checkpoint to float32 before uploading it (src/model/
  // load.ts); the workers load together while the main heap is already full.
  const decoded = m.fullTraining || m.storage.place === 'heap' ? values * 4 : 0;
  const heapWeights = m.storage.place === 'heap' || m.fullTraining ? (m.fullTraining ? values * 4 : frozenBytes) + rope : rope;
  const shared = m.storage.place === 'host' ? frozenBytes : 0;
  const loaders = P > 1 ? P - 1 : 1;
  const loadPeak = MAIN_RUNTIME_BYTES + (P - 1) * WORKER_RUNTIME_BYTES + shared + heapWeights * P + decoded * loaders;
  const total = Math.max(stepPeak, loadPeak);
  const heap = items.reduce((s, i) => s + i.heapBytes, 0);

  const problems: string[] = [];
  if (m.heapLimit !== null && heap > m.heapLimit) {
    const top = items.filter((i) => i.heapBytes > 0).sort((a, b) => b.heapBytes - a.heapBytes).slice(0, 3);
    problems.push(`one replica's wasm heap would need ${fmt(heap)} (${top.map((i) => `${i.name} ${fmt(i.heapBytes)}`).join(', ')}), ` +
      `above tfjs-backend-wasm's ${fmt(m.heapLimit)} per heap`);
  }
  if (total > m.machine.availableBytes) {
    problems.push(`the process would need ${fmt(total)} at its peak (${stepPeak >= loadPeak ? 'during a step' : 'while loading'}), ` +
      `above the ${fmt(m.machine.availableBytes)} available (${m.machine.source}; ${fmt(m.machine.totalBytes)} total)`);
  }
  return { items, loadPeak, stepPeak, total, heap, heapLimit: m.heapLimit, available: m.machine.availableBytes, problems };
}

/** The estimate as a table: item, bytes, how counted; then peaks, heap and what is available. */
export function formatMemoryEstimate(e: MemoryEstimate): string {
  const w = Math.max(...e.items.map((i) => i.name.length));
  const lines = e.items.filter((i) => i.bytes > 0).map((i) => `  ${i.name.padEnd(w)}  ${fmt(i.bytes).padStart(10)}  ${i.detail}`);
  lines.push(`  ${'peak'.padEnd(w)}  ${fmt(e.total).padStart(10)}  ${e.stepPeak >= e.loadPeak ? 'during a step' : 'while loading'} (step ${fmt(e.stepPeak)}, load ${fmt(e.loadPeak)}); available ${fmt(e.available)}`);
  if (e.heapLimit !== null) lines.push(`  ${'wasm heap'.padEnd(w)}  ${fmt(e.heap).padStart(10)}  the main replica's heap; limit ${fmt(e.heapLimit)} per heap`);
  return lines.join('\n');
}

/** One line: the estimated peak, the heap against its cap, what is available. */
export function memorySummary(e: MemoryEstimate): string {
  const heap = e.heapLimit === null ? '' : `, wasm heap ${fmt(e.heap)} of ${fmt(e.heapLimit)}`;
  return `estimated peak ${fmt(e.total)}${heap}; ${fmt(e.available)} available`;
}

/**
 * What every architecture shares: its weights (HF names), the frozen linear modules adapters
 * wrap, the embedding lookup and LM head, the per-token loss, conversion back to HF layouts and
 * disposal. An architecture's family file (families.ts) lists its tensors as WeightSpecs; its
 * model file passes them here and writes `run` (ids -> final hidden rows).
 *
 * Where frozen weights live (WeightStorage): as tf variables (linear kernels transposed to
 * [in, out]), or, with `outside`, the weight matrices (projections, embedding, LM head) as
 * StoredMatrix bytes in shared memory in their own dtype (src/ops/stored.ts), multiplied through
 * the frozen linear op (src/ops/frozen-linear.ts); norms and biases stay variables either way.
 */
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { frozenLinear } from '../ops/frozen-linear.ts';
import { decodeAll, encodeShared, gatherRows, roundTo, type StoredDtype, type StoredMatrix } from '../ops/stored.ts';
import { chunkedTokenNll, storedHeadNll, tokenNll } from '../ops/cross-entropy.ts';
import { checkpointed } from './checkpoint-layer.ts';
import { isMatrix, type WeightSpec } from './family.ts';
import { FrozenLinearLayer } from './linear.ts';
import { transposeData } from './transpose.ts';
import type { CausalLM, ForwardContext, ForwardOptions, FrozenLinear, KvCache, LinearModule, ModelConfig } from './types.ts';

/** One HF tensor an architecture needs. */
/** Values of one tensor in its HF layout (what the safetensors reader returns). */
export interface HfTensorData {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** A floating tensor's bytes as the checkpoint holds them (readCheckpoint's `raw` mode), HF layout. */
export interface RawTensorData {
  shape: number[];
  dtype: StoredDtype;
  bytes: SharedArrayBuffer;
}

export type AnyTensorData = HfTensorData | RawTensorData;

/** Where and in which dtype a model's frozen weights are held. */
export interface WeightStorage {
  /** auto: as the checkpoint stores them (float32 for anything else); otherwise rounded to this. */
  dtype: 'auto' | StoredDtype;
  /** Weight matrices outside the tensor engine, as StoredMatrix (frozen models only). */
  outside: boolean;
}

export const HEAP_STORAGE: WeightStorage = { dtype: 'auto', outside: false };

/** What an architecture's constructor takes besides its config and tensors. */
export interface ModelOptions {
  trainable?: boolean;
  source?: string;
  storage?: WeightStorage;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export { transposeData };

export abstract class BaseCausalLM implements CausalLM {
  readonly modules = new Map<string, LinearModule>();
  readonly baseModules = new Map<string, FrozenLinear>();
  readonly weights = new Map<string, tf.Variable>();
  /** Weight matrices held outside the engine (WeightStorage.outside), by HF tensor name. */
  readonly stored = new Map<string, StoredMatrix>();
  /** Tensors derived once from the weights or config (RoPE tables, transposed tied head). */
  protected readonly derived: tf.Tensor[] = [];
  /** The token embedding's name, and the tensor the LM head multiplies by (the embedding when tied). */
  private readonly embeddingName: string;
  private readonly headName: string;
  /** Tied and frozen on the heap: the embedding transposed once, [H, V], so the head is a plain matMul. */
  private headKernel: tf.Tensor2D | null = null;

  /** Consumes `hf`: each entry is removed once its weight exists; what is left was not used. */
  protected constructor(
    readonly config: ModelConfig,
    private readonly specs: WeightSpec[],
    hf: Map<string, AnyTensorData>,
    readonly trainable: boolean,
    source = 'model',
    readonly storage: WeightStorage = HEAP_STORAGE,
  ) {
    this.embeddingName = specs.find((s) => s.embedding)!.name;
    this.headName = specs.some((s) => s.name === 'lm_head.weight') ? 'lm_head.weight' : this.embeddingName;
    const outside = storage.outside && !trainable;
    try {
      for (const s of specs) {
        const t = checked(s, hf.get(s.name), source);
        if (outside && isMatrix(s)) this.stored.set(s.name, storedOf(s, t, storage.dtype));
        else this.weights.set(s.name, this.makeVariable(s, t, storage.dtype));
        hf.delete(s.name); // let the host copy be collected as soon as the weight is held
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    for (const s of specs) {
      if (!s.adaptable) continue;
      const path = s.name.replace(/\.weight$/, '');
      const layer = new FrozenLinearLayer(
        path, this.weights.get(s.name) ?? null, this.weights.get(`${path}.bias`) ?? null, s.layout === 'conv1d' ? 'conv1d' : 'linear', this.stored.get(s.name) ?? null);
      this.modules.set(path, layer);
      this.baseModules.set(path, layer);
    }
    if (this.headName === this.embeddingName && !trainable && !this.stored.has(this.headName)) {
      this.headKernel = tf.tidy(() => tf.transpose(this.w<tf.Rank.R2>(this.embeddingName)));
      this.derived.push(this.headKernel);
    }
  }

  private makeVariable(s: WeightSpec, t: AnyTensorData, dtype: WeightStorage['dtype']): tf.Variable {
    let data = floatsOf(t);
    if (dtype !== 'auto') data = roundTo(data, dtype);
    const [values, shape] = s.layout === 'linear' ? [transposeData(data, s.shape[0], s.shape[1]), [s.shape[1], s.shape[0]]] : [data, s.shape];
    return tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), this.trainable));
  }

  /** Token embeddings [N, H] of ids [B, T] (or [N]). */
  protected embed(inputIds: tf.Tensor): tf.Tensor2D {
    const N = inputIds.size;
    const s = this.stored.get(this.embeddingName);
    if (s) return tf.tensor2d(gatherRows(s, inputIds.dataSync()), [N, s.cols]);
    return tf.gather(this.w<tf.Rank.R2>(this.embeddingName), tf.cast(inputIds, 'int32').reshape([N])) as tf.Tensor2D; // [N, H]
  }

  /** Logits [N, V] of final hidden rows x [N, H]. */
  protected headLogits(x: tf.Tensor2D): tf.Tensor2D {
    const s = this.stored.get(this.headName);
    if (s) return frozenLinear(x, s); // [N, H] x [H, V], from the stored [V, H]
    const head = this.headKernel ?? (this.headName === this.embeddingName
      ? tf.transpose(this.w<tf.Rank.R2>(this.embeddingName)) // trainable tie: follow the embedding
      : this.w<tf.Rank.R2>('lm_head.weight')); // [H, V]
    return tf.matMul(x, head) as tf.Tensor2D; // [N, H] x [H, V]
  }

  /**
   * The decoder layer under HF path `prefix` (e.g. "model.layers.3.") on x [N, H], by `body`;
   * recomputed in the backward (gradient checkpointing) when a training context asks for it.
   * `consts` are the other tensors body reads (masks, RoPE tables): body must take them from its
   * argument, which the recomputation fills with saved copies.
   */
  protected layerStep(
    prefix: string, x: tf.Tensor2D, ctx: ForwardContext | undefined, consts: tf.Tensor[],
    body: (x: tf.Tensor2D, ctx: ForwardContext | undefined, consts: tf.Tensor[]) => tf.Tensor2D,
  ): tf.Tensor2D {
    // Without training, nothing needs a layer's intermediates once its output exists: free them
    // per layer, not at the end of the whole forward (an evaluation pass over a 24-layer model
    // would otherwise hold every layer's at once). Kept tensors (router losses, KV cache) stay.
    if (!ctx?.training) return tf.tidy(() => body(x, ctx, consts));
    if (!ctx.checkpointLayers) return body(x, ctx, consts);
    return checkpointed(x, ctx, this.trainablesUnder(prefix), consts, body);
  }

  /** The trainable variables a layer reads: its modules' (adapters) and its own trainable weights. */
  private trainablesUnder(prefix: string): tf.Variable[] {
    const vars: tf.Variable[] = [];
    for (const [path, m] of this.modules) {
      const own = (m as { variables?: () => tf.Variable[] }).variables;
      if (path.startsWith(prefix) && typeof own === 'function') vars.push(...own.call(m));
    }
    for (const [name, v] of this.weights) if (name.startsWith(prefix) && v.trainable) vars.push(v);
    return vars;
  }

  /** The variable of HF tensor `name`. */
  protected w<R extends tf.Rank = tf.Rank>(name: string): tf.Tensor<R> {
    const v = this.weights.get(name);
    if (!v) throw new Error(`internal: no weight ${name}${this.stored.has(name) ? ' on the engine (it is held outside it)' : ''}`);
    return v as tf.Tensor as tf.Tensor<R>;
  }

  /** The current module at HF path `path` (an adapter wrapper once injected). */
  protected linear(path: string): LinearModule {
    const m = this.modules.get(path);
    if (!m) throw new Error(`internal: no module ${path}`);
    return m;
  }

  /**
   * The final hidden rows [B·T, H] for ids [B, T], handed to `finish` inside the forward's tidy;
   * its result is what the forward returns (kept past the tidy).
   */
  protected abstract run<T extends tf.Tensor>(inputIds: tf.Tensor2D, opts: ForwardOptions, finish: (x: tf.Tensor2D) => T): T;

  /** Logits [B, T, V] for ids [B, T]. */
  forward(inputIds: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const [B, T] = inputIds.shape;
    return this.run(inputIds, opts, (x) => this.headLogits(x).reshape([B, T, this.config.vocabSize]) as tf.Tensor3D);
  }

  /**
   * Per-token NLL [B·T] of `targets` (shifted; IGNORE_INDEX where nothing counts) for ids [B, T].
   * A frozen head's logits are made and dropped a chunk at a time (storedHeadNll for a head held
   * outside the engine, else chunkedTokenNll), so the whole [B·T, V] is never held with its
   * gradient; a trainable head takes the plain path.
   */
  tokenNll(inputIds: tf.Tensor2D, targets: Int32Array, opts: ForwardOptions = {}): tf.Tensor1D {
    if (this.trainable) {
      return this.run(inputIds, opts, (x) => tokenNll(this.headLogits(x), targets));
    }
    const stored = this.stored.get(this.headName);
    if (stored) return this.run(inputIds, opts, (x) => storedHeadNll(x, stored, targets));
    return this.run(inputIds, opts, (x) => chunkedTokenNll(x, (rows) => this.headLogits(rows), targets, this.config.vocabSize));
  }

  /** Base weights in HF names and layouts; new tensors the caller disposes. */
  hfTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const s of this.specs) {
      const st = this.stored.get(s.name);
      if (st) {
        out.set(s.name, tf.tensor(decodeAll(st), s.shape, 'float32')); // the stored layout is HF's
        continue;
      }
      const v = this.weights.get(s.name)!;
      out.set(s.name, tf.tidy(() => (s.layout === 'linear' ? tf.transpose(v) : tf.clone(v))));
    }
    return out;
  }

  /**
   * Base weights in HF names and layouts as host data, without the engine: a matrix held outside
   * it as its stored bytes (shared, not copied), the rest read back as float32. What saveModel
   * and the merged export take, so a model larger than the wasm heap goes through neither.
   */
  hostTensors(): Map<string, AnyTensorData> {
    const out = new Map<string, AnyTensorData>();
    for (const s of this.specs) {
      const st = this.stored.get(s.name);
      if (st) {
        out.set(s.name, { shape: s.shape, dtype: st.dtype, bytes: st.bytes }); // the stored layout is HF's
        continue;
      }
      const v = this.weights.get(s.name)!;
      const t = s.layout === 'linear' ? tf.transpose(v) : v;
      try {
        out.set(s.name, { shape: s.shape, data: (t.dataSync() as Float32Array).slice() }); // a copy: the cpu backend hands out its own
      } finally {
        if (t !== v) t.dispose();
      }
    }
    return out;
  }

  /** The weights held outside the engine in HF names and layouts: what replicas share (src/train/replicas.ts). */
  sharedTensors(): Map<string, RawTensorData> {
    const out = new Map<string, RawTensorData>();
    for (const s of this.specs) {
      const st = this.stored.get(s.name);
      if (st) out.set(s.name, { shape: s.shape, dtype: st.dtype, bytes: st.bytes });
    }
    return out;
  }

  /** Number of values in the base weights. */
  numParameters(): number {
    let n = 0;
    for (const v of this.weights.values()) n += v.size;
    for (const s of this.stored.values()) n += s.rows * s.cols;
    return n;
  }

  dispose(): void {
    for (const v of this.weights.values()) v.dispose();
    this.weights.clear();
    for (const t of this.derived) t.dispose();
    this.derived.length = 0;
    this.modules.clear();
    this.baseModules.clear();
    this.stored.clear();
  }
}

/** `t`, checked against its spec: present, the shape config.json implies, floating. */
function checked(s: WeightSpec, t: AnyTensorData | undefined, source: string): AnyTensorData {
  if (!t) throw new HiloError(`${source}: missing tensor "${s.name}" [${s.shape.join(', ')}]`);
  if (!sameShape(t.shape, s.shape)) {
    throw new HiloError(`${source}: tensor "${s.name}" has shape [${t.shape.join(', ')}]; config.json implies [${s.shape.join(', ')}]`);
  }
  if ('data' in t && !(t.data instanceof Float32Array)) throw new HiloError(`${source}: tensor "${s.name}" is an integer tensor; expected floats`);
  return t;
}

/** A tensor's values as float32 (raw bytes decoded: exact). */
export function floatsOf(t: AnyTensorData): Float32Array {
  if ('data' in t) return t.data as Float32Array;
  const n = t.shape.reduce((a, b) => a * b, 1);
  return decodeAll({ dtype: t.dtype, rows: 1, cols: n, layout: 'in-out', bytes: t.bytes });
}

/** A weight matrix held outside the engine: the checkpoint's bytes as they are where the dtype allows. */
function storedOf(s: WeightSpec, t: AnyTensorData, want: WeightStorage['dtype']): StoredMatrix {
  const [rows, cols] = s.shape;
  const layout = s.layout === 'conv1d' ? 'in-out' : 'out-in'; // nn.Linear [out, in]; an embedding [V, H] is the tied head's
  if ('bytes' in t && (want === 'auto' || want === t.dtype)) return { dtype: t.dtype, rows, cols, layout, bytes: t.bytes };
  const dtype: StoredDtype = want === 'auto' ? 'float32' : want;
  return { dtype, rows, cols, layout, bytes: encodeShared(floatsOf(t), dtype) };
}

/** An empty cache for incremental decoding; dispose it with disposeKvCache. */
export function createKvCache(): KvCache {
  return { length: 0, keys: [], values: [] };
}

export function disposeKvCache(cache: KvCache): void {
  tf.dispose([...cache.keys, ...cache.values]);
  cache.keys = [];
  cache.values = [];
  cache.length = 0;
}

/**
 * Layer `l`'s keys/values with the new ones [B, T, KV, d] appended after the cached ones,
 * kept (they outlive the forward's tidy) in `next`, the cache's state after this forward.
 */
export function appendToCache(cache: KvCache, next: KvCache, l: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const keys = cache.length > 0 ? tf.concat([cache.keys[l], k], 1) : k; // [B, past+T, KV, d]
  const values = cache.length > 0 ? tf.concat([cache.values[l], v], 1) : v;
  next.keys[l] = tf.keep(keys);
  next.values[l] = tf.keep(values);
  return [keys, values];
}

/** Replace `cache`'s state by `next` (after a forward succeeded), freeing the old tensors. */
export function commitCache(cache: KvCache, next: KvCache): void {
  tf.dispose([...cache.keys, ...cache.values]);
  Object.assign(cache, next);
}

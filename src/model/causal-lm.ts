/**
 * What every architecture shares: its weights as tf variables (HF names; linear kernels stored
 * [in, out]), the frozen linear modules adapters wrap, conversion back to HF layouts and
 * disposal. An architecture file lists its tensors as WeightSpecs and writes `forward`.
 */
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { FrozenLinearLayer } from './linear.ts';
import type { CausalLM, ForwardOptions, FrozenLinear, KvCache, LinearModule, ModelConfig } from './types.ts';

/** One HF tensor an architecture needs. */
export interface WeightSpec {
  name: string;
  /** Shape in the HF file. */
  shape: number[];
  /**
   * linear: HF nn.Linear [out, in], stored transposed as [in, out];
   * conv1d: GPT-2 Conv1D, already [in, out]; plain: stored as in the file.
   */
  layout: 'linear' | 'conv1d' | 'plain';
  /** Adaptable projection: gets a FrozenLinear in `modules` under the name minus `.weight`. */
  adaptable?: boolean;
  /** HF initialisation for training from scratch: N(0, std * stdScale), ones or zeros. */
  init: 'normal' | 'ones' | 'zeros';
  stdScale?: number;
}

/** Values of one tensor in its HF layout (what the safetensors reader returns). */
export interface HfTensorData {
  shape: number[];
  data: Float32Array | Int32Array;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** [rows, cols] row-major -> [cols, rows] row-major. */
export function transposeData(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c];
  }
  return out;
}

export abstract class BaseCausalLM implements CausalLM {
  readonly modules = new Map<string, LinearModule>();
  readonly baseModules = new Map<string, FrozenLinear>();
  readonly weights = new Map<string, tf.Variable>();
  /** Tensors derived once from the weights or config (RoPE tables, transposed tied head). */
  protected readonly derived: tf.Tensor[] = [];

  /** Consumes `hf`: each entry is removed once its variable exists; what is left was not used. */
  protected constructor(
    readonly config: ModelConfig,
    private readonly specs: WeightSpec[],
    hf: Map<string, HfTensorData>,
    readonly trainable: boolean,
    source = 'model',
  ) {
    try {
      for (const s of specs) {
        this.weights.set(s.name, this.makeVariable(s, hf.get(s.name), source));
        hf.delete(s.name); // let the host copy be collected as soon as the backend holds it
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    for (const s of specs) {
      if (!s.adaptable) continue;
      const path = s.name.replace(/\.weight$/, '');
      const layer = new FrozenLinearLayer(
        path, this.weights.get(s.name)!, this.weights.get(`${path}.bias`) ?? null, s.layout === 'conv1d' ? 'conv1d' : 'linear');
      this.modules.set(path, layer);
      this.baseModules.set(path, layer);
    }
  }

  private makeVariable(s: WeightSpec, t: HfTensorData | undefined, source: string): tf.Variable {
    if (!t) throw new HiloError(`${source}: missing tensor "${s.name}" [${s.shape.join(', ')}]`);
    if (!sameShape(t.shape, s.shape)) {
      throw new HiloError(`${source}: tensor "${s.name}" has shape [${t.shape.join(', ')}]; config.json implies [${s.shape.join(', ')}]`);
    }
    if (!(t.data instanceof Float32Array)) throw new HiloError(`${source}: tensor "${s.name}" is an integer tensor; expected floats`);
    const [data, shape] = s.layout === 'linear' ? [transposeData(t.data, s.shape[0], s.shape[1]), [s.shape[1], s.shape[0]]] : [t.data, s.shape];
    return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), this.trainable));
  }

  /** The variable of HF tensor `name`. */
  protected w<R extends tf.Rank = tf.Rank>(name: string): tf.Tensor<R> {
    const v = this.weights.get(name);
    if (!v) throw new Error(`internal: no weight ${name}`);
    return v as unknown as tf.Tensor<R>;
  }

  /** The current module at HF path `path` (an adapter wrapper once injected). */
  protected linear(path: string): LinearModule {
    const m = this.modules.get(path);
    if (!m) throw new Error(`internal: no module ${path}`);
    return m;
  }

  abstract forward(inputIds: tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D;

  /** Base weights in HF names and layouts; new tensors the caller disposes. */
  hfTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const s of this.specs) {
      const v = this.weights.get(s.name)!;
      out.set(s.name, tf.tidy(() => (s.layout === 'linear' ? tf.transpose(v) : tf.clone(v))));
    }
    return out;
  }

  /** Number of values in the base weights. */
  numParameters(): number {
    let n = 0;
    for (const v of this.weights.values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of this.weights.values()) v.dispose();
    this.weights.clear();
    for (const t of this.derived) t.dispose();
    this.derived.length = 0;
    this.modules.clear();
    this.baseModules.clear();
  }
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

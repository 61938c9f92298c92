/**
 * The Llama family (Llama, Mistral, Qwen2, SmolLM) with Hugging Face semantics, read top to
 * bottom: token embedding -> N x [RMSNorm -> GQA attention with RoPE -> residual -> RMSNorm ->
 * SwiGLU MLP -> residual] -> RMSNorm -> LM head (tied to the embedding or not).
 *
 * Shapes: B batch, T sequence, N = B*T rows, H hidden, Hq/Hkv query/kv heads, d head_dim, V vocab.
 * Activations travel as [N, H] rows so every projection is one [N, in] x [in, out] matMul
 * through `modules` (which adapters may have wrapped).
 */
import * as tf from '@tensorflow/tfjs';
import { appendToCache, BaseCausalLM, commitCache, type AnyTensorData, type ModelOptions } from './causal-lm.ts';
import { LLAMA_FAMILY } from './family-llama.ts';
import { additiveMask, gatedActivation, groupedAttention, rmsNorm, rotary } from './ops.ts';
import type { ForwardOptions, KvCache, ModelConfig } from './types.ts';

/**
 * RoPE inverse frequencies exactly as transformers computes them in float32, including the
 * `linear` and `llama3` rope_scaling rules (config.ts has validated the block).
 */
export function ropeInvFreq(c: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const f = Math.fround;
  const d = c.headDim;
  const inv = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = f(1 / f(Math.pow(c.ropeTheta, f((2 * i) / d))));
  const rs = c.ropeScaling;
  const type = rs ? (rs.rope_type ?? rs.type ?? 'default') : 'default';
  if (type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] = inv[i] / Number(rs!.factor);
  } else if (type === 'llama3') {
    const factor = Number(rs!.factor);
    const low = Number(rs!.low_freq_factor);
    const high = Number(rs!.high_freq_factor);
    const oldLen = Number(rs!.original_max_position_embeddings);
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      // long wavelengths are slowed by `factor`, short ones kept, the band between interpolated
      const slowed = wavelen > oldLen / low ? inv[i] / factor : inv[i];
      const medium = !(wavelen < oldLen / high) && !(wavelen > oldLen / low);
      const smooth = (oldLen / wavelen - low) / (high - low);
      inv[i] = medium ? (1 - smooth) * (slowed / factor) + smooth * slowed : slowed;
    }
  }
  return inv;
}

/**
 * cos and "signed sin" tables [L, d] for positions 0..L-1: emb = cat(freqs, freqs) (HF
 * rotate_half pairs i with i + d/2). sinRot = cat(-sin, sin), so that
 * rotate_half(x) * sin == cat(x2, x1) * sinRot and the negation is paid once, here.
 */
export function ropeTables(invFreq: Float32Array, length: number): { cos: Float32Array; sinRot: Float32Array } {
  const half = invFreq.length;
  const d = 2 * half;
  const cos = new Float32Array(length * d);
  const sinRot = new Float32Array(length * d);
  for (let p = 0; p < length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]); // float32 product, as HF
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * d + i] = c;
      cos[p * d + half + i] = c;
      sinRot[p * d + i] = -s;
      sinRot[p * d + half + i] = s;
    }
  }
  return { cos, sinRot };
}

/**
 * [d, d] 0/1 matrix swapping the halves of a row: x·P = cat(x2, x1). One small matMul (exact:
 * one nonzero term per output) replaces split + concat, and its gradient is one more matMul
 * instead of concat + split, kernels that took a visible share of a wasm training step
 * (docs/performance.md, "Figures behind the code").
 */
export function halfSwap(d: number): Float32Array {
  const p = new Float32Array(d * d);
  for (let i = 0; i < d; i++) p[i * d + ((i + d / 2) % d)] = 1;
  return p;
}

/** RoPE table rows built with the model; longer sequences grow the tables. */
export const INITIAL_ROPE_POSITIONS = 2048;

export class LlamaForCausalLM extends BaseCausalLM {
  private readonly invFreq: Float32Array;
  private cosTable!: tf.Tensor2D; // [L, d]
  private sinTable!: tf.Tensor2D; // [L, d]
  private readonly swap: tf.Tensor2D; // [d, d] halfSwap

  constructor(config: ModelConfig, hf: Map<string, AnyTensorData>, opts: ModelOptions = {}) {
    super(config, LLAMA_FAMILY.weightSpecs(config), hf, opts.trainable ?? false, opts.source, opts.storage);
    this.invFreq = ropeInvFreq(config);
    // Sized for what is run, not for max_position_embeddings (131072 for Llama 3: 128 MB of
    // tables); forward grows them on demand.
    this.buildRope(Math.min(config.maxPositions, INITIAL_ROPE_POSITIONS));
    this.swap = tf.tensor2d(halfSwap(config.headDim), [config.headDim, config.headDim]);
    this.derived.push(this.swap);
  }

  private buildRope(length: number): void {
    for (const old of [this.cosTable, this.sinTable]) {
      if (!old) continue;
      this.derived.splice(this.derived.indexOf(old), 1);
      old.dispose();
    }
    const { cos, sinRot } = ropeTables(this.invFreq, length);
    const d = this.config.headDim;
    // kept: forward may run inside a caller's tidy, which would otherwise free the new tables
    this.cosTable = tf.keep(tf.tensor2d(cos, [length, d]));
    this.sinTable = tf.keep(tf.tensor2d(sinRot, [length, d]));
    this.derived.push(this.cosTable, this.sinTable);
  }

  /** Final hidden rows [B·T, H] for ids [B, T], into `finish`. Explicit positionIds must be below max(max_position_embeddings, T). */
  protected run<R extends tf.Tensor>(inputIds: tf.Tensor2D, opts: ForwardOptions, finish: (x: tf.Tensor2D) => R): R {
    const c = this.config;
    const [B, T] = inputIds.shape;
    const past = opts.cache?.length ?? 0;
    const rows = this.cosTable.shape[0];
    // explicit positions are not read back from the device: cover every position they may name
    const need = Math.max(past + T, opts.positionIds ? c.maxPositions : 0);
    if (need > rows) this.buildRope(Math.max(need, 2 * rows));
    const next = opts.cache ? { length: past + T, keys: [], values: [] } : undefined;
    const out = tf.tidy(() => {
      const [cos, sin] = [this.cosTable, this.sinTable].map((table) => opts.positionIds
        ? tf.gather(table, tf.cast(opts.positionIds, 'int32').reshape([B * T])).reshape([B, T, 1, c.headDim]) // [B, T, 1, d]
        : table.slice([past, 0], [T, c.headDim]).reshape([1, T, 1, c.headDim])); // [1, T, 1, d], same for every row
      const mask = additiveMask(B, T, opts.attentionMask, past); // [B, 1, T, past+T]
      let x = this.embed(inputIds); // [N, H]
      for (let l = 0; l < c.numLayers; l++) {
        x = this.layerStep(`model.layers.${l}.`, x, opts.ctx, [cos, sin, mask], (xs, ctx, [cs, sn, m]) =>
          this.layer(l, xs, B, T, cs, sn, m as tf.Tensor4D, { ...opts, ctx }, next));
      }
      return finish(rmsNorm(x, this.w<tf.Rank.R1>('model.norm.weight'), c.rmsNormEps));
    });
    if (opts.cache && next) commitCache(opts.cache, next);
    return out;
  }

  /** One decoder layer on rows x [N, H]. */
  private layer(
    l: number, x: tf.Tensor2D, B: number, T: number, cos: tf.Tensor, sin: tf.Tensor, mask: tf.Tensor4D, opts: ForwardOptions, next?: KvCache,
  ): tf.Tensor2D {
    const c = this.config;
    const p = `model.layers.${l}`;
    const ctx = opts.ctx;
    const h = rmsNorm(x, this.w(`${p}.input_layernorm.weight`), c.rmsNormEps);
    const q = this.linear(`${p}.self_attn.q_proj`).forward(h, ctx).reshape([B, T, c.numHeads, c.headDim]) as tf.Tensor4D;
    const k = this.linear(`${p}.self_attn.k_proj`).forward(h, ctx).reshape([B, T, c.numKvHeads, c.headDim]) as tf.Tensor4D;
    const v = this.linear(`${p}.self_attn.v_proj`).forward(h, ctx).reshape([B, T, c.numKvHeads, c.headDim]) as tf.Tensor4D;
    let [keys, values] = [rotary(k, cos, sin, this.swap), v];
    if (opts.cache && next) [keys, values] = appendToCache(opts.cache, next, l, keys, values); // [B, past+T, Hkv, d]
    const attn = groupedAttention(rotary(q, cos, sin, this.swap), keys, values, mask, c.headDim ** -0.5); // [N, Hq*d]
    x = tf.add(x, this.linear(`${p}.self_attn.o_proj`).forward(attn, ctx));
    const h2 = rmsNorm(x, this.w(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    const gate = this.linear(`${p}.mlp.gate_proj`).forward(h2, ctx); // [N, I]
    const up = this.linear(`${p}.mlp.up_proj`).forward(h2, ctx); // [N, I]
    return tf.add(x, this.linear(`${p}.mlp.down_proj`).forward(gatedActivation(c.hiddenAct, gate, up), ctx));
  }
}


/**
 * GPT-2 with Hugging Face semantics: token + learned position embeddings -> N x [LayerNorm ->
 * attention (fused c_attn) -> residual -> LayerNorm -> MLP (gelu_new) -> residual] ->
 * LayerNorm -> LM head tied to the token embedding.
 *
 * Shapes: B batch, T sequence, N = B*T rows, H hidden (n_embd), d head_dim, V vocab.
 * Conv1D weights are stored [in, out] in the file already, so no transpose at load.
 */
import * as tf from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { appendToCache, BaseCausalLM, commitCache, type AnyTensorData, type ModelOptions } from './causal-lm.ts';
import { GPT2_FAMILY } from './family-gpt2.ts';
import { activate, additiveMask, groupedAttention, layerNorm } from './ops.ts';
import type { ForwardOptions, KvCache, ModelConfig } from './types.ts';

export class GPT2LMHeadModel extends BaseCausalLM {
  constructor(config: ModelConfig, hf: Map<string, AnyTensorData>, opts: ModelOptions = {}) {
    super(config, GPT2_FAMILY.weightSpecs(config), hf, opts.trainable ?? false, opts.source, opts.storage);
  }

  /** Final hidden rows [B·T, H] for ids [B, T], into `finish`; positions must stay below n_positions. */
  protected run<R extends tf.Tensor>(inputIds: tf.Tensor2D, opts: ForwardOptions, finish: (x: tf.Tensor2D) => R): R {
    const c = this.config;
    const [B, T] = inputIds.shape;
    const past = opts.cache?.length ?? 0;
    if (!opts.positionIds && past + T > c.maxPositions) {
      throw new HiloError(`sequence of ${past + T} tokens is longer than this GPT-2's n_positions (${c.maxPositions})`);
    }
    const next = opts.cache ? { length: past + T, keys: [], values: [] } : undefined;
    const out = tf.tidy(() => {
      const H = c.hiddenSize;
      const tokens = this.embed(inputIds).reshape([B, T, H]);
      const wpe = this.w<tf.Rank.R2>('transformer.wpe.weight');
      const positions = opts.positionIds
        ? tf.gather(wpe, tf.cast(opts.positionIds, 'int32').reshape([B * T])).reshape([B, T, H]) // [B, T, H]
        : wpe.slice([past, 0], [T, H]).reshape([1, T, H]); // [1, T, H], same for every row
      let x = tf.add(tokens, positions).reshape([B * T, H]) as tf.Tensor2D; // [N, H]
      const mask = additiveMask(B, T, opts.attentionMask, past); // [B, 1, T, past+T]
      for (let l = 0; l < c.numLayers; l++) {
        x = this.layerStep(`transformer.h.${l}.`, x, opts.ctx, [mask], (xs, ctx, [m]) => this.block(l, xs, B, T, m as tf.Tensor4D, { ...opts, ctx }, next));
      }
      return finish(layerNorm(x, this.w('transformer.ln_f.weight'), this.w('transformer.ln_f.bias'), c.layerNormEps));
    });
    if (opts.cache && next) commitCache(opts.cache, next);
    return out;
  }

  /** One transformer block on rows x [N, H]. */
  private block(l: number, x: tf.Tensor2D, B: number, T: number, mask: tf.Tensor4D, opts: ForwardOptions, next?: KvCache): tf.Tensor2D {
    const c = this.config;
    const p = `transformer.h.${l}`;
    const ctx = opts.ctx;
    const h = layerNorm(x, this.w(`${p}.ln_1.weight`), this.w(`${p}.ln_1.bias`), c.layerNormEps);
    const qkv = this.linear(`${p}.attn.c_attn`).forward(h, ctx); // [N, 3H]
    let [q, k, v] = tf.split(qkv, 3, 1).map((t) => t.reshape([B, T, c.numHeads, c.headDim]) as tf.Tensor4D);
    if (opts.cache && next) [k, v] = appendToCache(opts.cache, next, l, k, v); // [B, past+T, heads, d]
    const scale = c.headDim ** -0.5 / (c.scaleAttnByInverseLayerIdx ? l + 1 : 1);
    x = tf.add(x, this.linear(`${p}.attn.c_proj`).forward(groupedAttention(q, k, v, mask, scale), ctx));
    const h2 = layerNorm(x, this.w(`${p}.ln_2.weight`), this.w(`${p}.ln_2.bias`), c.layerNormEps);
    const inner = activate(c.hiddenAct, this.linear(`${p}.mlp.c_fc`).forward(h2, ctx)) as tf.Tensor2D; // [N, I]
    return tf.add(x, this.linear(`${p}.mlp.c_proj`).forward(inner, ctx));
  }
}

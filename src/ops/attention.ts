/**
 * The attention core of a causal self-attention layer, named once with its reference in plain
 * tfjs ops: scores q·kᵀ, the additive mask, softmax, the weighted sum of values, with grouped
 * K/V; and the rotary embedding that precedes it in Llama. Backends register faster versions
 * (wasm: the softmax and the rotation as one SIMD kernel each way, src/backend/wasm-ops.ts).
 *
 * Every matMul here is an untransposed product of explicitly transposed operands: on wasm
 * `matMul(a, b, transposeA/B)` is 10-30x slower than `tf.transpose` + plain matMul.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

/** softmax(scale·s + mask) over the keys: s [B, H, Tq, Tk], mask [B or 1, 1, Tq, Tk] (constant) -> [B, H, Tq, Tk]. */
export type AttentionProbs = (s: tf.Tensor4D, mask: tf.Tensor4D, scale: number) => tf.Tensor4D;

/** q [B, Tq, H, d], k and v [B, Tk, KV, d], mask [B or 1, 1, Tq, Tk] -> [B*Tq, H*d]. */
export type AttentionCore = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D, scale: number) => tf.Tensor2D;

/** One backend's attention: the whole core, and its probabilities alone (for tests and callers that need them). */
export interface AttentionImpl {
  attend: AttentionCore;
  probs: AttentionProbs;
}

export const referenceProbs: AttentionProbs = (s, mask, scale) => tf.softmax(tf.add(tf.mul(s, scale), mask), -1) as tf.Tensor4D;

/**
 * Scaled dot-product attention with grouped K/V from a probabilities function, without
 * repeating K/V per query head: the `group` query heads sharing one kv head are stacked along
 * the query axis, so each kv head meets one [group*Tq, d] x [d, Tk] product. Query head h uses
 * kv head floor(h / group), as HF repeat_kv.
 */
export function groupedAttentionWith(probsOf: AttentionProbs): AttentionCore {
  return (q, k, v, mask, scale) => {
    const [b, tq, h, d] = q.shape;
    const [, tk, kv] = k.shape;
    const group = h / kv;
    const qg = tf.transpose(q.reshape([b, tq, kv, group, d]), [0, 2, 3, 1, 4]).reshape([b * kv, group * tq, d]); // [B*KV, G*Tq, d]
    const kT = tf.transpose(k, [0, 2, 3, 1]).reshape([b * kv, d, tk]); // [B*KV, d, Tk]
    const vv = tf.transpose(v, [0, 2, 1, 3]).reshape([b * kv, tk, d]); // [B*KV, Tk, d]
    const raw = tf.matMul(qg, kT).reshape([b, h, tq, tk]) as tf.Tensor4D; // [B, H, Tq, Tk], h = kvh*G + g
    const probs = probsOf(raw, mask, scale).reshape([b * kv, group * tq, tk]);
    const out = tf.matMul(probs, vv).reshape([b, kv, group, tq, d]); // [B, KV, G, Tq, d]
    return tf.transpose(out, [0, 3, 1, 2, 4]).reshape([b * tq, h * d]); // [B*Tq, H*d]
  };
}

export const referenceAttention: AttentionImpl = { attend: groupedAttentionWith(referenceProbs), probs: referenceProbs };

export const attentionOp = defineOp<AttentionImpl>('attention', referenceAttention);

/** Scaled dot-product attention with grouped K/V (AttentionCore's shapes). Call inside a tidy. */
export function groupedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D, scale: number, impl = attentionOp.impl()): tf.Tensor2D {
  return impl.attend(q, k, v, mask, scale);
}

/** softmax(scale·s + mask) over the keys (AttentionProbs' shapes). Call inside a tidy. */
export function attentionProbs(s: tf.Tensor4D, mask: tf.Tensor4D, scale: number, impl = attentionOp.impl()): tf.Tensor4D {
  return impl.probs(s, mask, scale);
}

/**
 * x ⊙ cos + cat(x2, x1) ⊙ sinRot for x [B, T, heads, d] and tables [1 or B, T, 1, d] (sinRot
 * carries rotate_half's sign); `swap` is halfSwap(d), the [d, d] permutation the reference
 * multiplies by.
 */
export type RotaryImpl = (x: tf.Tensor4D, cos: tf.Tensor, sinRot: tf.Tensor, swap: tf.Tensor2D) => tf.Tensor4D;

export const referenceRotary: RotaryImpl = (x, cos, sinRot, swap) => {
  const [b, t, h, d] = x.shape;
  const swapped = tf.matMul(x.reshape([b * t * h, d]), swap).reshape([b, t, h, d]); // [B·T·heads, d] x [d, d] = cat(x2, x1)
  return tf.add(tf.mul(x, cos), tf.mul(swapped, sinRot)) as tf.Tensor4D;
};

export const rotaryOp = defineOp<RotaryImpl>('rotary', referenceRotary);

/** The rotary embedding (RotaryImpl's shapes). Call inside a tidy. */
export function rotary(x: tf.Tensor4D, cos: tf.Tensor, sinRot: tf.Tensor, swap: tf.Tensor2D, impl = rotaryOp.impl()): tf.Tensor4D {
  return impl(x, cos, sinRot, swap);
}

/**
 * Tensor pieces shared by the architectures: activations, norms, the attention mask and
 * scaled dot-product attention with grouped K/V. Call them inside a tf.tidy.
 *
 * Every matMul here is an untransposed product of explicitly transposed operands: on wasm
 * `matMul(a, b, transposeA/B)` is 10-30x slower than `tf.transpose` + plain matMul.
 */
import * as tf from '@tensorflow/tfjs';
import { fieldError } from '../errors.ts';

/** Large negative additive mask value: exp(NEG - max) is exactly 0 in float32, and two never overflow. */
const NEG = -1e9;

/** HF activations by config name (hidden_act / activation_function). */
export function activate(name: string, x: tf.Tensor): tf.Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu_new':
    case 'gelu_pytorch_tanh': {
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    }
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    default:
      throw fieldError('config.json hidden_act', name, ['silu', 'gelu_new', 'gelu', 'relu', 'tanh']);
  }
}

/** RMSNorm over the last axis: w * x / sqrt(mean(x^2) + eps). x [N, H], w [H]. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const variance = tf.mean(tf.square(x), -1, true); // [N, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** LayerNorm over the last axis (biased variance, as torch). x [N, H]. */
export function layerNorm(x: tf.Tensor2D, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1] each
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

/**
 * Additive attention mask [B, 1, T, T]: 0 where query t may see key s (s <= t and key s is not
 * padding), NEG elsewhere. Rows of padded queries are meaningless, as in HF.
 */
export function additiveMask(batch: number, seq: number, attentionMask?: tf.Tensor2D): tf.Tensor4D {
  const rows = tf.range(0, seq, 1, 'int32').reshape([seq, 1]);
  const cols = tf.range(0, seq, 1, 'int32').reshape([1, seq]);
  let allowed: tf.Tensor = tf.cast(tf.lessEqual(cols, rows), 'float32').reshape([1, 1, seq, seq]); // [1, 1, T, T]
  if (attentionMask) allowed = tf.mul(allowed, tf.cast(attentionMask, 'float32').reshape([batch, 1, 1, seq]));
  return tf.mul(tf.sub(1, allowed), NEG) as tf.Tensor4D;
}

/**
 * Scaled dot-product attention with grouped K/V, without repeating K/V per query head: the
 * `group` query heads sharing one kv head are stacked along the query axis, so each kv head
 * meets one [group*T, d] x [d, T] product.
 *   q [B, T, H, d], k and v [B, T, KV, d], mask [B, 1, T, T] -> [B*T, H*d]
 * Query head h uses kv head floor(h / group), as HF repeat_kv.
 */
export function groupedAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D, scale: number,
): tf.Tensor2D {
  const [b, t, h, d] = q.shape;
  const kv = k.shape[2];
  const group = h / kv;
  const qg = tf.transpose(q.reshape([b, t, kv, group, d]), [0, 2, 3, 1, 4]).reshape([b * kv, group * t, d]); // [B*KV, G*T, d]
  const kT = tf.transpose(k, [0, 2, 3, 1]).reshape([b * kv, d, t]); // [B*KV, d, T]
  const vv = tf.transpose(v, [0, 2, 1, 3]).reshape([b * kv, t, d]); // [B*KV, T, d]
  const scores = tf.mul(tf.matMul(qg, kT), scale).reshape([b, h, t, t]); // [B, H, T, T], h = kvh*G + g
  const probs = tf.softmax(tf.add(scores, mask), -1).reshape([b * kv, group * t, t]);
  const out = tf.matMul(probs, vv).reshape([b, kv, group, t, d]); // [B, KV, G, T, d]
  return tf.transpose(out, [0, 3, 1, 2, 4]).reshape([b * t, h * d]); // [B*T, H*d]
}

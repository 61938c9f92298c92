/**
 * Tensor pieces shared by the architectures: activations, norms, the attention mask and
 * scaled dot-product attention with grouped K/V. Call them inside a tf.tidy.
 *
 * Every matMul here is an untransposed product of explicitly transposed operands: on wasm
 * `matMul(a, b, transposeA/B)` is 10-30x slower than `tf.transpose` + plain matMul.
 */
import * as tf from '@tensorflow/tfjs';
import { RMS_NORM, RMS_NORM_GRAD } from '../backend/webgpu-norm.ts';
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

/**
 * RMSNorm over the last axis: w * x / sqrt(mean(x^2) + eps). x [N, H], w [H].
 *
 * A frozen weight (hilo's base weights) gets no gradient, and x's is written out:
 *   r = 1/sqrt(mean(x²) + eps),  g = w ⊙ dy,  dx = r·g − x · r³ · mean(g ⊙ x)
 * On webgpu that is one GPU program each way (src/backend/webgpu-norm.ts); elsewhere ~9 kernels
 * backward, where autodiff through the forward ops took ~20 and filled an [N, H] array of ones
 * in JS for Mean's gradient. A trainable weight (full-parameter training) takes autodiff.
 */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const frozen = !(weight instanceof tf.Variable && weight.trainable);
  if (!frozen || x.rank !== 2 || x.dtype !== 'float32') {
    const variance = tf.mean(tf.square(x), -1, true); // [N, 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  }
  const fused = weight.dtype === 'float32' && tf.getKernel(RMS_NORM, tf.getBackend()) !== undefined;
  const op = tf.customGrad((...args) => {
    const xs = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    if (fused) {
      save([xs]);
      return {
        value: tf.engine().runKernel(RMS_NORM, { x: xs, w: weight }, { eps }) as tf.Tensor2D,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(RMS_NORM_GRAD, { dy, x: saved[0], w: weight }, { eps }) as tf.Tensor2D,
      };
    }
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps)); // [N, 1]
    save([xs, r]);
    return {
      value: tf.mul(tf.mul(xs, r), weight) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xv, rv] = saved;
        const g = tf.mul(dy, weight);
        const c = tf.mul(tf.mean(tf.mul(g, xv), -1, true), tf.mul(tf.mul(rv, rv), rv)); // [N, 1]
        return tf.sub(tf.mul(g, rv), tf.mul(xv, c));
      },
    };
  });
  return op(x) as tf.Tensor2D;
}

/** LayerNorm over the last axis (biased variance, as torch). x [N, H]. */
export function layerNorm(x: tf.Tensor2D, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true); // [N, 1] each
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

/**
 * Additive attention mask [B, 1, T, past+T]: 0 where query t (at position past+t) may see key s
 * (s <= past+t and key s is not padding), NEG elsewhere. Rows of padded queries are
 * meaningless, as in HF. attentionMask covers all past+T keys.
 */
export function additiveMask(batch: number, seq: number, attentionMask?: tf.Tensor2D, past = 0): tf.Tensor4D {
  const keys = past + seq;
  // The causal part is written on the host: as a broadcast compare it was ~1.6 ms on wasm,
  // 5% of a stories260K forward pass.
  const causal = new Float32Array(seq * keys);
  for (let t = 0; t < seq; t++) causal.fill(1, t * keys, t * keys + past + t + 1);
  let allowed: tf.Tensor = tf.tensor4d(causal, [1, 1, seq, keys]); // [1, 1, T, past+T]
  if (attentionMask) allowed = tf.mul(allowed, tf.cast(attentionMask, 'float32').reshape([batch, 1, 1, keys]));
  return tf.mul(tf.sub(1, allowed), NEG) as tf.Tensor4D;
}

/**
 * Scaled dot-product attention with grouped K/V, without repeating K/V per query head: the
 * `group` query heads sharing one kv head are stacked along the query axis, so each kv head
 * meets one [group*Tq, d] x [d, Tk] product.
 *   q [B, Tq, H, d], k and v [B, Tk, KV, d], mask [B, 1, Tq, Tk] -> [B*Tq, H*d]
 * Query head h uses kv head floor(h / group), as HF repeat_kv.
 */
export function groupedAttention(
  q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D, scale: number,
): tf.Tensor2D {
  const [b, tq, h, d] = q.shape;
  const [, tk, kv] = k.shape;
  const group = h / kv;
  const qg = tf.transpose(q.reshape([b, tq, kv, group, d]), [0, 2, 3, 1, 4]).reshape([b * kv, group * tq, d]); // [B*KV, G*Tq, d]
  const kT = tf.transpose(k, [0, 2, 3, 1]).reshape([b * kv, d, tk]); // [B*KV, d, Tk]
  const vv = tf.transpose(v, [0, 2, 1, 3]).reshape([b * kv, tk, d]); // [B*KV, Tk, d]
  const scores = tf.mul(tf.matMul(qg, kT), scale).reshape([b, h, tq, tk]); // [B, H, Tq, Tk], h = kvh*G + g
  const probs = tf.softmax(tf.add(scores, mask), -1).reshape([b * kv, group * tq, tk]);
  const out = tf.matMul(probs, vv).reshape([b, kv, group, tq, d]); // [B, KV, G, Tq, d]
  return tf.transpose(out, [0, 3, 1, 2, 4]).reshape([b * tq, h * d]); // [B*Tq, H*d]
}

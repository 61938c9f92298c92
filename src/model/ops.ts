/**
 * Tensor pieces shared by the architectures: activations, norms, the attention mask and
 * scaled dot-product attention with grouped K/V. Call them inside a tf.tidy.
 *
 * Every matMul here is an untransposed product of explicitly transposed operands: on wasm
 * `matMul(a, b, transposeA/B)` is 10-30x slower than `tf.transpose` + plain matMul.
 */
import * as tf from '@tensorflow/tfjs';
import { RMS_NORM, RMS_NORM_GRAD } from '../backend/webgpu-norm.ts';
import { ATTN_SOFTMAX, ATTN_SOFTMAX_GRAD, hasSimdKernel, RMS_NORM_SIMD, RMS_NORM_SIMD_GRAD, ROPE, SWIGLU, SWIGLU_GRAD } from '../backend/wasm-simd.ts';
import { fieldError, HiloError } from '../errors.ts';
import { MAX_ATTENTION_TOKENS } from './check.ts';

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
 * act(gate) ⊙ up, the gated MLP's hidden [N, I]. SiLU on wasm is one SIMD kernel each way
 * (src/backend/wasm-simd.ts), where Sigmoid, two Multiplies forward and ~6 kernels backward each
 * streamed [N, I].
 */
export function gatedActivation(name: string, gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  if ((name !== 'silu' && name !== 'swish') || gate.dtype !== 'float32' || !hasSimdKernel(tf, SWIGLU)) {
    return tf.mul(activate(name, gate), up) as tf.Tensor2D;
  }
  const op = tf.customGrad((...args) => {
    const [g, u] = args.slice(0, 2) as tf.Tensor2D[];
    (args[2] as tf.GradSaveFunc)([g, u]);
    return {
      value: tf.engine().runKernel(SWIGLU, { g, u }) as tf.Tensor2D,
      gradFunc: (dh: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(SWIGLU_GRAD, { dh, g: saved[0], u: saved[1] }) as tf.Tensor[],
    };
  });
  return op(gate, up) as tf.Tensor2D;
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
  const simd = weight.dtype === 'float32' && hasSimdKernel(tf, RMS_NORM_SIMD); // wasm: one pass each way
  const op = tf.customGrad((...args) => {
    const xs = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    if (simd) {
      const [y, r] = tf.engine().runKernel(RMS_NORM_SIMD, { x: xs, w: weight }, { eps }) as tf.Tensor[];
      save([xs, r]);
      return {
        value: y as tf.Tensor2D,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(RMS_NORM_SIMD_GRAD, { dy, x: saved[0], w: weight, r: saved[1] }) as tf.Tensor2D,
      };
    }
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
  if (keys > MAX_ATTENTION_TOKENS) {
    throw new HiloError(`attention over ${keys} tokens: at most ${MAX_ATTENTION_TOKENS} (each head's [T, T] scores are held whole); give a shorter sequence`);
  }
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
  const raw = tf.matMul(qg, kT).reshape([b, h, tq, tk]) as tf.Tensor4D; // [B, H, Tq, Tk], h = kvh*G + g
  const probs = attentionProbs(raw, mask, scale).reshape([b * kv, group * tq, tk]);
  const out = tf.matMul(probs, vv).reshape([b, kv, group, tq, d]); // [B, KV, G, Tq, d]
  return tf.transpose(out, [0, 3, 1, 2, 4]).reshape([b * tq, h * d]); // [B*Tq, H*d]
}

/**
 * softmax(scale·s + mask) over the keys, s [B, H, Tq, Tk], mask [B or 1, 1, Tq, Tk] (constant).
 * On wasm one SIMD kernel each way, where the scale, the mask's add, the softmax and its
 * gradient were ~8 kernels over [B, H, Tq, Tk] (and a sum of the mask's unused gradient).
 */
export function attentionProbs(s: tf.Tensor4D, mask: tf.Tensor4D, scale: number): tf.Tensor4D {
  if (s.dtype !== 'float32' || !hasSimdKernel(tf, ATTN_SOFTMAX) || mask.shape[2] !== s.shape[2] || mask.shape[3] !== s.shape[3]) {
    return tf.softmax(tf.add(tf.mul(s, scale), mask), -1) as tf.Tensor4D;
  }
  const op = tf.customGrad((...args) => {
    const x = args[0] as tf.Tensor4D;
    const p = tf.engine().runKernel(ATTN_SOFTMAX, { s: x, mask }, { scale }) as tf.Tensor4D;
    (args[1] as tf.GradSaveFunc)([p]);
    return {
      value: p,
      gradFunc: (dp: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(ATTN_SOFTMAX_GRAD, { dp, p: saved[0] }, { scale }) as tf.Tensor4D,
    };
  });
  return op(s) as tf.Tensor4D;
}

/**
 * Rotary embedding: x ⊙ cos + cat(x2, x1) ⊙ sinRot for x [B, T, heads, d] and tables
 * [1 or B, T, 1, d] (sinRot carries rotate_half's sign). `swap` is halfSwap(d) for the tensor
 * form (one [d, d] product); on wasm one SIMD kernel each way replaces it and its 4 element-wise
 * passes (and their gradients).
 */
export function rotary(x: tf.Tensor4D, cos: tf.Tensor, sinRot: tf.Tensor, swap: tf.Tensor2D): tf.Tensor4D {
  const [b, t, h, d] = x.shape;
  if (x.dtype !== 'float32' || !hasSimdKernel(tf, ROPE) || d % 2 !== 0) {
    const swapped = tf.matMul(x.reshape([b * t * h, d]), swap).reshape([b, t, h, d]); // [B·T·heads, d] x [d, d] = cat(x2, x1)
    return tf.add(tf.mul(x, cos), tf.mul(swapped, sinRot)) as tf.Tensor4D;
  }
  const rows = cos.shape[0] === 1 ? t : b * t; // one table row per position, or per (batch, position)
  const c = cos.reshape([rows, d]);
  const sr = sinRot.reshape([rows, d]);
  const op = tf.customGrad((...args) => {
    const xs = args[0] as tf.Tensor4D;
    return {
      value: tf.engine().runKernel(ROPE, { x: xs, cos: c, sinRot: sr }, { back: 0 }) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor) => tf.engine().runKernel(ROPE, { x: dy, cos: c, sinRot: sr }, { back: 1 }) as tf.Tensor4D,
    };
  });
  return op(x) as tf.Tensor4D;
}

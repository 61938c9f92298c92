/**
 * Tensor pieces shared by the architectures: activations and the attention mask here; the
 * norms, the attention core and the rotary embedding are ops (src/ops/), which each backend may
 * run its own way. Call them inside a tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import { swiGlu } from '../ops/activation.ts';
import { fieldError, HiloError } from '../errors.ts';
import { MAX_ATTENTION_TOKENS } from './check.ts';

export { layerNorm, rmsNorm } from '../ops/norm.ts';
export { attentionProbs, groupedAttention, rotary } from '../ops/attention.ts';

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

/** act(gate) ⊙ up, the gated MLP's hidden [N, I]; SiLU is the swiglu op (src/ops/activation.ts). */
export function gatedActivation(name: string, gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  if (name === 'silu' || name === 'swish') return swiGlu(gate, up);
  return tf.mul(activate(name, gate), up) as tf.Tensor2D;
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
  // The causal part is written on the host: as a broadcast compare on wasm it was a visible
  // share of a small model's forward pass (docs/performance.md, figures behind the code).
  const causal = new Float32Array(seq * keys);
  for (let t = 0; t < seq; t++) causal.fill(1, t * keys, t * keys + past + t + 1);
  let allowed: tf.Tensor = tf.tensor4d(causal, [1, 1, seq, keys]); // [1, 1, T, past+T]
  if (attentionMask) allowed = tf.mul(allowed, tf.cast(attentionMask, 'float32').reshape([batch, 1, 1, keys]));
  return tf.mul(tf.sub(1, allowed), NEG) as tf.Tensor4D;
}

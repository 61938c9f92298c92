/**
 * Mean routing weight of every expert, measured on calibration batches: the static weights
 * the folded (PEFT / merged) exports use in place of each token's gates.
 */
import * as tf from '@tensorflow/tfjs';
import type { Adapters } from '../adapters/inject.ts';
import type { MixtureLinear } from '../adapters/mixture.ts';
import { routeTokens } from '../adapters/routing.ts';
import type { Batch } from '../data/batch.ts';
import type { CausalLM, ForwardContext, LinearModule } from '../model/types.ts';
import { IGNORE_INDEX } from '../ops/cross-entropy.ts';

/** Mixture module path -> mean gate per expert over the real (unpadded) tokens it saw. */
export type GateMeans = Map<string, number[]>;

/** Wraps a mixture layer: adds each forward's masked gate sums to `sums`, then runs the layer. */
function recorder(mix: MixtureLinear, sums: Float64Array, count: { tokens: number }): LinearModule {
  return {
    inFeatures: mix.inFeatures,
    outFeatures: mix.outFeatures,
    forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D {
      const [summed, tokens] = tf.tidy(() => {
        const logits = tf.matMul(x, mix.weights.router!) as tf.Tensor2D; // [N, in] x [in, E] -> [N, E]
        const { gates } = routeTokens(logits, mix.spec.routing);
        const m = ctx?.tokenMask ?? tf.ones([x.shape[0]]);
        return [tf.sum(tf.mul(gates, tf.expandDims(m, 1)), 0), tf.sum(m)]; // [E], scalar
      });
      const s = summed.dataSync();
      for (let e = 0; e < s.length; e++) sums[e] += s[e];
      count.tokens += tokens.dataSync()[0];
      tf.dispose([summed, tokens]);
      return mix.forward(x, ctx);
    },
  };
}

/** Run `batches` through the adapted model (eval mode) and average each router's gates. */
export function measureGateMeans(model: CausalLM, adapters: Adapters, batches: readonly Batch[]): GateMeans {
  const stats = new Map<string, { sums: Float64Array; count: { tokens: number } }>();
  for (const [p, mix] of adapters.layers) {
    if (mix.spec.experts < 2) continue;
    const s = { sums: new Float64Array(mix.spec.experts), count: { tokens: 0 } };
    stats.set(p, s);
    model.modules.set(p, recorder(mix, s.sums, s.count));
  }
  try {
    for (const b of batches) {
      tf.tidy(() => {
        const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen]);
        const ctx: ForwardContext = { training: false, auxLosses: [], tokenMask: tf.reshape(mask, [-1]) as tf.Tensor1D };
        // only the routing is wanted: tokenNll with nothing counted runs the layers without the
        // whole [B, T, V] logits (a real vocabulary's are ~0.6 GB at 8 x 128)
        model.tokenNll(tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'), new Int32Array(b.batchSize * b.seqLen).fill(IGNORE_INDEX), { attentionMask: mask, ctx });
      });
    }
  } finally {
    for (const [p, mix] of adapters.layers) if (stats.has(p)) model.modules.set(p, mix);
  }
  const out: GateMeans = new Map();
  for (const [p, { sums, count }] of stats) out.set(p, Array.from(sums, (v) => (count.tokens > 0 ? v / count.tokens : 0)));
  return out;
}

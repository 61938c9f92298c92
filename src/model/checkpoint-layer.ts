/**
 * Gradient checkpointing (HF's gradient_checkpointing): a decoder layer runs off the gradient
 * tape, keeping only its input rows; the backward runs it again under a tape of its own and takes
 * the input's and the layer's trainables' gradients from that. Memory for activations goes from
 * every layer's intermediates to one layer's plus each layer's [N, H] input, for one more forward
 * per layer.
 *
 * The layer's side outputs come along: its router losses (pushed onto ctx.auxLosses) leave as a
 * second output of the op, summed, so their gradient flows back in; dropout draws the same seeds
 * again when replayed, so the recomputed layer is the same function.
 */
import * as tf from '@tensorflow/tfjs';
import { runMultiOutput } from '../ops/multi-output.ts';
import { recomputeGrads } from '../ops/recompute.ts';
import type { ForwardContext } from './types.ts';

/** Σ of kept scalars, which are then freed (0 for none). */
function takeSum(xs: tf.Scalar[]): tf.Scalar {
  const total = xs.length ? (tf.addN(xs) as tf.Scalar) : tf.scalar(0);
  tf.dispose(xs.splice(0));
  return total;
}

/**
 * body(x) [N, H] with `vars` (the trainables body reads) as the op's other inputs, recomputed in
 * the backward. `consts` are the other tensors body reads (masks, RoPE tables): made inside the
 * forward's scope, they are gone by the backward, so body gets them (and ctx its token mask) as
 * saved copies there. `ctx` is a training context; its router losses get body's, summed.
 */
export function checkpointed(
  x: tf.Tensor2D, ctx: ForwardContext, vars: tf.Variable[], consts: tf.Tensor[],
  body: (x: tf.Tensor2D, ctx: ForwardContext, consts: tf.Tensor[]) => tf.Tensor2D,
): tf.Tensor2D {
  const seeds: number[] = [];
  const source = ctx.dropoutSeed;
  const first: ForwardContext = {
    ...ctx, auxLosses: [],
    dropoutSeed: source && { next: () => { const s = source.next(); seeds.push(s); return s; } },
  };
  const names = vars.map((_, i) => `v${i}`);
  const inputs: tf.NamedTensorMap = { x, ...Object.fromEntries(vars.map((v, i) => [names[i], v])) };
  const [y, aux] = runMultiOutput({
    inputs,
    forwardFunc: (_backend, save) => {
      save([x, ...consts, ...(ctx.tokenMask ? [ctx.tokenMask] : [])]);
      const out = body(x, first, consts);
      return [out, takeSum(first.auxLosses)];
    },
    backwardsFunc: ([dy, dAux], saved) => {
      let drawn = 0;
      const xs = saved[0];
      const cs = saved.slice(1, 1 + consts.length);
      const tokenMask = ctx.tokenMask ? (saved[1 + consts.length] as tf.Tensor1D) : undefined;
      const again: ForwardContext = { ...ctx, tokenMask, auxLosses: [], routerStats: undefined, dropoutSeed: source && { next: () => seeds[drawn++] } };
      const grads = recomputeGrads(() => {
        const out = body(xs as tf.Tensor2D, again, cs);
        // <out, dy> + aux·dAux: one scalar whose gradient is the layer's vector-Jacobian product
        return tf.add(tf.sum(tf.mul(out, dy)), tf.mul(takeSum(again.auxLosses), dAux));
      }, [xs, ...vars], tf.scalar(1));
      return Object.fromEntries(['x', ...names].map((n, i) => [n, () => grads[i]]));
    },
  });
  ctx.auxLosses.push(tf.keep(aux as tf.Scalar));
  return y as tf.Tensor2D;
}

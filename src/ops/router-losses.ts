/**
 * The router losses of a training forward, as one op of the router logits l [N, E]:
 *
 *     c_b · E · Σ_e f_e · mean_w(P_e)  +  c_z · mean_w(logsumexp(l)²)
 *
 * with P = softmax(l), f the selection fractions of the mask (no gradient) and mean_w the mean
 * over real tokens (token mask w, W = Σ w): Switch/Mixtral's balance loss normalised as MoLA's,
 * and ST-MoE's z-loss. Gradient: the balance loss has dP = c_b·E·f_e·w_n / W, the z-loss
 * dl = c_z·2·lse_n·w_n / W · P, and dl = P ⊙ (dP − Σ_e dP·P) through the softmax.
 * src/adapters/routing.ts keeps balanceLoss and routerZLoss as the two definitions; the tests
 * hold every implementation here to them.
 *
 * Named once here with a reference in tfjs ops; the host form (src/backend/host-router.ts) and
 * webgpu's programs (src/backend/webgpu-router.ts) register faster versions.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';
import { softmaxGrad, type HostRows } from './router-gates.ts';

export interface RouterLossOptions {
  /** Weight of the balance loss (0: left out). */
  balanceCoef: number;
  /** Weight of the z-loss (0: left out). */
  zLossCoef: number;
  /** [N] 1 for real tokens, 0 for padding. */
  tokenMask?: tf.Tensor1D;
  /**
   * When given, the selection fractions are pushed here (kept: the caller disposes them), so a
   * caller that also logs usage need not compute them on the gradient tape.
   */
  fractionsOut?: tf.Tensor1D[];
  /** The logits' values, softmax and mask as the gates' host form read them (not read back again). */
  rows?: HostRows;
}

/** logits [N, E], the selection mask [N, E] -> the losses' weighted sum, differentiable in the logits. */
export type RouterLossesImpl = (logits: tf.Tensor2D, mask: tf.Tensor2D, opts: RouterLossOptions) => tf.Scalar;

/**
 * Fraction of the (real) tokens' selections that went to each expert, [E]; sums to 1.
 * For topk that is count/(N·k), MoLA's normalisation; for topp the count varies per token.
 */
export function selectionFractions(mask: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Tensor1D {
  const m = tokenMask ? tf.mul(mask, tf.expandDims(tokenMask, 1)) : mask; // [N, E]
  const perExpert = tf.sum(m, 0); // [E]
  return tf.div(perExpert, tf.maximum(tf.sum(perExpert), 1e-9)) as tf.Tensor1D;
}

/** Plain tfjs ops with the gradient written out: the definition every implementation is tested against. */
export const referenceRouterLosses: RouterLossesImpl = (logits, mask, opts) => {
  const [N, E] = logits.shape;
  const { balanceCoef: cb, zLossCoef: cz, tokenMask } = opts;
  const op = tf.customGrad((...args) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const p = tf.softmax(l) as tf.Tensor2D;
    const w = tokenMask ? (tf.reshape(tokenMask, [N, 1]) as tf.Tensor2D) : (tf.ones([N, 1]) as tf.Tensor2D);
    const total = tokenMask ? tf.maximum(tf.sum(tokenMask), 1e-9) : tf.scalar(N);
    let value = tf.scalar(0);
    const f = cb > 0 || opts.fractionsOut ? selectionFractions(mask, tokenMask) : tf.zeros([E]);
    if (opts.fractionsOut) opts.fractionsOut.push(tf.keep(f as tf.Tensor1D));
    if (cb > 0) value = tf.add(value, tf.mul(cb * E, tf.div(tf.sum(tf.mul(f, tf.sum(tf.mul(p, w), 0))), total)));
    const lse = cz > 0 ? tf.logSumExp(l, 1, true) : tf.zeros([N, 1]); // [N, 1]
    if (cz > 0) value = tf.add(value, tf.mul(cz, tf.div(tf.sum(tf.mul(tf.square(lse), w)), total)));
    save([p, w, total, f, lse]);
    return {
      value: value as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [ps, ws, ts, fs, lses] = saved;
        const perToken = tf.div(tf.mul(dy, ws), ts); // [N, 1]: dy · w_n / W
        let dl: tf.Tensor = tf.zerosLike(ps);
        if (cb > 0) {
          const dp = tf.mul(tf.mul(perToken, cb * E), tf.reshape(fs, [1, E])); // [N, E]
          dl = softmaxGrad(ps, dp);
        }
        if (cz > 0) dl = tf.add(dl, tf.mul(ps, tf.mul(perToken, tf.mul(lses, 2 * cz))));
        return dl;
      },
    };
  });
  return op(logits) as tf.Scalar;
};

/** The op: backends register theirs with `routerLossesOp.register(backend, impl)`. */
export const routerLossesOp = defineOp<RouterLossesImpl>('router-losses', referenceRouterLosses);

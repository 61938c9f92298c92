/**
 * Routers: how router logits become per-token expert weights, and the losses that keep the
 * routers balanced. Pure tensor functions (no variables, no state) so the gradient tests can
 * drive them directly.
 *
 * Selection (which experts a token uses) is discrete: top-k and top-p masks have a zero
 * gradient. Gradients still reach the router through the probabilities that the mask keeps
 * (the renormalised gate) and through the balance loss's mean probabilities, as in PyTorch.
 *
 * The selection, the gates and the router losses are ops (src/ops/router-gates.ts,
 * router-losses.ts): each defined once in tfjs ops, run as the active backend registered it.
 * balanceLoss and routerZLoss below are the losses' definitions, which the ops are tested against.
 */
import * as tf from '@tensorflow/tfjs';
import { renormaliseGates, renormaliseGatesGrad, routerGatesOp, type RoutingOptions } from '../ops/router-gates.ts';
import { routerLossesOp, selectionFractions, type RouterLossOptions } from '../ops/router-losses.ts';

export { selectionFractions, type RouterLossOptions, type RoutingOptions };

export interface Routing {
  /** [N, E] softmax of the router logits, in float32. */
  probs: tf.Tensor2D;
  /** [N, E] 1 where the token uses the expert, 0 elsewhere (no gradient). */
  mask: tf.Tensor2D;
  /** [N, E] expert weights: probabilities renormalised over the selected experts (dense: probs). */
  gates: tf.Tensor2D;
}

/**
 * The selection mask [N, E] for router logits (no gradient). Top-k ranks the logits themselves:
 * softmax keeps their order, so the probabilities need not be computed for it.
 */
export function selectExperts(logits: tf.Tensor2D, opts: RoutingOptions, gates = routerGatesOp.impl()): tf.Tensor2D {
  return gates.select(logits, opts);
}

/** Softmax, selection and renormalised gates for router logits [N, E]. */
export function routeTokens(logits: tf.Tensor2D, opts: RoutingOptions, gates = routerGatesOp.impl()): Routing {
  const probs = tf.softmax(logits) as tf.Tensor2D; // [N, E]
  if (opts.strategy === 'dense') return { probs, mask: tf.onesLike(probs), gates: probs };
  const mask = gates.select(logits, opts);
  return { probs, mask, gates: renormalised(probs, mask) };
}

/**
 * renormaliseGates as one op with its gradient written out: autodiff through the product, sum
 * and broadcast division is several kernels per module on wasm.
 */
function renormalised(probs: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const p = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const { gates, total } = renormaliseGates(p, mask);
    save([gates, total, mask]); // saved, so the backward pass still has them after the forward's tidy
    return { value: gates, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => renormaliseGatesGrad(dy, saved[0], saved[2], saved[1]) };
  });
  return op(probs) as tf.Tensor2D;
}

/** Mean over real tokens of each expert's probability, [E]. */
function meanProbs(probs: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Tensor1D {
  if (!tokenMask) return tf.mean(probs, 0) as tf.Tensor1D;
  const w = tf.expandDims(tokenMask, 1); // [N, 1]
  return tf.div(tf.sum(tf.mul(probs, w), 0), tf.maximum(tf.sum(tokenMask), 1e-9)) as tf.Tensor1D;
}

/**
 * Switch/Mixtral load-balancing loss, normalised as MoLA's: E · Σ_e f_e · P_e with f the
 * selection fractions (no gradient) and P the mean probabilities. 1.0 when perfectly balanced;
 * constant 1 under `dense` (every expert is selected), where it has no gradient.
 */
export function balanceLoss(probs: tf.Tensor2D, mask: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Scalar {
  const E = probs.shape[1];
  const f = selectionFractions(mask, tokenMask);
  return tf.mul(E, tf.sum(tf.mul(f, meanProbs(probs, tokenMask)))) as tf.Scalar;
}

/** Router z-loss (ST-MoE): mean over real tokens of logsumexp(logits)², keeps logits small. */
export function routerZLoss(logits: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Scalar {
  const z2 = tf.square(tf.logSumExp(logits, 1)); // [N]
  if (!tokenMask) return tf.mean(z2) as tf.Scalar;
  return tf.div(tf.sum(tf.mul(z2, tokenMask)), tf.maximum(tf.sum(tokenMask), 1e-9)) as tf.Scalar;
}

/**
 * balanceCoef · balanceLoss + zLossCoef · routerZLoss of router logits [N, E] as one op (the
 * training layer's router losses), as the active backend registered it.
 */
export function routerAuxLoss(logits: tf.Tensor2D, mask: tf.Tensor2D, opts: RouterLossOptions, losses = routerLossesOp.impl()): tf.Scalar {
  return losses(logits, mask, opts);
}

/**
 * Routers: how router logits become per-token expert weights, and the losses that keep the
 * routers balanced. Pure tensor functions (no variables, no state) so the gradient tests can
 * drive them directly.
 *
 * Selection (which experts a token uses) is discrete: top-k and top-p masks are built from
 * `tf.topk`, which has no gradient in tfjs, so the mask is made under `tf.customGrad` with a
 * zero gradient. Gradients still reach the router through the probabilities that the mask keeps
 * (the renormalised gate) and through the balance loss's mean probabilities, as in PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import type { RoutingStrategy } from './plan.ts';

export interface Routing {
  /** [N, E] softmax of the router logits, in float32. */
  probs: tf.Tensor2D;
  /** [N, E] 1 where the token uses the expert, 0 elsewhere (no gradient). */
  mask: tf.Tensor2D;
  /** [N, E] expert weights: probabilities renormalised over the selected experts (dense: probs). */
  gates: tf.Tensor2D;
}

export interface RoutingOptions {
  strategy: RoutingStrategy;
  /** topk: experts per token (clipped to E). */
  topK: number;
  /** topp: keep experts in descending probability until the cumulative probability reaches p. */
  topP: number;
}

/**
 * A selection mask computed from `probs` by `select`, recorded as one op whose gradient is zero:
 * the choice of experts is piecewise constant, and TopK has no gradient in tfjs.
 */
function selectionMask(probs: tf.Tensor2D, select: (p: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const p = args[0] as tf.Tensor2D;
    return { value: tf.tidy(() => select(p)), gradFunc: () => tf.zerosLike(p) };
  });
  return op(probs) as tf.Tensor2D;
}

/**
 * [N, E] 0/1 rows of the given expert indices [N, j]. oneHot is cast rather than asked for
 * float32: on wasm (tfjs 4.22) oneHot(..., 'float32') returns all zeros.
 */
function oneHotFloat(indices: tf.Tensor2D, E: number): tf.Tensor3D {
  return tf.cast(tf.oneHot(indices, E), 'float32') as tf.Tensor3D; // [N, j, E]
}

/** [N, E] mask of each row's k largest probabilities. */
function topKMask(probs: tf.Tensor2D, k: number): tf.Tensor2D {
  const E = probs.shape[1];
  return selectionMask(probs, (p) => tf.sum(oneHotFloat(tf.topk(p, k).indices, E), 1)); // [N,k,E] -> [N,E]
}

/**
 * [N, E] mask of the experts kept by top-p: in descending probability, an expert is kept while the
 * probability mass before it is still below p, so the first is always kept and the count varies
 * per token (MixLoRA's dynamic routing).
 */
function topPMask(probs: tf.Tensor2D, topP: number): tf.Tensor2D {
  const E = probs.shape[1];
  return selectionMask(probs, (p) => {
    const { values, indices } = tf.topk(p, E); // [N, E] sorted descending
    const before = tf.sub(tf.cumsum(values, 1), values); // mass of the experts ranked above
    const keep = tf.cast(tf.less(before, topP), 'float32'); // [N, E] in sorted order
    // back to expert order: sum_j onehot(indices[n, j]) * keep[n, j]
    return tf.sum(tf.mul(oneHotFloat(indices, E), tf.expandDims(keep, 2)), 1); // [N,E,E] -> [N,E]
  });
}

/** Softmax, selection and renormalised gates for router logits [N, E]. */
export function routeTokens(logits: tf.Tensor2D, opts: RoutingOptions): Routing {
  const probs = tf.softmax(logits) as tf.Tensor2D; // [N, E]
  const E = logits.shape[1];
  if (opts.strategy === 'dense') return { probs, mask: tf.onesLike(probs), gates: probs };
  const mask = opts.strategy === 'topk' ? topKMask(probs, Math.min(opts.topK, E)) : topPMask(probs, opts.topP);
  const kept = tf.mul(probs, mask); // [N, E]
  const gates = tf.div(kept, tf.sum(kept, 1, true)) as tf.Tensor2D; // renormalise over the selected
  return { probs, mask, gates };
}

/**
 * Fraction of the (real) tokens' selections that went to each expert, [E]; sums to 1.
 * For topk that is count/(N·k), MoLA's normalisation; for topp the count varies per token.
 */
export function selectionFractions(mask: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Tensor1D {
  const m = tokenMask ? tf.mul(mask, tf.expandDims(tokenMask, 1)) : mask; // [N, E]
  const perExpert = tf.sum(m, 0); // [E]
  return tf.div(perExpert, tf.maximum(tf.sum(perExpert), 1e-9)) as tf.Tensor1D;
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
export function balanceLoss(probs: tf.Tensor2D, mask: tf.Tensor2D, tokenMask?: tf.Tensor1D, fractions?: tf.Tensor1D): tf.Scalar {
  const E = probs.shape[1];
  const f = fractions ?? selectionFractions(mask, tokenMask); // callers that also log usage pass it in
  return tf.mul(E, tf.sum(tf.mul(f, meanProbs(probs, tokenMask)))) as tf.Scalar;
}

/** Router z-loss (ST-MoE): mean over real tokens of logsumexp(logits)², keeps logits small. */
export function routerZLoss(logits: tf.Tensor2D, tokenMask?: tf.Tensor1D): tf.Scalar {
  const z2 = tf.square(tf.logSumExp(logits, 1)); // [N]
  if (!tokenMask) return tf.mean(z2) as tf.Scalar;
  return tf.div(tf.sum(tf.mul(z2, tokenMask)), tf.maximum(tf.sum(tokenMask), 1e-9)) as tf.Scalar;
}

/**
 * A router's gates: which experts each token uses (the selection mask) and with what weight.
 * For router logits l [N, E]:
 *
 *     p = softmax(l),  m = select(l) (top-k / top-p / all, no gradient),  g = p⊙m / Σ_e p⊙m
 *
 * and the layer's form G [N, E·r] = scale · g spread over each expert's r columns. Selection is
 * discrete: its gradient is zero, and the router learns through the probabilities m keeps.
 *
 * Named once here with a reference in tfjs ops; the host form (JS loops over the [N, E] arrays:
 * src/backend/host-router.ts) and webgpu's programs (src/backend/webgpu-router.ts) register
 * faster versions of the same interface.
 */
import * as tf from '@tensorflow/tfjs';
import type { RoutingStrategy } from '../names.ts';
import { defineOp } from './registry.ts';

export interface RoutingOptions {
  strategy: RoutingStrategy;
  /** topk: experts per token (clipped to E). */
  topK: number;
  /** topp: keep experts in descending probability until the cumulative probability reaches p. */
  topP: number;
}

/** A layer's routing arrays on the host, row-major [N, E]: logits l, softmax p, selection mask m. */
export interface HostRows {
  l: Float32Array;
  p: Float32Array;
  m: Float32Array;
}

export interface SpreadGates {
  /** [N, E·r] scale · g over each expert's r columns, differentiable in the logits. */
  gates: tf.Tensor2D;
  /** [N, E] the selection mask (no gradient). */
  mask: tf.Tensor2D;
  /** The host form's arrays, which the router losses' host form reads instead of the tensors. */
  rows?: HostRows;
}

export interface RouterGatesImpl {
  /** [N, E] selection mask for logits [N, E] (no gradient). */
  select(logits: tf.Tensor2D, routing: RoutingOptions): tf.Tensor2D;
  /** The mask and the spread gates G [N, E·r] for E experts of rank r. */
  spread(logits: tf.Tensor2D, routing: RoutingOptions, rank: number, scale: number): SpreadGates;
}

/**
 * A selection mask computed by `select`, recorded as one op whose gradient is zero: the choice
 * of experts is piecewise constant (and tfjs has no gradient for TopK or comparisons).
 */
export function selectionMask(input: tf.Tensor2D, select: (t: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const t = args[0] as tf.Tensor2D;
    return { value: tf.tidy(() => select(t)), gradFunc: () => tf.zerosLike(t) };
  });
  return op(input) as tf.Tensor2D;
}

/**
 * Each row's first k experts in descending value (ties to the lower index, as torch.topk): their
 * values [N, k] and their flat positions n·E + e in [N·E], as a [N·k, 1] index for ScatterNd.
 * TopK plus ScatterNd is a few cheap kernels on every backend; ranking by broadcast comparisons
 * over [N, E, E], or wasm's OneHot, cost a large share of a MoE step (docs/performance.md).
 */
function ranked(p: tf.Tensor2D, k: number): { values: tf.Tensor2D; flat: tf.Tensor2D } {
  const [N, E] = p.shape;
  const { values, indices } = tf.topk(p, k); // [N, k] each
  const rowStart = tf.tensor2d(Int32Array.from({ length: N * k }, (_, i) => Math.floor(i / k) * E), [N, k], 'int32');
  const flat = tf.reshape(tf.add(indices, rowStart), [N * k, 1]) as tf.Tensor2D;
  return { values: values as tf.Tensor2D, flat };
}

/** [N, E] mask of each row's k largest values (softmax keeps the logits' order: they are ranked as they are). */
function topKMask(logits: tf.Tensor2D, k: number): tf.Tensor2D {
  return selectionMask(logits, (l) => {
    const [N, E] = l.shape;
    return tf.reshape(tf.scatterND(ranked(l, k).flat, tf.ones([N * k]), [N * E]), [N, E]) as tf.Tensor2D;
  });
}

/**
 * [N, E] mask of the experts kept by top-p: in descending probability, an expert is kept while the
 * probability mass ranked above it is still below p, so the first is always kept and the count
 * varies per token (MixLoRA's dynamic routing).
 */
function topPMask(probs: tf.Tensor2D, topP: number): tf.Tensor2D {
  return selectionMask(probs, (p) => {
    const [N, E] = p.shape;
    const { values, flat } = ranked(p, E); // every expert, sorted
    const before = tf.cumsum(values, 1, true); // [N, E]: mass ranked above each
    const keep = tf.cast(tf.less(before, topP), 'float32');
    return tf.reshape(tf.scatterND(flat, tf.reshape(keep, [N * E]), [N * E]), [N, E]) as tf.Tensor2D;
  });
}

/** Gates g = p⊙m / Σ_e p⊙m [N, E] and that total Σ_e p⊙m [N, 1], which the backward needs. */
export function renormaliseGates(p: tf.Tensor2D, mask: tf.Tensor2D): { gates: tf.Tensor2D; total: tf.Tensor2D } {
  const kept = tf.mul(p, mask); // [N, E]
  const total = tf.sum(kept, 1, true) as tf.Tensor2D; // [N, 1]
  return { gates: tf.div(kept, total) as tf.Tensor2D, total };
}

/** dp of renormaliseGates for dg (the mask is constant): m ⊙ (dg − Σ_e dg⊙g) / Σ_e p⊙m. */
export function renormaliseGatesGrad(dg: tf.Tensor, gates: tf.Tensor, mask: tf.Tensor, total: tf.Tensor): tf.Tensor2D {
  return tf.div(tf.mul(tf.sub(dg, tf.sum(tf.mul(dg, gates), 1, true)), mask), total) as tf.Tensor2D;
}

/** dl of p = softmax(l) over the last axis for dp: p ⊙ (dp − Σ_e dp⊙p). */
export function softmaxGrad(p: tf.Tensor, dp: tf.Tensor): tf.Tensor2D {
  return tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), 1, true))) as tf.Tensor2D;
}

/**
 * [E, E·r]: row e holds `scale` over expert e's r columns, so gates [N, E] · P spread each gate
 * over its expert's rank columns (and the backward P^T sums them back) as small products.
 */
function spreadMatrix(experts: number, rank: number, scale: number): tf.Tensor2D {
  const v = new Float32Array(experts * experts * rank);
  for (let e = 0; e < experts; e++) v.fill(scale, e * experts * rank + e * rank, e * experts * rank + (e + 1) * rank);
  return tf.tensor2d(v, [experts, experts * rank]);
}

/**
 * G [N, E·r] = g·P for logits l [N, E] and the mask m (constant), as one op with its gradient
 * written out: forward p = softmax(l), g = p⊙m / Σ_e p⊙m, G = g·P; backward dg = dG·Pᵀ,
 * dl = softmaxGrad(p, renormaliseGatesGrad(dg)). Autodiff through the same ops recorded far
 * more kernels, each saving and cloning its operands.
 */
function spreadGates(logits: tf.Tensor2D, mask: tf.Tensor2D, rank: number, scale: number): tf.Tensor2D {
  const E = logits.shape[1];
  const op = tf.customGrad((...args) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const P = spreadMatrix(E, rank, scale); // scale folded in
    const p = tf.softmax(l) as tf.Tensor2D;
    const { gates: g, total } = renormaliseGates(p, mask); // [N, E], [N, 1]
    save([p, g, total, mask, P]);
    return {
      value: tf.matMul(g, P) as tf.Tensor2D, // [N, E] x [E, E·r]
      gradFunc: (dG: tf.Tensor, saved: tf.Tensor[]) => {
        const [ps, gs, ts, ms, Ps] = saved as tf.Tensor2D[];
        const dg = tf.matMul(dG as tf.Tensor2D, Ps, false, true); // [N, E·r] x [E·r, E]
        return softmaxGrad(ps, renormaliseGatesGrad(dg, gs, ms, ts));
      },
    };
  });
  return op(logits) as tf.Tensor2D;
}

/** Plain tfjs ops: the definition every implementation is tested against. */
export const referenceRouterGates: RouterGatesImpl = {
  select(logits, routing) {
    const E = logits.shape[1];
    if (routing.strategy === 'dense') return tf.onesLike(logits);
    if (routing.strategy === 'topk') return topKMask(logits, Math.min(routing.topK, E));
    return topPMask(tf.softmax(logits) as tf.Tensor2D, routing.topP);
  },
  spread(logits, routing, rank, scale) {
    const mask = referenceRouterGates.select(logits, routing);
    return { gates: spreadGates(logits, mask, rank, scale), mask };
  },
};

/** The op: backends register theirs with `routerGatesOp.register(backend, impl)`. */
export const routerGatesOp = defineOp<RouterGatesImpl>('router-gates', referenceRouterGates);

/**
 * A mixture layer's experts, as one op: for rows x [N, in] (the router's) and xd (the experts':
 * dropout(x) when training, else x),
 *
 *     l = x·Wr                              router logits [N, E]       (router-logits)
 *     G, m = gates(l)                       scale·g over r columns     (router-gates)
 *     delta = ((xd·A) ⊙ G)·B                [N, in]·[in, E·r] -> [N, out]
 *     aux = c_b·balance + c_z·z-loss        training only              (router-losses)
 *
 * and for one expert (no router) plain LoRA, delta = scale · (xd·A)·B. The reference composes
 * the three finer ops, each through its own registry (the host form of the routing on wasm and
 * cpu, webgpu's programs there), with the experts' products below; with the finer ops'
 * references it is plain tfjs (plainRoutedExperts), what the parity tests hold every
 * implementation to. A backend may register the whole layer as a few fused kernels: wasm with a
 * native BLAS does (src/backend/wasm-routed.ts), the frozen base's product x·W included.
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';
import { referenceRouterGates, routerGatesOp, type RouterGatesImpl, type RoutingOptions } from './router-gates.ts';
import { referenceRouterLogits, routerLogitsOp, type RouterLogitsImpl } from './router-logits.ts';
import { referenceRouterLosses, routerLossesOp, type RouterLossesImpl } from './router-losses.ts';

/** A module's adapter tensors in compute layout. Expert e owns columns/rows e·r .. (e+1)·r. */
export interface MixtureWeights {
  /** [in, E·r]: every expert's A ([r, in] in HF layout) transposed, side by side. */
  loraA: tf.Tensor2D;
  /** [E·r, out]: every expert's B ([out, r] in HF layout) transposed, stacked. */
  loraB: tf.Tensor2D;
  /** [in, E]: the router (HF `moe_gate.weight` [E, in]) transposed; null for one expert. */
  router: tf.Tensor2D | null;
}

export interface MixtureSpec {
  experts: number;
  rank: number;
  /** The LoRA scale (loraScale(plan, rank)). */
  scale: number;
  routing: RoutingOptions;
}

/** The router losses of a training forward (balance and z-loss weights, the token mask). */
export interface RouterLossSpec {
  balanceCoef: number;
  zLossCoef: number;
  /** [N] 1 for real tokens, 0 for padding. */
  tokenMask?: tf.Tensor1D;
  /** Hand out each expert's share of the selections too (the usage log). */
  usage?: boolean;
}

export interface RoutedOutput {
  /** [N, out] the adapter's contribution; with `withBase`, x·W + that. */
  delta: tf.Tensor2D;
  /** Whether delta holds the frozen base's product x·W (the implementation fused it). */
  withBase: boolean;
  /** [N, E] router logits; null for one expert, or when the losses were computed inside. */
  logits: tf.Tensor2D | null;
  /** [N, E] selection mask (no gradient); null where logits are. */
  mask: tf.Tensor2D | null;
  /** The router losses' weighted sum, when asked for (`losses`). */
  aux?: tf.Scalar;
  /** [E] each expert's share of the selections, when the losses were asked for with `usage`. */
  usage?: tf.Tensor1D;
}

/**
 * x [N, in], xd [N, in], the weights, and optionally the layer's frozen base kernel W [in, out]
 * (an implementation may fuse its product, saying so by `withBase`) and the router losses.
 */
export type RoutedExpertsImpl = (x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, base: tf.Tensor2D | null, losses: RouterLossSpec | null) => RoutedOutput;

/**
 * The experts' gated sum for rows xd [N, in] given the spread gates G [N, E·r], as one op with
 * its gradient written out. Autodiff through the same ops recorded ~130 kernels per module
 * (each op saves, clones and often casts its operands).
 *   forward:  h = xd·A, D = (h ⊙ G)·B
 *   backward: dH = dD·Bᵀ, dh = dH ⊙ G, dxd = dh·Aᵀ, dA = xdᵀ·dh, dB = (h ⊙ G)ᵀ·dD, dG = dH ⊙ h
 */
export function expertsDelta(xd: tf.Tensor2D, loraA: tf.Tensor2D, loraB: tf.Tensor2D, gates: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const [x, A, B, G] = args.slice(0, 4) as tf.Tensor2D[];
    const save = args[4] as tf.GradSaveFunc;
    const h = tf.matMul(x, A); // [N, in] x [in, E·r]
    const gated = tf.mul(h, G);
    save([x, A, B, h, G, gated]);
    return {
      value: tf.matMul(gated, B) as tf.Tensor2D, // [N, E·r] x [E·r, out]
      gradFunc: (dD: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, As, Bs, hs, Gs, gatedS] = saved as tf.Tensor2D[];
        const dH = tf.matMul(dD as tf.Tensor2D, Bs, false, true); // [N, out] x [out, E·r]
        const dh = tf.mul(dH, Gs);
        return [tf.matMul(dh, As, false, true), tf.matMul(xs, dh, true, false), tf.matMul(gatedS, dD as tf.Tensor2D, true, false), tf.mul(dH, hs)];
      },
    };
  });
  return op(xd, loraA, loraB, gates) as tf.Tensor2D;
}

/** The finer ops a composed mixture runs. */
export interface RoutedParts {
  logits: RouterLogitsImpl;
  gates: RouterGatesImpl;
  losses: RouterLossesImpl;
}

/** The mixture composed from `parts()` (looked up at each call, so registrations made later count). */
export function composedRoutedExperts(parts: () => RoutedParts): RoutedExpertsImpl {
  return (x, xd, w, spec, _base, losses) => {
    if (w.router === null) {
      const h = tf.matMul(xd, w.loraA); // [N, in] x [in, r] -> [N, r]
      const delta = tf.matMul(tf.mul(h, spec.scale), w.loraB) as tf.Tensor2D; // [N, r] x [r, out] -> [N, out]
      return { delta, withBase: false, logits: null, mask: null };
    }
    const { logits: logitsOf, gates: gatesOf, losses: lossesOf } = parts();
    const logits = logitsOf(x, w.router); // [N, in] x [in, E] -> [N, E]
    const { gates, mask, rows } = gatesOf.spread(logits, spec.routing, spec.rank, spec.scale); // [N, E·r], [N, E]
    const delta = expertsDelta(xd, w.loraA, w.loraB, gates);
    const out: RoutedOutput = { delta, withBase: false, logits, mask };
    if (losses) {
      const usage: tf.Tensor1D[] = [];
      out.aux = lossesOf(logits, mask, { ...losses, fractionsOut: losses.usage ? usage : undefined, rows });
      if (usage.length) out.usage = usage[0];
    }
    return out;
  };
}

/** Plain tfjs throughout: the finer ops' references. */
export const plainRoutedExperts = composedRoutedExperts(() => ({ logits: referenceRouterLogits, gates: referenceRouterGates, losses: referenceRouterLosses }));

/** The reference: the finer ops as the active backend registered them. */
export const referenceRoutedExperts = composedRoutedExperts(() => ({ logits: routerLogitsOp.impl(), gates: routerGatesOp.impl(), losses: routerLossesOp.impl() }));

/** The op: backends register theirs with `routedExpertsOp.register(backend, impl)`. */
export const routedExpertsOp = defineOp<RoutedExpertsImpl>('routed-experts', referenceRoutedExperts);

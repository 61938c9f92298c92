/**
 * Routers: how router logits become per-token expert weights, and the losses that keep the
 * routers balanced. Pure tensor functions (no variables, no state) so the gradient tests can
 * drive them directly.
 *
 * Selection (which experts a token uses) is discrete: top-k and top-p masks come from ranking
 * the experts per token, made under `tf.customGrad` with a zero gradient. Gradients still
 * reach the router through the probabilities that the mask keeps (the renormalised gate) and
 * through the balance loss's mean probabilities, as in PyTorch.
 *
 * Each training op has a host form (placement 'host', src/backend/placement.ts): the same
 * numbers as JS loops over the [N, E] arrays (the *Rows functions at the end), for wasm and cpu,
 * where the ~50 small kernels per module of the tensor forms cost more in overhead than the
 * arithmetic itself (a fifth of a stories260K MoE step). On webgpu the device forms are GPU
 * programs of one thread per token row (src/backend/webgpu-router.ts) where E allows.
 */
import * as tf from '@tensorflow/tfjs';
import { defaultPlacement, type Placement } from '../backend/placement.ts';
import { ROUTE_MASK, ROUTER_AUX, ROUTER_AUX_GRAD, routerKernelsFor, STRATEGY_CODE, type AuxAttrs, type RouteAttrs } from '../backend/webgpu-router.ts';
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
 * the choice of experts is piecewise constant (and tfjs has no gradient for TopK or comparisons).
 */
function selectionMask(probs: tf.Tensor2D, select: (p: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const p = args[0] as tf.Tensor2D;
    return { value: tf.tidy(() => select(p)), gradFunc: () => tf.zerosLike(p) };
  });
  return op(probs) as tf.Tensor2D;
}

/**
 * Each row's first k experts in descending probability (ties to the lower index, as
 * torch.topk): their probabilities [N, k] and their flat positions n·E + e in [N·E], as a
 * [N·k, 1] index for ScatterNd, so a value per ranked expert can be put back in its place.
 * TopK plus ScatterNd is a few cheap kernels on every backend; ranking by broadcast comparisons
 * over [N, E, E] took a quarter of a MoE step on wasm, and wasm's OneHot ~60 ms on [1024, 2, 4].
 */
function ranked(p: tf.Tensor2D, k: number): { values: tf.Tensor2D; flat: tf.Tensor2D } {
  const [N, E] = p.shape;
  const { values, indices } = tf.topk(p, k); // [N, k] each
  const rowStart = tf.tensor2d(Int32Array.from({ length: N * k }, (_, i) => Math.floor(i / k) * E), [N, k], 'int32');
  const flat = tf.reshape(tf.add(indices, rowStart), [N * k, 1]) as tf.Tensor2D;
  return { values: values as tf.Tensor2D, flat };
}

/** [N, E] mask of each row's k largest probabilities. */
function topKMask(probs: tf.Tensor2D, k: number): tf.Tensor2D {
  return selectionMask(probs, (p) => {
    const [N, E] = p.shape;
    return tf.reshape(tf.scatterND(ranked(p, k).flat, tf.ones([N * k]), [N * E]), [N, E]) as tf.Tensor2D;
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

/**
 * The selection mask [N, E] for router logits (no gradient). Top-k ranks the logits themselves:
 * softmax keeps their order, so the probabilities need not be computed for it.
 */
export function selectExperts(logits: tf.Tensor2D, opts: RoutingOptions, placement: Placement = defaultPlacement()): tf.Tensor2D {
  const E = logits.shape[1];
  if (opts.strategy === 'dense') return tf.onesLike(logits);
  if (placement === 'host') return tf.tensor2d(selectRows(logits.dataSync() as Float32Array, E, opts), logits.shape);
  if (routerKernelsFor(tf, E)) {
    const attrs = routeAttrs(opts, E, 0, 0);
    return selectionMask(logits, (l) => tf.engine().runKernel(ROUTE_MASK, { logits: l }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D);
  }
  if (opts.strategy === 'topk') return topKMask(logits, Math.min(opts.topK, E));
  return topPMask(tf.softmax(logits) as tf.Tensor2D, opts.topP);
}

/** The router kernels' attributes (src/backend/webgpu-router.ts) for E experts of rank r. */
export function routeAttrs(opts: RoutingOptions, E: number, rank: number, scale: number): RouteAttrs {
  return { strategy: STRATEGY_CODE[opts.strategy], topK: Math.min(opts.topK, E), topP: opts.topP, rank, scale };
}

/** Softmax, selection and renormalised gates for router logits [N, E]. */
export function routeTokens(logits: tf.Tensor2D, opts: RoutingOptions, placement: Placement = defaultPlacement()): Routing {
  const probs = tf.softmax(logits) as tf.Tensor2D; // [N, E]
  if (opts.strategy === 'dense') return { probs, mask: tf.onesLike(probs), gates: probs };
  const mask = selectExperts(logits, opts, placement);
  return { probs, mask, gates: renormalised(probs, mask) };
}

/**
 * The pieces the written-out gradients here and in mixture.ts share (plain tensor functions,
 * called inside `tf.customGrad` ops).
 *
 * Gates g = p⊙m / Σ_e p⊙m: the probabilities renormalised over the selected experts; `total` is
 * Σ_e p⊙m [N, 1], which the backward needs.
 */
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
 * renormaliseGates as one op with its gradient written out. Autodiff through the product, sum
 * and broadcast division cost ~3 ms per module on wasm.
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
  /** Where the op runs; default defaultPlacement(). */
  placement?: Placement;
  /** Host placement: the logits' values and softmax and the mask's values, when the caller has them (not read back or recomputed). */
  hostRows?: HostRows;
}

/** A layer's routing arrays on the host, row-major [N, E]: logits l, softmax p, selection mask m. */
export interface HostRows {
  l: Float32Array;
  p: Float32Array;
  m: Float32Array;
}

/**
 * balanceCoef · balanceLoss + zLossCoef · routerZLoss of router logits [N, E], as one op with its
 * gradient written out (the training layer's router losses; the two functions above stay the
 * definition and the tests hold this to them). With P the probabilities, w the token mask and
 * W = Σ w: the balance loss E·Σ_e f_e·mean_w(P_e) has dP = c_b·E·f_e·w_n / W; the z-loss
 * mean_w(lse²) has dl = c_z·2·lse_n·w_n / W · P; and dl = P ⊙ (dP − Σ_e dP·P) through the softmax.
 */
export function routerAuxLoss(logits: tf.Tensor2D, mask: tf.Tensor2D, opts: RouterLossOptions): tf.Scalar {
  if ((opts.placement ?? defaultPlacement()) === 'host') return routerAuxLossOnHost(logits, mask, opts);
  const [N, E] = logits.shape;
  const { balanceCoef: cb, zLossCoef: cz, tokenMask } = opts;
  if (routerKernelsFor(tf, E)) return routerAuxLossFused(logits, mask, opts);
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
}

/** routerAuxLoss as the webgpu router kernels: ~4 GPU programs forward and 1 backward. */
function routerAuxLossFused(logits: tf.Tensor2D, mask: tf.Tensor2D, opts: RouterLossOptions): tf.Scalar {
  const attrs: AuxAttrs = { balanceCoef: opts.balanceCoef, zLossCoef: opts.zLossCoef };
  const op = tf.customGrad((...args) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const m = opts.tokenMask;
    const w = m ? (m.dtype === 'float32' ? m : tf.cast(m, 'float32')) : tf.fill([l.shape[0]], 1); // the programs read f32
    const [loss, fractions, sums] = tf.engine().runKernel(ROUTER_AUX, { logits: l, mask, w }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    if (opts.fractionsOut) opts.fractionsOut.push(tf.keep(fractions as tf.Tensor1D));
    save([l, w, fractions, sums]);
    return {
      value: loss as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [ls, ws, fs, ss] = saved;
        return tf.engine().runKernel(ROUTER_AUX_GRAD, { dy, logits: ls, w: ws, fractions: fs, sums: ss }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      },
    };
  });
  return op(logits) as tf.Scalar;
}

/** routerAuxLoss's host form: the same value and gradient from JS loops over the [N, E] arrays. */
function routerAuxLossOnHost(logits: tf.Tensor2D, mask: tf.Tensor2D, opts: RouterLossOptions): tf.Scalar {
  const E = logits.shape[1];
  const op = tf.customGrad((...args) => {
    const known = opts.hostRows;
    const l = known?.l ?? ((args[0] as tf.Tensor2D).dataSync() as Float32Array);
    const m = known?.m ?? (mask.dataSync() as Float32Array);
    const aux = routerAuxRows(l, m, E, opts.balanceCoef, opts.zLossCoef, opts.tokenMask?.dataSync() as Float32Array | undefined, known?.p);
    if (opts.fractionsOut) opts.fractionsOut.push(tf.keep(tf.tensor1d(aux.fractions)));
    return {
      value: tf.scalar(aux.value),
      gradFunc: (dy: tf.Tensor) => tf.tensor2d(aux.grad(dy.dataSync()[0]), logits.shape),
    };
  });
  return op(logits) as tf.Scalar;
}

// ---- Host forms: row-major [N, E] Float32Arrays, the same numbers as the tensor forms ----

/** Row-wise softmax of l [N, E]. */
export function softmaxRows(l: ArrayLike<number>, E: number): Float32Array {
  const p = new Float32Array(l.length);
  for (let o = 0; o < l.length; o += E) {
    let max = -Infinity;
    for (let e = 0; e < E; e++) max = Math.max(max, l[o + e]);
    let sum = 0;
    for (let e = 0; e < E; e++) sum += (p[o + e] = Math.exp(l[o + e] - max));
    for (let e = 0; e < E; e++) p[o + e] /= sum;
  }
  return p;
}

/**
 * Writes into `order` the row's experts in descending value, ties to the lower index (torch.topk,
 * tf.topk); only the first `k` places are filled. A selection sort: E is a handful of experts.
 */
function rowOrder(v: ArrayLike<number>, o: number, E: number, k: number, order: Int32Array): void {
  for (let e = 0; e < E; e++) order[e] = e;
  for (let i = 0; i < k; i++) {
    let best = i;
    for (let j = i + 1; j < E; j++) {
      const a = v[o + order[j]];
      const b = v[o + order[best]];
      if (a > b || (a === b && order[j] < order[best])) best = j;
    }
    const t = order[i];
    order[i] = order[best];
    order[best] = t;
  }
}

/** selectExperts on the host: the [N, E] 0/1 mask for logits l. */
export function selectRows(l: ArrayLike<number>, E: number, opts: RoutingOptions): Float32Array {
  const mask = new Float32Array(l.length);
  if (opts.strategy === 'dense') return mask.fill(1);
  const order = new Int32Array(E);
  if (opts.strategy === 'topk') {
    const k = Math.min(opts.topK, E);
    for (let o = 0; o < l.length; o += E) {
      rowOrder(l, o, E, k, order);
      for (let i = 0; i < k; i++) mask[o + order[i]] = 1;
    }
    return mask;
  }
  const p = softmaxRows(l, E);
  for (let o = 0; o < l.length; o += E) {
    rowOrder(p, o, E, E, order);
    let before = 0; // mass ranked above, summed in float32 as tf.cumsum does
    for (let i = 0; i < E && before < opts.topP; i++) {
      mask[o + order[i]] = 1;
      before = Math.fround(before + p[o + order[i]]);
    }
  }
  return mask;
}

/** renormaliseGates on the host: g = p⊙m / Σ_e p⊙m and that total per row [N]. */
export function gatesRows(p: ArrayLike<number>, mask: ArrayLike<number>, E: number): { gates: Float32Array; total: Float32Array } {
  const gates = new Float32Array(p.length);
  const total = new Float32Array(p.length / E);
  for (let n = 0, o = 0; o < p.length; n++, o += E) {
    let t = 0;
    for (let e = 0; e < E; e++) t += p[o + e] * mask[o + e];
    total[n] = t;
    for (let e = 0; e < E; e++) gates[o + e] = (p[o + e] * mask[o + e]) / t;
  }
  return { gates, total };
}

/**
 * dl for dg through the renormalisation and the softmax (renormaliseGatesGrad then
 * softmaxGrad, on the host): dp = m ⊙ (dg − Σ_e dg⊙g) / total, dl = p ⊙ (dp − Σ_e dp⊙p).
 */
export function gatesGradRows(dg: ArrayLike<number>, p: ArrayLike<number>, gates: ArrayLike<number>, mask: ArrayLike<number>, total: ArrayLike<number>, E: number): Float32Array {
  const dl = new Float32Array(p.length);
  const dp = new Float64Array(E);
  for (let n = 0, o = 0; o < p.length; n++, o += E) {
    let dgg = 0;
    for (let e = 0; e < E; e++) dgg += dg[o + e] * gates[o + e];
    let dpp = 0;
    for (let e = 0; e < E; e++) {
      dp[e] = (mask[o + e] * (dg[o + e] - dgg)) / total[n];
      dpp += dp[e] * p[o + e];
    }
    for (let e = 0; e < E; e++) dl[o + e] = p[o + e] * (dp[e] - dpp);
  }
  return dl;
}

/** routerAuxLoss's forward on the host: its value, the selection fractions, and what its gradient needs. */
export interface RouterAuxStats {
  value: number;
  /** [E] each expert's share of the selections (the usage log). */
  fractions: Float32Array;
  /** Σ of the token weights (N without a token mask). */
  W: number;
  /** [E] c_b·E·f_e: dP's factor for expert e, per unit of dy·w_n/W. */
  balance: Float64Array;
  /** [N] each row's logsumexp (z-loss only). */
  lse: Float64Array | null;
  balanceCoef: number;
  zLossCoef: number;
}

/**
 * routerAuxLoss's value and fractions on the host, from logits l, the selection mask and the
 * softmax p (all [N, E] row-major; `tokenMask` [N]: 1 real, 0 padding). Plain loops: it runs
 * for every routed module at every step.
 */
export function routerAuxStats(l: ArrayLike<number>, mask: ArrayLike<number>, p: ArrayLike<number>, E: number, cb: number, cz: number, tokenMask?: ArrayLike<number>): RouterAuxStats {
  const N = l.length / E;
  let W = N;
  if (tokenMask) {
    W = 0;
    for (let n = 0; n < N; n++) W += tokenMask[n];
    W = Math.max(W, 1e-9);
  }
  const perExpert = new Float64Array(E);
  const meanP = new Float64Array(E);
  for (let n = 0, o = 0; n < N; n++, o += E) {
    const wn = tokenMask ? tokenMask[n] : 1;
    for (let e = 0; e < E; e++) {
      perExpert[e] += mask[o + e] * wn;
      meanP[e] += p[o + e] * wn;
    }
  }
  let selected = 0;
  for (let e = 0; e < E; e++) selected += perExpert[e];
  const fractions = new Float32Array(E);
  for (let e = 0; e < E; e++) fractions[e] = perExpert[e] / Math.max(selected, 1e-9);
  let value = 0;
  if (cb > 0) {
    let fp = 0;
    for (let e = 0; e < E; e++) fp += fractions[e] * meanP[e];
    value += (cb * E * fp) / W;
  }
  const lse = cz > 0 ? new Float64Array(N) : null;
  if (lse) {
    let z = 0;
    for (let n = 0, o = 0; n < N; n++, o += E) {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, l[o + e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += Math.exp(l[o + e] - max);
      lse[n] = max + Math.log(sum);
      z += lse[n] * lse[n] * (tokenMask ? tokenMask[n] : 1);
    }
    value += (cz * z) / W;
  }
  const balance = new Float64Array(E);
  for (let e = 0; e < E; e++) balance[e] = cb * E * fractions[e];
  return { value, fractions, W, balance, lse, balanceCoef: cb, zLossCoef: cz };
}

/**
 * dl [N, E] += the router losses' gradient for an upstream dy (see routerAuxLoss for the
 * formulas), given the softmax p and token mask the stats were taken with.
 */
export function addRouterAuxGrad(dl: Float32Array, p: ArrayLike<number>, s: RouterAuxStats, dy: number, tokenMask?: ArrayLike<number>): void {
  const E = s.balance.length;
  const N = dl.length / E;
  const { W, balance, lse, balanceCoef: cb, zLossCoef: cz } = s;
  for (let n = 0, o = 0; n < N; n++, o += E) {
    const perToken = (dy * (tokenMask ? tokenMask[n] : 1)) / W;
    let dpp = 0; // Σ_e dP_e·P_e
    if (cb > 0) for (let e = 0; e < E; e++) dpp += perToken * balance[e] * p[o + e];
    const z = lse ? perToken * 2 * cz * lse[n] : 0;
    for (let e = 0; e < E; e++) dl[o + e] += (cb > 0 ? p[o + e] * (perToken * balance[e] - dpp) : 0) + p[o + e] * z;
  }
}

/**
 * routerAuxLoss on the host: its value, the selection fractions [E] and the gradient dl [N, E]
 * for an upstream dy. `probs`: softmaxRows(l) when the caller has it.
 */
export function routerAuxRows(l: ArrayLike<number>, mask: ArrayLike<number>, E: number, cb: number, cz: number, tokenMask?: ArrayLike<number>, probs?: ArrayLike<number>) {
  const p = probs ?? softmaxRows(l, E);
  const stats = routerAuxStats(l, mask, p, E, cb, cz, tokenMask);
  const grad = (dy: number): Float32Array => {
    const dl = new Float32Array(l.length);
    addRouterAuxGrad(dl, p, stats, dy, tokenMask);
    return dl;
  };
  return { value: stats.value, fractions: stats.fractions, grad };
}

/**
 * The routing ops' host form (src/ops/router-gates.ts, router-losses.ts): the same numbers as
 * JS loops over the row-major [N, E] arrays, registered for the backends whose tensors are host
 * memory (wasm, cpu; src/backend/placement.ts). There a kernel has a fixed overhead whatever
 * its size, and the ~50 small kernels per module of the tensor forms cost more than the
 * arithmetic itself. One read of the logits forward, one
 * upload each way. The wasm fused experts (wasm-routed.ts) run these loops between their
 * kernels where the SIMD module does not.
 */
import * as tf from '@tensorflow/tfjs';
import { routerGatesOp, type RouterGatesImpl, type RoutingOptions } from '../ops/router-gates.ts';
import { routerLossesOp, type RouterLossesImpl } from '../ops/router-losses.ts';

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

/**
 * G [N, E·r] from the logits' softmax `p` and the mask's `m` (both read by the caller): each
 * gate times `scale` fills `r` columns, as the reference's spread gates, with the gradient to
 * the logits written out; one upload forward and one backward.
 */
function spreadGatesOnHost(logits: tf.Tensor2D, p: Float32Array, m: Float32Array, E: number, r: number, scale: number): tf.Tensor2D {
  const op = tf.customGrad(() => {
    const { gates, total } = gatesRows(p, m, E);
    let G = gates;
    if (r !== 1 || scale !== 1) {
      G = new Float32Array(gates.length * r);
      for (let i = 0; i < gates.length; i++) G.fill(scale * gates[i], i * r, (i + 1) * r);
    }
    return {
      value: tf.tensor2d(G, [logits.shape[0], E * r]),
      gradFunc: (dG: tf.Tensor) => {
        const d = dG.dataSync();
        let dg = d as Float32Array;
        if (r !== 1 || scale !== 1) {
          dg = new Float32Array(gates.length);
          for (let i = 0; i < gates.length; i++) {
            let sum = 0;
            for (let j = i * r; j < (i + 1) * r; j++) sum += d[j];
            dg[i] = scale * sum;
          }
        }
        return tf.tensor2d(gatesGradRows(dg, p, gates, m, total, E), logits.shape);
      },
    };
  });
  return op(logits) as tf.Tensor2D;
}

/** The gates' host form. */
export const hostRouterGates: RouterGatesImpl = {
  select: (logits, routing) => tf.tensor2d(selectRows(logits.dataSync() as Float32Array, logits.shape[1], routing), logits.shape),
  spread(logits, routing, rank, scale) {
    const E = logits.shape[1];
    const l = logits.dataSync() as Float32Array;
    const m = selectRows(l, E, routing);
    const p = softmaxRows(l, E);
    const gates = spreadGatesOnHost(logits, p, m, E, rank, scale);
    return { gates, mask: tf.tensor2d(m, logits.shape), rows: { l, p, m } };
  },
};

/** The router losses' host form: value and gradient from the arrays (the gates' when given). */
export const hostRouterLosses: RouterLossesImpl = (logits, mask, opts) => {
  const E = logits.shape[1];
  const op = tf.customGrad((...args) => {
    const known = opts.rows;
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
};

/** Register the host forms for `backend` (initBackend does, for wasm and cpu). */
export function useHostRouter(backend: string): void {
  routerGatesOp.register(backend, hostRouterGates);
  routerLossesOp.register(backend, hostRouterLosses);
}

/**
 * The MoE routers' [N, E] math as a few GPU programs on webgpu, one thread per token row, in
 * place of ~60 small tfjs kernels per MoE module. On a GPU a training step is bound by host
 * time per kernel, and a router's arithmetic is tiny: the
 * same reasoning as the host forms in src/backend/host-router.ts, which these programs mirror line
 * for line (softmax, selection with ties to the lower index, renormalised gates, the balance
 * and z losses, and their gradients), in f32.
 *
 * They implement the router-gates and router-losses ops (src/ops/) on webgpu, registered with the
 * kernels; where E > MAX_FUSED_EXPERTS the ops' references run. Kernels:
 *   HiloRouteMask      {logits [N,E]} -> mask [N,E]                      (no gradient)
 *   HiloRouteGates     {logits, mask} -> G [N,E·r] = scale·g spread over each expert's r columns
 *   HiloRouteGatesGrad {dG [N,E·r], logits, mask} -> dlogits [N,E]
 *   HiloRouterAux      {logits, mask, w [N]} -> [loss [], fractions [E], sums [2E+2]]
 *   HiloRouterAuxGrad  {dy [], logits, w, fractions, sums} -> dlogits [N,E]
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { referenceRouterGates, routerGatesOp, selectionMask, type RouterGatesImpl, type RoutingOptions } from '../ops/router-gates.ts';
import { referenceRouterLosses, routerLossesOp, type RouterLossesImpl } from '../ops/router-losses.ts';
import { f32, i32, ThreadProgram, type WebGPUUtil as Util } from './webgpu-programs.ts';
import { fromAttrs, toAttrs } from './kernel-attrs.ts';

/** Experts per router the programs handle (their per-row arrays are this long). */
export const MAX_FUSED_EXPERTS = 32;

export const ROUTE_MASK = 'HiloRouteMask';
export const ROUTE_GATES = 'HiloRouteGates';
export const ROUTE_GATES_GRAD = 'HiloRouteGatesGrad';
export const ROUTER_AUX = 'HiloRouterAux';
export const ROUTER_AUX_GRAD = 'HiloRouterAuxGrad';

/** 0 dense, 1 top-k, 2 top-p (RoutingOptions.strategy). */
export const STRATEGY_CODE = { dense: 0, topk: 1, topp: 2 } as const;

/** WGSL shared by the programs: the row's softmax into p (returns the row's logsumexp). */
const SOFTMAX_ROW = `
  fn softmaxRow(row : i32, E : i32, p : ptr<function, array<f32, ${MAX_FUSED_EXPERTS}>>) -> f32 {
    var mx = -3.402823e38;
    for (var e = 0; e < E; e++) { mx = max(mx, L[row * E + e]); }
    var sum = 0.0;
    for (var e = 0; e < E; e++) { let x = exp(L[row * E + e] - mx); (*p)[e] = x; sum += x; }
    for (var e = 0; e < E; e++) { (*p)[e] = (*p)[e] / sum; }
    return mx + log(sum);
  }
`;

/** The row's softmax into p and Σ_e p_e m_e over the selection mask M (renormaliseGates' total). */
const KEPT_TOTAL = `${SOFTMAX_ROW}
  fn keptTotal(row : i32, E : i32, p : ptr<function, array<f32, ${MAX_FUSED_EXPERTS}>>) -> f32 {
    softmaxRow(row, E, p);
    var total = 0.0;
    for (var e = 0; e < E; e++) { total += (*p)[e] * M[row * E + e]; }
    return total;
  }
`;

/** Selection, as selectRows: top-k ranks the logits, top-p the probabilities (mass above < p). */
function maskProgram(util: Util, N: number, E: number): ThreadProgram {
  return new ThreadProgram(util, ['L'], [N, E], N, 'threads : i32, E : i32, strategy : i32, k : i32, topP : f32,', 'hilo_route_mask', `
    let row = index;
    let E = uniforms.E;
    var keep : array<f32, ${MAX_FUSED_EXPERTS}>;
    if (uniforms.strategy == 0) {
      for (var e = 0; e < E; e++) { keep[e] = 1.0; }
    } else {
      var v : array<f32, ${MAX_FUSED_EXPERTS}>;
      if (uniforms.strategy == 1) {
        for (var e = 0; e < E; e++) { v[e] = L[row * E + e]; }
      } else {
        softmaxRow(row, E, &v);
      }
      var order : array<i32, ${MAX_FUSED_EXPERTS}>;
      for (var e = 0; e < E; e++) { order[e] = e; keep[e] = 0.0; }
      let places = select(E, uniforms.k, uniforms.strategy == 1);
      var before = 0.0;
      for (var i = 0; i < places; i++) {
        var best = i;
        for (var j = i + 1; j < E; j++) {
          let a = v[order[j]];
          let b = v[order[best]];
          if (a > b || (a == b && order[j] < order[best])) { best = j; }
        }
        let t = order[i]; order[i] = order[best]; order[best] = t;
        if (uniforms.strategy == 2) {
          if (!(before < uniforms.topP)) { break; }
          before = before + v[order[i]];
        }
        keep[order[i]] = 1.0;
      }
    }
    for (var e = 0; e < E; e++) { setOutputAtIndex(row * E + e, keep[e]); }
  `, SOFTMAX_ROW);
}

/** G[n, e·r + j] = scale · p_e m_e / Σ_e p_e m_e, as spreadGates. */
function gatesProgram(util: Util, N: number, E: number, r: number): ThreadProgram {
  return new ThreadProgram(util, ['L', 'M'], [N, E * r], N, 'threads : i32, E : i32, r : i32, scale : f32,', 'hilo_route_gates', `
    let row = index;
    let E = uniforms.E;
    let r = uniforms.r;
    var p : array<f32, ${MAX_FUSED_EXPERTS}>;
    let total = keptTotal(row, E, &p);
    for (var e = 0; e < E; e++) {
      let g = uniforms.scale * (p[e] * M[row * E + e] / total);
      for (var j = 0; j < r; j++) { setOutputAtIndex((row * E + e) * r + j, g); }
    }
  `, KEPT_TOTAL);
}

/**
 * dlogits for dG, as gatesGradRows: dg_e = scale Σ_j dG[n, e·r + j], dp = m ⊙ (dg − Σ dg⊙g) / total,
 * dl = p ⊙ (dp − Σ dp⊙p).
 */
function gatesGradProgram(util: Util, N: number, E: number, r: number): ThreadProgram {
  return new ThreadProgram(util, ['D', 'L', 'M'], [N, E], N, 'threads : i32, E : i32, r : i32, scale : f32,', 'hilo_route_gates_grad', `
    let row = index;
    let E = uniforms.E;
    let r = uniforms.r;
    var p : array<f32, ${MAX_FUSED_EXPERTS}>;
    let total = keptTotal(row, E, &p);
    var dg : array<f32, ${MAX_FUSED_EXPERTS}>;
    var dgg = 0.0;
    for (var e = 0; e < E; e++) {
      var s = 0.0;
      for (var j = 0; j < r; j++) { s += D[(row * E + e) * r + j]; }
      dg[e] = uniforms.scale * s;
      dgg += dg[e] * (p[e] * M[row * E + e] / total);
    }
    var dpp = 0.0;
    for (var e = 0; e < E; e++) {
      dg[e] = M[row * E + e] * (dg[e] - dgg) / total; // now dp
      dpp += dg[e] * p[e];
    }
    for (var e = 0; e < E; e++) { setOutputAtIndex(row * E + e, p[e] * (dg[e] - dpp)); }
  `, KEPT_TOTAL);
}

/** Per row, weighted by w_n: [m_e w (E), p_e w (E), lse² w, w]; summed over rows by sumsProgram. */
function auxRowsProgram(util: Util, N: number, E: number): ThreadProgram {
  return new ThreadProgram(util, ['L', 'M', 'W'], [N, 2 * E + 2], N, 'threads : i32, E : i32,', 'hilo_router_aux_rows', `
    let row = index;
    let E = uniforms.E;
    let w = W[row];
    var p : array<f32, ${MAX_FUSED_EXPERTS}>;
    let lse = softmaxRow(row, E, &p);
    let o = row * (2 * E + 2);
    for (var e = 0; e < E; e++) {
      setOutputAtIndex(o + e, M[row * E + e] * w);
      setOutputAtIndex(o + E + e, p[e] * w);
    }
    setOutputAtIndex(o + 2 * E, lse * lse * w);
    setOutputAtIndex(o + 2 * E + 1, w);
  `, SOFTMAX_ROW);
}

/** Column sums of R [N, C], one thread per column. */
function sumsProgram(util: Util, N: number, C: number): ThreadProgram {
  return new ThreadProgram(util, ['R'], [C], C, 'threads : i32, n : i32,', 'hilo_router_aux_sums', `
    var s = 0.0;
    for (var i = 0; i < uniforms.n; i++) { s += R[i * uniforms.threads + index]; }
    setOutputAtIndex(index, s);
  `);
}

/** W = max(Σw, 1e-9); f_e = count_e / max(Σ count, 1e-9), from the sums S. */
const FRACTIONS = `
  fn fraction(e : i32, E : i32) -> f32 {
    var selected = 0.0;
    for (var i = 0; i < E; i++) { selected += S[i]; }
    return S[e] / max(selected, 1e-9);
  }
`;

function fractionsProgram(util: Util, E: number): ThreadProgram {
  return new ThreadProgram(util, ['S'], [E], E, 'threads : i32, E : i32,', 'hilo_router_aux_fractions', `
    setOutputAtIndex(index, fraction(index, uniforms.E));
  `, FRACTIONS);
}

/** cb·E·Σ_e f_e·Σ_n p_e w / W + cz·Σ_n lse² w / W. */
function lossProgram(util: Util, E: number): ThreadProgram {
  return new ThreadProgram(util, ['S'], [], 1, 'threads : i32, E : i32, cb : f32, cz : f32,', 'hilo_router_aux_loss', `
    let E = uniforms.E;
    let W = max(S[2 * E + 1], 1e-9);
    var value = 0.0;
    if (uniforms.cb > 0.0) {
      var acc = 0.0;
      for (var e = 0; e < E; e++) { acc += fraction(e, E) * S[E + e]; }
      value += uniforms.cb * f32(E) * acc / W;
    }
    if (uniforms.cz > 0.0) { value += uniforms.cz * S[2 * E] / W; }
    setOutputAtIndex(0, value);
  `, FRACTIONS);
}

/** dl_n = p ⊙ (dP − Σ dP⊙p) + p · perToken · 2 cz lse, dP = perToken cb E f, perToken = dy w_n / W. */
function auxGradProgram(util: Util, N: number, E: number): ThreadProgram {
  return new ThreadProgram(util, ['Dy', 'L', 'W', 'F', 'S'], [N, E], N, 'threads : i32, E : i32, cb : f32, cz : f32,', 'hilo_router_aux_grad', `
    let row = index;
    let E = uniforms.E;
    var p : array<f32, ${MAX_FUSED_EXPERTS}>;
    let lse = softmaxRow(row, E, &p);
    let perToken = Dy[0] * W[row] / max(S[2 * E + 1], 1e-9);
    var dpp = 0.0;
    if (uniforms.cb > 0.0) {
      for (var e = 0; e < E; e++) { dpp += perToken * uniforms.cb * f32(E) * F[e] * p[e]; }
    }
    for (var e = 0; e < E; e++) {
      var d = 0.0;
      if (uniforms.cb > 0.0) { d = p[e] * (perToken * uniforms.cb * f32(E) * F[e] - dpp); }
      if (uniforms.cz > 0.0) { d += p[e] * perToken * 2.0 * uniforms.cz * lse; }
      setOutputAtIndex(row * E + e, d);
    }
  `, SOFTMAX_ROW);
}

/** The attributes each kernel reads. */
export interface RouteAttrs {
  strategy: number;
  topK: number;
  topP: number;
  rank: number;
  scale: number;
}
export interface AuxAttrs {
  balanceCoef: number;
  zLossCoef: number;
}

let installed = false;

/** Register the five router kernels for webgpu, once per process. */
export function installRouterKernels(tf: typeof TF, util: Util): void {
  if (installed) return;
  const reg = (kernelName: string, kernelFunc: (inputs: Record<string, TF.TensorInfo>, attrs: Record<string, number>, b: WebGPUBackend) => TF.TensorInfo | TF.TensorInfo[]) =>
    tf.registerKernel({
      kernelName,
      backendName: 'webgpu',
      kernelFunc: (args) => kernelFunc(args.inputs as Record<string, TF.TensorInfo>, fromAttrs<Record<string, number>>(args.attrs), args.backend as WebGPUBackend),
    });
  const dims = (logits: TF.TensorInfo) => {
    const [N, E] = logits.shape;
    if (logits.shape.length !== 2 || E > MAX_FUSED_EXPERTS) throw new Error(`router kernels take [N, E<=${MAX_FUSED_EXPERTS}] logits, got [${logits.shape}]`);
    return { N, E };
  };
  reg(ROUTE_MASK, ({ logits }, a, b) => {
    const { N, E } = dims(logits);
    return b.runWebGPUProgram(maskProgram(util, N, E), [logits], 'float32', [i32(N), i32(E), i32(a.strategy), i32(a.topK), f32(a.topP)]);
  });
  reg(ROUTE_GATES, ({ logits, mask }, a, b) => {
    const { N, E } = dims(logits);
    return b.runWebGPUProgram(gatesProgram(util, N, E, a.rank), [logits, mask], 'float32', [i32(N), i32(E), i32(a.rank), f32(a.scale)]);
  });
  reg(ROUTE_GATES_GRAD, ({ dG, logits, mask }, a, b) => {
    const { N, E } = dims(logits);
    return b.runWebGPUProgram(gatesGradProgram(util, N, E, a.rank), [dG, logits, mask], 'float32', [i32(N), i32(E), i32(a.rank), f32(a.scale)]);
  });
  reg(ROUTER_AUX, ({ logits, mask, w }, a, b) => {
    const { N, E } = dims(logits);
    const rows = b.runWebGPUProgram(auxRowsProgram(util, N, E), [logits, mask, w], 'float32', [i32(N), i32(E)]);
    const sums = b.runWebGPUProgram(sumsProgram(util, N, 2 * E + 2), [rows], 'float32', [i32(2 * E + 2), i32(N)]);
    b.disposeData(rows.dataId);
    const fractions = b.runWebGPUProgram(fractionsProgram(util, E), [sums], 'float32', [i32(E), i32(E)]);
    const loss = b.runWebGPUProgram(lossProgram(util, E), [sums], 'float32', [i32(1), i32(E), f32(a.balanceCoef), f32(a.zLossCoef)]);
    return [loss, fractions, sums];
  });
  reg(ROUTER_AUX_GRAD, ({ dy, logits, w, fractions, sums }, a, b) => {
    const { N, E } = dims(logits);
    return b.runWebGPUProgram(auxGradProgram(util, N, E), [dy, logits, w, fractions, sums], 'float32', [i32(N), i32(E), f32(a.balanceCoef), f32(a.zLossCoef)]);
  });
  routerGatesOp.register('webgpu', gatesOnGpu(tf));
  routerLossesOp.register('webgpu', lossesOnGpu(tf));
  installed = true;
}

/** The kernels' attributes for E experts of rank r. */
export function routeAttrs(opts: RoutingOptions, E: number, rank: number, scale: number): RouteAttrs {
  return { strategy: STRATEGY_CODE[opts.strategy], topK: Math.min(opts.topK, E), topP: opts.topP, rank, scale };
}

/** The router-gates op as ROUTE_MASK and ROUTE_GATES(_GRAD): one GPU program each. */
function gatesOnGpu(tf: typeof TF): RouterGatesImpl {
  const gates: RouterGatesImpl = {
    select(logits, routing) {
      const E = logits.shape[1];
      if (routing.strategy === 'dense' || E > MAX_FUSED_EXPERTS) return referenceRouterGates.select(logits, routing);
      const attrs = toAttrs(routeAttrs(routing, E, 0, 0));
      return selectionMask(logits, (l) => tf.engine().runKernel(ROUTE_MASK, { logits: l }, attrs) as TF.Tensor2D);
    },
    spread(logits, routing, rank, scale) {
      const E = logits.shape[1];
      if (E > MAX_FUSED_EXPERTS) return referenceRouterGates.spread(logits, routing, rank, scale);
      const mask = gates.select(logits, routing);
      const attrs = toAttrs(routeAttrs(routing, E, rank, scale));
      const op = tf.customGrad((...args) => {
        const l = args[0] as TF.Tensor2D;
        (args[1] as TF.GradSaveFunc)([l, mask]);
        return {
          value: tf.engine().runKernel(ROUTE_GATES, { logits: l, mask }, attrs) as TF.Tensor2D,
          gradFunc: (dG: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(ROUTE_GATES_GRAD, { dG, logits: saved[0], mask: saved[1] }, attrs) as TF.Tensor2D,
        };
      });
      return { gates: op(logits) as TF.Tensor2D, mask };
    },
  };
  return gates;
}

/** The router-losses op as ROUTER_AUX (~4 GPU programs) forward and ROUTER_AUX_GRAD (1) backward. */
function lossesOnGpu(tf: typeof TF): RouterLossesImpl {
  return (logits, mask, opts) => {
    if (logits.shape[1] > MAX_FUSED_EXPERTS) return referenceRouterLosses(logits, mask, opts);
    const attrs = toAttrs<AuxAttrs>({ balanceCoef: opts.balanceCoef, zLossCoef: opts.zLossCoef });
    const op = tf.customGrad((...args) => {
      const l = args[0] as TF.Tensor2D;
      const save = args[1] as TF.GradSaveFunc;
      const m = opts.tokenMask;
      const w = m ? (m.dtype === 'float32' ? m : tf.cast(m, 'float32')) : tf.fill([l.shape[0]], 1); // the programs read f32
      const [loss, fractions, sums] = tf.engine().runKernel(ROUTER_AUX, { logits: l, mask, w }, attrs) as TF.Tensor[];
      if (opts.fractionsOut) opts.fractionsOut.push(tf.keep(fractions as TF.Tensor1D));
      save([l, w, fractions, sums]);
      return {
        value: loss as TF.Scalar,
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
          const [ls, ws, fs, ss] = saved;
          return tf.engine().runKernel(ROUTER_AUX_GRAD, { dy, logits: ls, w: ws, fractions: fs, sums: ss }, attrs) as TF.Tensor;
        },
      };
    });
    return op(logits) as TF.Scalar;
  };
}

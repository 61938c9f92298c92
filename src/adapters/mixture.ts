/**
 * The mixture-of-LoRA-experts linear layer. It wraps a frozen linear (PEFT style: the base is
 * kept as `base`, unchanged) and adds
 *
 *     y = base(x) + Σ_e g_e(x) · scale · B_e A_e dropout(x)
 *
 * with g the router's gates (renormalised top-k / top-p probabilities, or all probabilities
 * for `dense`). One expert is plain LoRA: no router, g = 1.
 *
 * All experts of a module run as one batched product (the `dense` compute mode of ref_moe.py):
 * the A's side by side as one [in, E·r] kernel, the gates broadcast over each expert's r columns,
 * then one [E·r, out] product. For small E this beats gathering tokens per expert on CPU/wasm
 * (scripts/bench-moe.ts measures both). Kernels are stored [in, ·] like FrozenLinear's so every
 * forward product is a plain matMul; the transposes live only in the file format (io.ts).
 * On wasm with a native BLAS the experts, and a frozen base's product with them, run as the
 * two fused kernels of src/backend/wasm-experts.ts; elsewhere as the tfjs ops below.
 */
import * as tf from '@tensorflow/tfjs';
import { runMultiOutput } from '../ops/multi-output.ts';
import { FrozenLinearLayer } from '../model/linear.ts';
import type { ForwardContext, LinearModule } from '../model/types.ts';
import { defaultPlacement, valuesOf, type Placement } from '../backend/placement.ts';
import {
  EXPERTS_BACKWARD, EXPERTS_FORWARD, hasFusedExperts, ROUTED_BACKWARD, ROUTED_GATE_GRAD, ROUTED_IN, ROUTED_OUT, ROUTED_TOPK_BACKWARD, ROUTED_TOPK_FORWARD,
  type ExpertsAttrs, type RoutedTopKAttrs,
} from '../backend/wasm-experts.ts';
import { hasSimdKernel, NARROW_MATMUL, NARROW_MATMUL_GRAD_W, NARROW_MATMUL_GRAD_X, ROUTE_GATES_GRAD_SIMD, ROUTE_TOPK } from '../backend/wasm-simd.ts';
import { ROUTE_GATES, ROUTE_GATES_GRAD, routerKernelsFor } from '../backend/webgpu-router.ts';
import {
  addRouterAuxGrad, gatesGradRows, gatesRows, renormaliseGates, renormaliseGatesGrad, routeAttrs, routerAuxLoss, selectExperts, selectionFractions, selectRows, softmaxGrad,
  softmaxRows,
  routerAuxStats,
  type HostRows,
  type RouterAuxStats,
  type RoutingOptions,
} from './routing.ts';

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

export interface MixtureOutput {
  /** [N, out] the adapter's contribution, without base(x). */
  delta: tf.Tensor2D;
  /** [N, E] router logits; null for one expert. */
  logits: tf.Tensor2D | null;
  /** [N, E] selection mask (no gradient); null for one expert. */
  mask: tf.Tensor2D | null;
  /** Host placement: the routing's arrays, for the router losses. */
  hostRows?: HostRows;
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
 * G [N, E·r] = g·P: the gates g for router logits l [N, E] and the selection mask m (constant),
 * each spread over its expert's r columns with the LoRA scale, as one op with its gradient
 * written out: forward p = softmax(l), g = p⊙m / Σ_e p⊙m, G = g·P; backward dg = dG·Pᵀ,
 * dl = softmaxGrad(p, renormaliseGatesGrad(dg)).
 */
function spreadGates(logits: tf.Tensor2D, mask: tf.Tensor2D, spec: MixtureSpec): tf.Tensor2D {
  if (routerKernelsFor(tf, spec.experts)) {
    // webgpu: one GPU program each way (src/backend/webgpu-router.ts)
    const attrs = routeAttrs(spec.routing, spec.experts, spec.rank, spec.scale) as unknown as tf.NamedAttrMap;
    const fused = tf.customGrad((...args) => {
      const l = args[0] as tf.Tensor2D;
      (args[1] as tf.GradSaveFunc)([l, mask]);
      return {
        value: tf.engine().runKernel(ROUTE_GATES, { logits: l, mask }, attrs) as tf.Tensor2D,
        gradFunc: (dG: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(ROUTE_GATES_GRAD, { dG, logits: saved[0], mask: saved[1] }, attrs) as tf.Tensor2D,
      };
    });
    return fused(logits) as tf.Tensor2D;
  }
  const op = tf.customGrad((...args) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const P = spreadMatrix(spec.experts, spec.rank, spec.scale); // scale folded in
    const p = tf.softmax(l) as tf.Tensor2D;
    const { gates: g, total } = renormaliseGates(p, mask); // [N, E], [N, 1]
    save([p, g, total, mask, P]);
    return {
      value: tf.matMul(g, P) as tf.Tensor2D,
      gradFunc: (dG: tf.Tensor, saved: tf.Tensor[]) => {
        const [ps, gs, ts, ms, Ps] = saved as tf.Tensor2D[];
        const dg = tf.matMul(dG as tf.Tensor2D, Ps, false, true); // [N, E]
        return softmaxGrad(ps, renormaliseGatesGrad(dg, gs, ms, ts));
      },
    };
  });
  return op(logits) as tf.Tensor2D;
}

/**
 * spreadGates' host form, from the logits' softmax `p` (made once by the caller) and the mask's
 * `m`: the same numbers in JS loops, one upload forward and one backward. Each gate times
 * `scale` fills `r` columns: [N, E·r] for the tensor form of the experts; r = 1 and scale 1
 * give the gates themselves, [N, E], for the fused kernel (src/backend/wasm-experts.ts).
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

/**
 * Plain LoRA's output for rows xd [N, in] through the fused wasm kernels
 * (src/backend/wasm-experts.ts), as one op. With `base` (a frozen kernel [in, out] and its rows
 * x) the op's output includes the base's product x·W as well.
 */
function fusedExperts(xd: tf.Tensor2D, loraA: tf.Tensor2D, loraB: tf.Tensor2D, spec: MixtureSpec, base: FusedBase | null): tf.Tensor2D {
  const sameRows = base !== null && base.x === xd;
  const attrs = { rank: spec.rank, scale: spec.scale, sameRows } satisfies ExpertsAttrs as unknown as tf.NamedAttrMap;
  // The op's inputs, in the order of the backward kernel's outputs: the base's rows when they are
  // not xd, then xd, A and B. W is frozen: closed over, not differentiated.
  const ins: tf.Tensor2D[] = [...(base && !sameRows ? [base.x] : []), xd, loraA, loraB];
  const op = tf.customGrad((...args) => {
    const t = args.slice(0, ins.length) as tf.Tensor2D[];
    const save = args[ins.length] as tf.GradSaveFunc;
    const [x, xds, A, B] = base && !sameRows ? t : [null, ...t];
    const inputs: tf.NamedTensorMap = { xd: xds!, A: A!, B: B!, ...(base ? { W: base.kernel } : {}), ...(x ? { x } : {}) };
    const [D, gated] = tf.engine().runKernel(EXPERTS_FORWARD, inputs, attrs) as tf.Tensor2D[];
    save([xds!, A!, B!, gated]);
    return {
      value: D,
      gradFunc: (dD: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, As, Bs, gatedS] = saved;
        const back = { dD, xd: xs, A: As, B: Bs, gated: gatedS, ...(base ? { W: base.kernel } : {}) };
        return tf.engine().runKernel(EXPERTS_BACKWARD, back, attrs) as tf.Tensor[];
      },
    };
  });
  return op(...ins) as tf.Tensor2D;
}

/** A frozen base's kernel [in, out] and the rows it multiplies. */
interface FusedBase {
  x: tf.Tensor2D;
  kernel: tf.Tensor2D;
}

/**
 * The weights among `ws` a backward must save to read them: variables outlive it, but anything
 * else (experts concatenated in the forward, say) is disposed with the caller's tidy first.
 */
const transientOf = (ws: tf.Tensor[]): tf.Tensor[] => ws.filter((t) => !(t instanceof tf.Variable));

/** `ws` with each weight transientOf chose replaced by its saved copy, in order. */
function restored(ws: tf.Tensor[], saved: tf.Tensor[]): tf.Tensor[] {
  let i = 0;
  return ws.map((t) => (t instanceof tf.Variable ? t : saved[i++]));
}

/** The router losses of a training forward (balance and z-loss weights, the token mask). */
export interface RouterLossSpec {
  balanceCoef: number;
  zLossCoef: number;
  /** [N] 1 for real tokens, 0 for padding. */
  tokenMask?: tf.Tensor1D;
}

/**
 * A routed mixture through the fused wasm kernels (src/backend/wasm-experts.ts) as one op with
 * two outputs: the delta (with `base`: x·W + delta), and the router's logits, or when `losses`
 * is given, the router losses' weighted sum in their place:
 *   forward   [h, l] = ROUTED_IN(x, A, Wr[, xd]); the routing of l: p = softmax(l), m = the
 *             selection, g = p⊙m / Σ p⊙m; [D, gated] = ROUTED_OUT(h, g, B[, x, W]); the router
 *             losses from l, p and m (routerAuxStats)
 *   backward  [dh, dg] = ROUTED_GATE_GRAD(dD, B, h, g); dl = the routing's gradient for dg plus
 *             the logits' dy, or the router losses' gradient added in place (addRouterAuxGrad);
 *             [dx(, dxd), dA, dB, dWr] = ROUTED_BACKWARD(...)
 * The router's product rides in A's when x is xd, and its dx in the base's: no separate pass
 * over x, and no add of two input gradients. The routing is the SIMD module's (top-k forward,
 * any selection backward) where it runs, else routing.ts's JS loops. The losses inside the op
 * spare each module a router-loss op of its own, copies of the [N, E] rows, a tensor for their
 * gradient and zeros for the logits' (~2% of a stories260K replica's MoE step, 35 modules).
 * Top-k routing with losses where the SIMD module runs (a training step's) is routedTopK's.
 */
function routedExperts(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, kernel: tf.Tensor2D | null, losses: RouterLossSpec | null): RoutedOutput {
  const simdTopK = spec.routing.strategy === 'topk' && hasSimdKernel(tf, ROUTE_TOPK);
  if (losses && simdTopK) return routedTopK(x, xd, w, spec, kernel, losses);
  const [N] = x.shape;
  const E = spec.experts;
  const same = xd === x;
  const attrs = { rank: spec.rank, scale: spec.scale } satisfies ExpertsAttrs as unknown as tf.NamedAttrMap;
  const { loraA: A, loraB: B } = w;
  const Wr = w.router!;
  const inputs: tf.NamedTensorMap = { x, A, B, Wr, ...(same ? {} : { xd }) };
  const transient = transientOf([A, B, Wr]);
  const base: tf.NamedTensorMap = kernel ? { W: kernel } : {};
  let hostRows: HostRows | null = null;
  let stats: RouterAuxStats | null = null;
  // the token weights as dataSync's copy (this path is wasm's): the losses' gradient reads them again in the backward
  const tokens = losses?.tokenMask ? (losses.tokenMask.dataSync() as Float32Array) : undefined;
  const outputs = runMultiOutput({
    inputs,
    forwardFunc: (_backend: unknown, save: tf.GradSaveFunc) => {
      const [h, l] = tf.engine().runKernel(ROUTED_IN, { x, A, Wr, ...(same ? {} : { xd }) }) as tf.Tensor2D[];
      let route: tf.Tensor[]; // p, m, gates [N, E], total [N]
      if (simdTopK) {
        // no losses here: with them, routedTopK above
        route = tf.engine().runKernel(ROUTE_TOPK, { logits: l }, { k: spec.routing.topK }) as tf.Tensor[];
        hostRows = { l: l.dataSync() as Float32Array, p: route[0].dataSync() as Float32Array, m: route[1].dataSync() as Float32Array };
      } else {
        const lv = l.dataSync() as Float32Array;
        const m = selectRows(lv, E, spec.routing);
        const p = softmaxRows(lv, E);
        const { gates, total } = gatesRows(p, m, E);
        if (losses) stats = routerAuxStats(lv, m, p, E, losses.balanceCoef, losses.zLossCoef, tokens);
        else hostRows = { l: lv, p, m };
        route = [tf.tensor2d(p, [N, E]), tf.tensor2d(m, [N, E]), tf.tensor2d(gates, [N, E]), tf.tensor1d(total)];
      }
      const [D, gated] = tf.engine().runKernel(ROUTED_OUT, { h, gates: route[2], B, ...(kernel ? { x, W: kernel } : {}) }, attrs) as tf.Tensor2D[];
      // the rows too: x or xd may be made inside the caller's tidy (dropout), gone by the backward;
      // so may weights that are not variables (e.g. experts concatenated in the forward)
      save([h, gated, ...route, x, ...(same ? [] : [xd]), ...transient]);
      // with the losses inside, nothing else needs the logits: not an output, so no zeros are
      // made for their gradient
      return stats ? [D, tf.scalar(stats.value)] : [D, l];
    },
    backwardsFunc: (dys: tf.Tensor[], saved: tf.Tensor[]) => {
      // dLogits: the router losses' gradient when they are computed outside (zeros without them)
      const [dD, dLogits, dAux] = stats ? [dys[0], null, dys[1]] : [dys[0], dys[1], null];
      const [h, gated, p, m, g, total, xs] = saved;
      const xds = same ? undefined : saved[7];
      const [As, Bs, Wrs] = restored([A, B, Wr], saved.slice(same ? 7 : 8));
      const [dh, dg] = tf.engine().runKernel(ROUTED_GATE_GRAD, { dD, B: Bs, h, gates: g }, attrs) as tf.Tensor2D[];
      let dl: tf.Tensor;
      if (hasSimdKernel(tf, ROUTE_GATES_GRAD_SIMD)) {
        dl = tf.engine().runKernel(ROUTE_GATES_GRAD_SIMD, { dg, p, gates: g, m, total, ...(dLogits ? { extra: dLogits } : {}) });
      } else {
        const host = gatesGradRows(dg.dataSync(), p.dataSync(), g.dataSync(), m.dataSync(), total.dataSync(), E);
        if (dLogits) {
          const extra = dLogits.dataSync();
          for (let i = 0; i < host.length; i++) host[i] += extra[i];
        }
        dl = tf.tensor2d(host, [N, E]);
      }
      if (stats) {
        const dy = dAux!.dataSync()[0];
        if (dy !== 0) addRouterAuxGrad(valuesOf(dl), valuesOf(p), stats, dy, tokens); // dl is this op's own, not yet handed on
      }
      const back = { dD, dh, dl, x: xs, A: As, B: Bs, Wr: Wrs, gated, ...(same ? {} : { xd: xds }), ...base };
      const grads = tf.engine().runKernel(ROUTED_BACKWARD, back) as tf.Tensor[];
      tf.dispose([dh, dg, dl]);
      // in the kernel's order: dx, dxd (rows of their own), dA, dB, dWr
      const names = same ? ['x', 'A', 'B', 'Wr'] : ['x', 'xd', 'A', 'B', 'Wr'];
      return Object.fromEntries(names.map((n, i) => [n, () => grads[i]]));
    },
  }) as tf.Tensor[];
  const delta = outputs[0] as tf.Tensor2D;
  if (stats) return { delta, logits: null, mask: null, aux: outputs[1] as tf.Scalar, fractions: (stats as RouterAuxStats).fractions };
  const r = hostRows!;
  return { delta, logits: outputs[1] as tf.Tensor2D, mask: tf.tensor2d(r.m, [N, E]), hostRows: r };
}

/**
 * routedExperts for a training forward with top-k routing and router losses, where the SIMD
 * module runs: one kernel each way (ROUTED_TOPK_FORWARD / _BACKWARD in
 * src/backend/wasm-experts.ts) in place of three, [h | l] kept whole instead of split and put
 * back together, the losses' statistics and gradient in the SIMD module, and 5 saved tensors in
 * place of 8. Outputs: the delta (with `kernel`: x·W + delta) and the router losses' value.
 */
function routedTopK(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, kernel: tf.Tensor2D | null, losses: RouterLossSpec): RoutedOutput {
  const E = spec.experts;
  const same = xd === x;
  const { loraA: A, loraB: B } = w;
  const Wr = w.router!;
  const attrs = {
    rank: spec.rank, scale: spec.scale, k: spec.routing.topK, balanceCoef: losses.balanceCoef, zLossCoef: losses.zLossCoef,
  } satisfies RoutedTopKAttrs;
  const mask = losses.tokenMask;
  const tokens = mask ? (mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32')) : null;
  const transient = transientOf([A, B, Wr]);
  const rows = { ...(same ? {} : { xd }), ...(kernel ? { W: kernel } : {}) };
  let fractions = new Float32Array(E);
  const outputs = runMultiOutput({
    inputs: { x, A, B, Wr, ...(same ? {} : { xd }) },
    forwardFunc: (_backend: unknown, save: tf.GradSaveFunc) => {
      const ins = { x, A, Wr, B, ...rows, ...(tokens ? { tokens } : {}) };
      const [D, gated, hl, route, stats, aux] = tf.engine().runKernel(ROUTED_TOPK_FORWARD, ins, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      fractions = valuesOf(stats).slice(0, E);
      save([gated, hl, route, stats, x, ...(same ? [] : [xd]), ...(tokens ? [tokens] : []), ...transient]);
      return [D, aux];
    },
    backwardsFunc: (dys: tf.Tensor[], saved: tf.Tensor[]) => {
      const [gated, hl, route, stats, xs] = saved;
      let i = 5;
      const xds = same ? null : saved[i++];
      const toks = tokens ? saved[i++] : null;
      const [As, Bs, Wrs] = restored([A, B, Wr], saved.slice(i));
      const back = {
        dD: dys[0], x: xs, A: As, B: Bs, Wr: Wrs, gated, hl, route, stats,
        ...(xds ? { xd: xds } : {}), ...(kernel ? { W: kernel } : {}), ...(toks ? { tokens: toks } : {}),
      };
      const dy = dys[1].dataSync()[0];
      const grads = tf.engine().runKernel(ROUTED_TOPK_BACKWARD, back, { ...attrs, dy } as unknown as tf.NamedAttrMap) as tf.Tensor[];
      // in the kernel's order: dx, dxd (rows of their own), dA, dB, dWr
      const names = same ? ['x', 'A', 'B', 'Wr'] : ['x', 'xd', 'A', 'B', 'Wr'];
      return Object.fromEntries(names.map((n, j) => [n, () => grads[j]]));
    },
  }) as tf.Tensor[];
  return { delta: outputs[0] as tf.Tensor2D, logits: null, mask: null, aux: outputs[1] as tf.Scalar, fractions };
}

/** A routed mixture's output, with its router losses when it computed them itself. */
interface RoutedOutput extends MixtureOutput {
  /** The router losses' weighted sum (a training forward's, with losses asked for). */
  aux?: tf.Scalar;
  /** [E] each expert's share of the selections, from the same pass. */
  fractions?: Float32Array;
}

/**
 * The experts' gated sum for rows xd [N, in] given the spread gates G [N, E·r], as one op with
 * its gradient written out. Autodiff through the same ops recorded ~130 kernels per module
 * (each op saves, clones and often casts its operands).
 *   forward:  h = xd·A, D = (h ⊙ G)·B
 *   backward: dH = dD·Bᵀ, dh = dH ⊙ G, dxd = dh·Aᵀ, dA = xdᵀ·dh, dB = (h ⊙ G)ᵀ·dD, dG = dH ⊙ h
 */
function expertsDelta(xd: tf.Tensor2D, loraA: tf.Tensor2D, loraB: tf.Tensor2D, gates: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const [x, A, B, G] = args.slice(0, 4) as tf.Tensor2D[];
    const save = args[4] as tf.GradSaveFunc;
    const h = tf.matMul(x, A); // [N, E·r]
    const gated = tf.mul(h, G);
    save([x, A, B, h, G, gated]);
    return {
      value: tf.matMul(gated, B) as tf.Tensor2D, // [N, out]
      gradFunc: (dD: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, As, Bs, hs, Gs, gatedS] = saved as tf.Tensor2D[];
        const dH = tf.matMul(dD as tf.Tensor2D, Bs, false, true); // [N, E·r]
        const dh = tf.mul(dH, Gs);
        return [tf.matMul(dh, As, false, true), tf.matMul(xs, dh, true, false), tf.matMul(gatedS, dD as tf.Tensor2D, true, false), tf.mul(dH, hs)];
      },
    };
  });
  return op(xd, loraA, loraB, gates) as tf.Tensor2D;
}

/**
 * Router logits x·W [N, E] for rows x [N, in] and a router W [in, E]. On wasm the product and its
 * gradients (dx = dl·Wᵀ, dW = xᵀ·dl) are one pass over x each (src/backend/wasm-simd.ts):
 * OpenBLAS packed all of x for each of these narrow products, ~0.4 ms a module in a step.
 */
function routerLogits(x: tf.Tensor2D, router: tf.Tensor2D): tf.Tensor2D {
  if (x.dtype !== 'float32' || !hasSimdKernel(tf, NARROW_MATMUL)) return tf.matMul(x, router) as tf.Tensor2D; // [N, in] x [in, E]
  const op = tf.customGrad((...args) => {
    const [xs, w] = args.slice(0, 2) as tf.Tensor2D[];
    (args[2] as tf.GradSaveFunc)([xs, w]);
    return {
      value: tf.engine().runKernel(NARROW_MATMUL, { x: xs, w }) as tf.Tensor2D,
      gradFunc: (dl: tf.Tensor, saved: tf.Tensor[]) => [
        tf.engine().runKernel(NARROW_MATMUL_GRAD_X, { d: dl, w: saved[1] }) as tf.Tensor,
        tf.engine().runKernel(NARROW_MATMUL_GRAD_W, { x: saved[0], d: dl }) as tf.Tensor,
      ],
    };
  });
  return op(x, router) as tf.Tensor2D;
}

/**
 * The adapter delta for rows x [N, in]. `xd` is what the experts see (dropout(x) when training,
 * else x); the router always sees x, as in MoLA/ref_moe.py. `placement` says where the routing
 * math on [N, E] runs (src/backend/placement.ts); the products are kernels either way.
 */
export function mixtureDelta(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, placement: Placement = defaultPlacement()): MixtureOutput {
  return mixture(x, xd, w, spec, placement, null);
}

/**
 * mixtureDelta, or with `base` (a frozen kernel [in, out]) and the fused wasm kernels, the whole
 * layer's output x·W + delta in one op (`withBase` says which).
 */
function mixture(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, placement: Placement, base: tf.Tensor2D | null, losses: RouterLossSpec | null = null): RoutedOutput & { withBase: boolean } {
  const fused = placement === 'host' && hasFusedExperts(tf);
  const withBase = fused && base !== null;
  if (w.router === null) {
    if (fused) return { delta: fusedExperts(xd, w.loraA, w.loraB, spec, withBase ? { x, kernel: base! } : null), logits: null, mask: null, withBase };
    const h = tf.matMul(xd, w.loraA); // [N, in] x [in, r] -> [N, r]
    const delta = tf.matMul(tf.mul(h, spec.scale), w.loraB) as tf.Tensor2D; // [N, r] x [r, out] -> [N, out]
    return { delta, logits: null, mask: null, withBase };
  }
  if (fused && x.dtype === 'float32') return { ...routedExperts(x, xd, w, spec, withBase ? base : null, losses), withBase };
  const logits = routerLogits(x, w.router); // [N, in] x [in, E] -> [N, E]
  if (placement === 'host') {
    const l = logits.dataSync() as Float32Array;
    const m = selectRows(l, spec.experts, spec.routing);
    const p = softmaxRows(l, spec.experts);
    const delta = expertsDelta(xd, w.loraA, w.loraB, spreadGatesOnHost(logits, p, m, spec.experts, spec.rank, spec.scale));
    return { delta, logits, mask: tf.tensor2d(m, logits.shape), hostRows: { l, p, m }, withBase };
  }
  const mask = selectExperts(logits, spec.routing, 'device');
  return { delta: expertsDelta(xd, w.loraA, w.loraB, spreadGates(logits, mask, spec)), logits, mask, withBase };
}

/** PEFT's get_delta_weight for one expert, as a kernel: scale · A·B, [in, r] x [r, out] -> [in, out]. */
export function loraDeltaKernel(loraA: tf.Tensor2D, loraB: tf.Tensor2D, scale: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.matMul(loraA, loraB), scale) as tf.Tensor2D);
}

export interface MixtureOptions {
  /** Dropout rate on the experts' input while training. */
  dropout: number;
  /** Weight of the balance loss pushed onto ctx.auxLosses (0: not computed). */
  balanceCoef: number;
  /** Weight of the router z-loss (0: not computed). */
  zLossCoef: number;
  /** Where the routing math runs (src/backend/placement.ts); default by the active backend. */
  placement?: Placement;
}

/** What one forward's tidy hands out: the output and, with a context, the router's loss and usage. */
interface ForwardParts extends tf.TensorContainerObject {
  y: tf.Tensor2D;
  aux?: tf.Scalar;
  usage?: tf.Tensor1D;
}

/** A frozen linear plus its LoRA experts and router; drops in for the base in CausalLM.modules. */
export class MixtureLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Used for dropout when the context carries no seed source, so runs stay reproducible. */
  private fallbackSeed: number;

  constructor(
    /** HF module path, e.g. model.layers.0.self_attn.q_proj; keys ctx.routerStats. */
    readonly name: string,
    readonly base: LinearModule,
    readonly spec: MixtureSpec,
    readonly weights: { loraA: tf.Variable<tf.Rank.R2>; loraB: tf.Variable<tf.Rank.R2>; router: tf.Variable<tf.Rank.R2> | null },
    readonly options: MixtureOptions,
    seed = 0,
  ) {
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.fallbackSeed = seed;
  }

  /** The trainable variables: A, B and (more than one expert) the router. */
  variables(): tf.Variable[] {
    const w = this.weights;
    return w.router ? [w.loraA, w.loraB, w.router] : [w.loraA, w.loraB];
  }

  forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D {
    const N = x.shape[0];
    const mask = ctx?.tokenMask;
    if (mask && mask.shape[0] !== N) {
      throw new Error(`${this.name}: ctx.tokenMask has ${mask.shape[0]} entries but the input has ${N} rows`);
    }
    const { dropout, balanceCoef, zLossCoef } = this.options;
    const placement = this.options.placement ?? defaultPlacement();
    const seed = ctx?.training && dropout > 0 ? (ctx.dropoutSeed ? ctx.dropoutSeed.next() : this.fallbackSeed++) : 0;
    const out = tf.tidy((): ForwardParts => {
      const xd = ctx?.training && dropout > 0 ? tf.dropout(x, dropout, undefined, seed) as tf.Tensor2D : x;
      // A frozen base's product can go into the fused kernels (withBase); bias added after.
      // (held outside the engine, the base has no kernel tensor: its own op runs, and the delta is added)
      const frozen = this.base instanceof FrozenLinearLayer && this.base.kernel && !this.base.kernel.trainable ? this.base : null;
      const losses = ctx?.training && (balanceCoef > 0 || zLossCoef > 0) ? { balanceCoef, zLossCoef, tokenMask: mask } : null;
      const { delta, logits, mask: selected, hostRows, withBase, aux, fractions } = mixture(x, xd, this.weights, this.spec, placement, frozen ? (frozen.kernel! as tf.Tensor2D) : null, losses);
      const y = (withBase ? (frozen!.bias ? tf.add(delta, frozen!.bias) : delta) : tf.add(this.base.forward(x, ctx), delta)) as tf.Tensor2D;
      const parts: ForwardParts = { y };
      if (aux) {
        // the fused op computed the router losses (and the usage log) itself
        parts.aux = aux;
        if (ctx!.routerStats) parts.usage = tf.tensor1d(fractions!);
        return parts;
      }
      if (!ctx || !logits || !selected) return parts;
      if (losses) {
        // The router losses' op also hands out the selection fractions it computes (off the
        // gradient tape), which are the usage log: ~15 fewer recorded kernels per module.
        const usage: tf.Tensor1D[] = [];
        parts.aux = routerAuxLoss(logits, selected, { balanceCoef, zLossCoef, tokenMask: mask, fractionsOut: ctx.routerStats ? usage : undefined, placement, hostRows });
        if (usage.length) parts.usage = usage[0];
        return parts;
      }
      // router losses are training losses: eval contexts get none, only the usage log
      if (ctx.routerStats) parts.usage = selectionFractions(selected, mask);
      return parts;
    });
    // Both are kept past the model's own tidy; whoever made the context disposes them
    // (tf.dispose(ctx.auxLosses) once the loss is taken, and the routerStats values).
    if (out.aux) ctx!.auxLosses.push(tf.keep(out.aux));
    if (out.usage) {
      ctx!.routerStats!.get(this.name)?.dispose();
      ctx!.routerStats!.set(this.name, tf.keep(out.usage));
    }
    return out.y;
  }
}

/**
 * The routed-experts op (src/ops/routed-experts.ts) on wasm with a native BLAS: the layer as the
 * fused kernels of wasm-experts.ts, the frozen base's product x·W included where the layer has
 * one, and the routing between them in the SIMD module (wasm-simd.ts) where it runs, else as
 * host-router.ts's loops. Registered by useWasmExperts; rows that are not float32 take the
 * reference.
 */
import * as tf from '@tensorflow/tfjs';
import { runMultiOutput } from '../ops/multi-output.ts';
import { referenceRoutedExperts, routedExpertsOp, type MixtureSpec, type MixtureWeights, type RoutedExpertsImpl, type RoutedOutput, type RouterLossSpec } from '../ops/routed-experts.ts';
import { addRouterAuxGrad, gatesGradRows, gatesRows, routerAuxStats, selectRows, softmaxRows, type RouterAuxStats } from './host-router.ts';
import { valuesOf } from './placement.ts';
import {
  EXPERTS_BACKWARD, EXPERTS_FORWARD, ROUTED_BACKWARD, ROUTED_GATE_GRAD, ROUTED_IN, ROUTED_OUT, ROUTED_TOPK_BACKWARD, ROUTED_TOPK_FORWARD,
  type ExpertsAttrs, type RoutedTopKAttrs,
} from './wasm-experts.ts';
import { hasSimdKernel, ROUTE_GATES_GRAD_SIMD, ROUTE_TOPK } from './wasm-simd.ts';
import { toAttrs } from './kernel-attrs.ts';

/** The fused forms' output: fractions as the losses' pass left them, the usage tensor made by the caller. */
type FusedOutput = Omit<RoutedOutput, 'withBase' | 'usage'> & { fractions?: Float32Array };

/**
 * Plain LoRA's output for rows xd [N, in] through the fused wasm kernels
 * (src/backend/wasm-experts.ts), as one op. With `base` (a frozen kernel [in, out] and its rows
 * x) the op's output includes the base's product x·W as well.
 */
function fusedExperts(xd: tf.Tensor2D, loraA: tf.Tensor2D, loraB: tf.Tensor2D, spec: MixtureSpec, base: FusedBase | null): tf.Tensor2D {
  const sameRows = base !== null && base.x === xd;
  const attrs = toAttrs<ExpertsAttrs>({ rank: spec.rank, scale: spec.scale, sameRows });
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
 * any selection backward) where it runs, else host-router.ts's JS loops. The losses inside the op
 * spare each module a router-loss op of its own, copies of the [N, E] rows, a tensor for their
 * gradient and zeros for the logits' (~2% of a stories260K replica's MoE step, 35 modules).
 * Top-k routing with losses where the SIMD module runs (a training step's) is routedTopK's.
 */
function routedExperts(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, kernel: tf.Tensor2D | null, losses: RouterLossSpec | null): FusedOutput {
  const simdTopK = spec.routing.strategy === 'topk' && hasSimdKernel(tf, ROUTE_TOPK);
  if (losses && simdTopK) return routedTopK(x, xd, w, spec, kernel, losses);
  const [N] = x.shape;
  const E = spec.experts;
  const same = xd === x;
  const attrs = toAttrs<ExpertsAttrs>({ rank: spec.rank, scale: spec.scale });
  const { loraA: A, loraB: B } = w;
  const Wr = w.router!;
  const inputs: tf.NamedTensorMap = { x, A, B, Wr, ...(same ? {} : { xd }) };
  const transient = transientOf([A, B, Wr]);
  const base: tf.NamedTensorMap = kernel ? { W: kernel } : {};
  let selected: Float32Array | null = null; // the mask's values, without the losses
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
        selected = route[1].dataSync() as Float32Array;
      } else {
        const lv = l.dataSync() as Float32Array;
        const m = selectRows(lv, E, spec.routing);
        const p = softmaxRows(lv, E);
        const { gates, total } = gatesRows(p, m, E);
        if (losses) stats = routerAuxStats(lv, m, p, E, losses.balanceCoef, losses.zLossCoef, tokens);
        else selected = m;
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
  return { delta, logits: outputs[1] as tf.Tensor2D, mask: tf.tensor2d(selected!, [N, E]) };
}

/**
 * routedExperts for a training forward with top-k routing and router losses, where the SIMD
 * module runs: one kernel each way (ROUTED_TOPK_FORWARD / _BACKWARD in
 * src/backend/wasm-experts.ts) in place of three, [h | l] kept whole instead of split and put
 * back together, the losses' statistics and gradient in the SIMD module, and 5 saved tensors in
 * place of 8. Outputs: the delta (with `kernel`: x·W + delta) and the router losses' value.
 */
function routedTopK(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, kernel: tf.Tensor2D | null, losses: RouterLossSpec): FusedOutput {
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
      const [D, gated, hl, route, stats, aux] = tf.engine().runKernel(ROUTED_TOPK_FORWARD, ins, toAttrs(attrs)) as tf.Tensor[];
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
      const grads = tf.engine().runKernel(ROUTED_TOPK_BACKWARD, back, toAttrs({ ...attrs, dy })) as tf.Tensor[];
      // in the kernel's order: dx, dxd (rows of their own), dA, dB, dWr
      const names = same ? ['x', 'A', 'B', 'Wr'] : ['x', 'xd', 'A', 'B', 'Wr'];
      return Object.fromEntries(names.map((n, j) => [n, () => grads[j]]));
    },
  }) as tf.Tensor[];
  return { delta: outputs[0] as tf.Tensor2D, logits: null, mask: null, aux: outputs[1] as tf.Scalar, fractions };
}

/** The fused layer, the frozen base's product with it when `base` is given. */
export const wasmRoutedExperts: RoutedExpertsImpl = (x, xd, w, spec, base, losses) => {
  if (w.router === null) return { delta: fusedExperts(xd, w.loraA, w.loraB, spec, base ? { x, kernel: base } : null), withBase: base !== null, logits: null, mask: null };
  if (x.dtype !== 'float32') return referenceRoutedExperts(x, xd, w, spec, base, losses);
  const { fractions, ...rest } = routedExperts(x, xd, w, spec, base, losses);
  return { ...rest, withBase: base !== null, ...(fractions && losses?.usage ? { usage: tf.tensor1d(fractions) } : {}) };
};

/** Register (or remove) the fused layer for wasm: useWasmExperts does, with its kernels. */
export function useWasmRouted(on: boolean): void {
  routedExpertsOp.register('wasm', on ? wasmRoutedExperts : null);
}

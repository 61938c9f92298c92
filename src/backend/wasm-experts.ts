/**
 * A mixture layer's experts as a few kernels each way, for the wasm backend with a native BLAS
 * (src/backend/blas.ts). Written as tfjs ops (src/adapters/mixture.ts, expertsDelta) a module's
 * experts are ~6 products, ~4 elementwise kernels and the saved copies and clones of each on
 * the tape, plus the gates spread over every expert's r columns as an [N, E·r] upload. Here
 * the products are sgemm calls on the wasm heap and the gating is one pass over [N, E·r]:
 *
 *   forward   h = xd·A,  gated = h ⊙ scale·g (g[n, e] over expert e's r columns),  D = gated·B
 *   backward  dH = dD·Bᵀ,  dg[n, e] = scale·Σ_{j in e} dH⊙h,  dh = dH ⊙ scale·g,
 *             dxd = dh·Aᵀ,  dA = xdᵀ·dh,  dB = gatedᵀ·dD
 *
 * with xd [N, in], A [in, E·r], B [E·r, out], gates g [N, E]. Plain LoRA (one expert, gate 1) is
 * one kernel each way (EXPERTS_*). A routed mixture's routing runs on the host between its
 * kernels, so it is two each way (ROUTED_*): the products up to the router's logits l = x·Wr
 * (with A's in one product when the experts see the router's rows), then the gated products;
 * backward, dh and dg, then, given dl from the host, every input and weight gradient, with the
 * router's dl·Wrᵀ added into dx in the same product. A training step's top-k routing with router
 * losses is one kernel each way (ROUTED_TOPK_*), the routing and the losses in the SIMD module.
 *
 * Given the layer's frozen base kernel W [in, out] (and its rows x, when they are not xd), the
 * kernels also do the base: D = x·W + gated·B, with sgemm adding the experts into the base's
 * product, and dx = dD·Wᵀ (+ dh·Aᵀ, added the same way, when x is xd). That saves the add of the
 * two outputs forward and of the input gradients backward, each a pass over [N, out] or [N, in].
 * W gets no gradient: it is frozen.
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Blas } from './blas.ts';
import { offset, simdOrNull } from './wasm-simd.ts';
import { useWasmRouted } from './wasm-routed.ts';
import { fromAttrs } from './kernel-attrs.ts';

export const EXPERTS_FORWARD = 'HiloExpertsForward';
export const EXPERTS_BACKWARD = 'HiloExpertsBackward';
export const ROUTED_IN = 'HiloRoutedIn';
export const ROUTED_OUT = 'HiloRoutedOut';
export const ROUTED_GATE_GRAD = 'HiloRoutedGateGrad';
export const ROUTED_BACKWARD = 'HiloRoutedBackward';
export const ROUTED_TOPK_FORWARD = 'HiloRoutedTopKForward';
export const ROUTED_TOPK_BACKWARD = 'HiloRoutedTopKBackward';
const KERNELS = [EXPERTS_FORWARD, EXPERTS_BACKWARD, ROUTED_IN, ROUTED_OUT, ROUTED_GATE_GRAD, ROUTED_BACKWARD, ROUTED_TOPK_FORWARD, ROUTED_TOPK_BACKWARD];

export interface ExpertsAttrs {
  /** Each expert's rank r (A has E·r columns). */
  rank: number;
  /** The LoRA scale, applied with the gate. */
  scale: number;
  /** With a base W: the experts' rows are the base's (no dropout), so one dx holds both paths. */
  sameRows?: boolean;
}

type Info = TF.TensorInfo;

/**
 * out[n, j] = s·src[n, j] with s = fround(scale·g[n, ⌊j/r⌋]) (1·scale without gates), the float32
 * gate the tensor form spreads; returns nothing. `dg`, when given, gets scale·Σ_{j in e} src·h.
 */
export function gateColumns(src: Float32Array, out: Float32Array, gates: Float32Array | null, N: number, ER: number, r: number, scale: number, h?: Float32Array, dg?: Float32Array): void {
  const rows = (N * ER) / r; // (row, expert) pairs, each owning r adjacent columns
  const plain = Math.fround(scale);
  if (dg && h) {
    for (let ne = 0, o = 0; ne < rows; ne++, o += r) {
      const s = gates ? Math.fround(scale * gates[ne]) : plain;
      let acc = 0;
      for (let j = o; j < o + r; j++) {
        const v = src[j];
        acc += v * h[j];
        out[j] = s * v;
      }
      dg[ne] = scale * acc;
    }
    return;
  }
  for (let ne = 0, o = 0; ne < rows; ne++, o += r) {
    const s = gates ? Math.fround(scale * gates[ne]) : plain;
    for (let j = o; j < o + r; j++) out[j] = s * src[j];
  }
}

/** A float32 view of a tensor on the heap (take views after every allocation: the heap may grow). */
const viewOf = (wasm: BackendWasm) => (t: Info) => wasm.typedArrayFromHeap(t) as Float32Array;

/**
 * Copies a [rows, cols] block between two heap matrices of leading dimensions ldd and lds,
 * starting at column dstCol of dst and srcCol of src: blocks put side by side ([A | Wr]) and
 * taken apart again. In wasm SIMD where it can run (a JS loop over heap views is slower; docs/performance.md).
 */
function copyBlock(wasm: BackendWasm, dst: Info, ldd: number, dstCol: number, src: Info, lds: number, srcCol: number, rows: number, cols: number): void {
  const simd = simdOrNull(wasm);
  if (simd) return simd.copy_block(offset(wasm, dst) + 4 * dstCol, ldd, offset(wasm, src) + 4 * srcCol, lds, rows, cols);
  const d = viewOf(wasm)(dst);
  const s = viewOf(wasm)(src);
  for (let n = 0; n < rows; n++) for (let j = 0; j < cols; j++) d[n * ldd + dstCol + j] = s[n * lds + srcCol + j];
}

/** [a | b]: a new [rows, ca + cb] heap matrix with a's columns, then b's (the caller frees it). */
function sideBySide(wasm: BackendWasm, a: Info, b: Info): Info {
  const [rows, ca] = a.shape;
  const cb = b.shape[1];
  const ab = wasm.makeOutput([rows, ca + cb], 'float32');
  copyBlock(wasm, ab, ca + cb, 0, a, ca, 0, rows, ca);
  copyBlock(wasm, ab, ca + cb, ca, b, cb, 0, rows, cb);
  return ab;
}

/** sideBySide's inverse: ab [rows, ca + cb] into a [rows, ca] and b [rows, cb]. */
function split(wasm: BackendWasm, ab: Info, a: Info, b: Info): void {
  const [rows, ca] = a.shape;
  const cb = b.shape[1];
  copyBlock(wasm, a, ca, 0, ab, ca + cb, 0, rows, ca);
  copyBlock(wasm, b, cb, 0, ab, ca + cb, ca, rows, cb);
}

/** Plain LoRA with the base: D = x·W + scale·(xd·A)·B; the gating pass is the scale. */
function forwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: EXPERTS_FORWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { xd, A, B, x, W } = inputs as { xd: Info; A: Info; B: Info; x?: Info; W?: Info };
      const { rank, scale } = fromAttrs<ExpertsAttrs>(attrs);
      const [N, inF] = xd.shape;
      const [ER, out] = B.shape;
      const D = wasm.makeOutput([N, out], 'float32');
      const gated = wasm.makeOutput([N, ER], 'float32'); // xd·A, then scaled in place
      const view = viewOf(wasm);
      blas.sgemm(false, false, N, ER, inF, view(xd), inF, view(A), ER, view(gated), ER);
      gate(wasm, gated, gated, null, N, ER, rank, scale);
      if (W) blas.sgemm(false, false, N, out, inF, view(x ?? xd), inF, view(W), out, view(D), out); // the frozen base first
      blas.sgemm(false, false, N, out, ER, view(gated), ER, view(B), out, view(D), out, { beta: W ? 1 : 0 });
      return [D, gated];
    },
  };
}

/** out = src ⊙ scale·g per expert's r columns (in wasm SIMD where it can run, else the JS loop); with `h`, dg too. */
function gate(wasm: BackendWasm, src: Info, out: Info, gates: Info | null, N: number, ER: number, r: number, scale: number, h?: Info, dg?: Info): void {
  const simd = simdOrNull(wasm);
  const at = (t: Info) => offset(wasm, t);
  if (simd) return simd.gate_columns(at(src), ER, at(out), ER, gates ? at(gates) : 0, N, ER, r, scale, h ? at(h) : 0, dg ? at(dg) : 0);
  const view = viewOf(wasm);
  gateColumns(view(src), view(out), gates ? view(gates) : null, N, ER, r, scale, h ? view(h) : undefined, dg ? view(dg) : undefined);
}

function backwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: EXPERTS_BACKWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { dD, xd, A, B, gated, W } = inputs as { dD: Info; xd: Info; A: Info; B: Info; gated: Info; W?: Info };
      const { rank, scale, sameRows } = fromAttrs<ExpertsAttrs>(attrs);
      const [N, inF] = xd.shape;
      const [ER, out] = B.shape;
      const dx = W ? wasm.makeOutput([N, inF], 'float32') : null; // the base's rows
      const dxd = dx && sameRows ? dx : wasm.makeOutput([N, inF], 'float32');
      const dA = wasm.makeOutput([inF, ER], 'float32');
      const dB = wasm.makeOutput([ER, out], 'float32');
      const dh = wasm.makeOutput([N, ER], 'float32'); // dD·Bᵀ, then scaled in place
      const view = viewOf(wasm);
      blas.sgemm(false, true, N, ER, out, view(dD), out, view(B), out, view(dh), ER);
      gate(wasm, dh, dh, null, N, ER, rank, scale);
      if (W) blas.sgemm(false, true, N, inF, out, view(dD), out, view(W), out, view(dx!), inF);
      blas.sgemm(false, true, N, inF, ER, view(dh), ER, view(A), ER, view(dxd), inF, { beta: dxd === dx ? 1 : 0 });
      blas.sgemm(true, false, inF, ER, N, view(xd), inF, view(dh), ER, view(dA), ER);
      blas.sgemm(true, false, ER, out, N, view(gated), ER, view(dD), out, view(dB), out);
      wasm.disposeData(dh.dataId);
      return [...(dx ? [dx] : []), ...(dxd === dx ? [] : [dxd]), dA, dB];
    },
  };
}

/**
 * A routed mixture's products, before the routing: h = xd·A [N, E·r] and the router's logits
 * l = x·Wr [N, E]. When the experts see the router's rows (`xd` not given) both come out of one
 * product with [A | Wr] side by side: the router costs E more columns, not a pass of its own.
 */
function routedInKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_IN,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { x, A, Wr, xd } = inputs as { x: Info; A: Info; Wr: Info; xd?: Info };
      const [N, inF] = x.shape;
      const ER = A.shape[1];
      const E = Wr.shape[1];
      const h = wasm.makeOutput([N, ER], 'float32');
      const logits = wasm.makeOutput([N, E], 'float32');
      const view = viewOf(wasm);
      if (!xd) {
        const C = ER + E;
        const aw = sideBySide(wasm, A, Wr);
        const hl = wasm.makeOutput([N, C], 'float32');
        blas.sgemm(false, false, N, C, inF, view(x), inF, view(aw), C, view(hl), C);
        split(wasm, hl, h, logits);
        wasm.disposeData(aw.dataId);
        wasm.disposeData(hl.dataId);
        return [h, logits];
      }
      blas.sgemm(false, false, N, ER, inF, view(xd), inF, view(A), ER, view(h), ER);
      const simd = simdOrNull(wasm);
      if (simd) simd.narrow_mm(offset(wasm, x), offset(wasm, Wr), N, inF, E, offset(wasm, logits), E);
      else blas.sgemm(false, false, N, E, inF, view(x), inF, view(Wr), E, view(logits), E);
      return [h, logits];
    },
  };
}

/** gated = h ⊙ scale·g (g [N, E] the routed gates), D = x·W + gated·B (no W: gated·B). */
function routedOutKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_OUT,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { h, gates, B, x, W } = inputs as { h: Info; gates: Info; B: Info; x?: Info; W?: Info };
      const { rank, scale } = fromAttrs<ExpertsAttrs>(attrs);
      const [N, ER] = h.shape;
      const out = B.shape[1];
      const gated = wasm.makeOutput([N, ER], 'float32');
      const D = wasm.makeOutput([N, out], 'float32');
      gate(wasm, h, gated, gates, N, ER, rank, scale);
      const view = viewOf(wasm);
      if (W) blas.sgemm(false, false, N, out, x!.shape[1], view(x!), x!.shape[1], view(W), out, view(D), out);
      blas.sgemm(false, false, N, out, ER, view(gated), ER, view(B), out, view(D), out, { beta: W ? 1 : 0 });
      return [D, gated];
    },
  };
}

/** dH = dD·Bᵀ; dh = dH ⊙ scale·g and dg[n, e] = scale·Σ_{j in e} dH⊙h: what the routing's gradient needs. */
function routedGateGradKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_GATE_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { dD, B, h, gates } = inputs as { dD: Info; B: Info; h: Info; gates: Info };
      const { rank, scale } = fromAttrs<ExpertsAttrs>(attrs);
      const [N, ER] = h.shape;
      const out = B.shape[1];
      const dh = wasm.makeOutput([N, ER], 'float32');
      const dg = wasm.makeOutput(gates.shape, 'float32');
      const view = viewOf(wasm);
      blas.sgemm(false, true, N, ER, out, view(dD), out, view(B), out, view(dh), ER);
      gate(wasm, dh, dh, gates, N, ER, rank, scale, h, dg);
      return [dh, dg];
    },
  };
}

/**
 * The routed mixture's input and weight gradients, given dh and the logits' gradient dl:
 *   dx = dD·Wᵀ + dh·Aᵀ + dl·Wrᵀ (one product with [dh | dl] and [A | Wr] when x is xd; with
 *   `xd`, dxd = dh·Aᵀ is its own output), dA = xdᵀ·dh, dWr = xᵀ·dl, dB = gatedᵀ·dD.
 * Outputs: dx, dxd (with `xd`), dA, dB, dWr.
 */
function routedBackwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_BACKWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { dh, dl, ...rest } = inputs as Record<string, Info>;
      const dhl = sideBySide(wasm, dh, dl);
      const grads = routedGrads(wasm, blas, dhl, rest as unknown as RoutedTensors);
      wasm.disposeData(dhl.dataId);
      return grads;
    },
  };
}

/** The tensors a routed mixture's backward products read besides [dh | dl]. */
interface RoutedTensors {
  dD: Info; x: Info; A: Info; B: Info; Wr: Info; gated: Info; xd?: Info; W?: Info;
}

/** N, in, E·r, E, out of a routed mixture, and C = E·r + E, the width of [h | l]. */
function routedShapes(x: Info, A: Info, Wr: Info, B: Info) {
  const [N, inF] = x.shape;
  const ER = A.shape[1];
  const E = Wr.shape[1];
  return { N, inF, ER, E, C: ER + E, out: B.shape[1] };
}

/**
 * ROUTED_BACKWARD's products, from dhl = [dh | dl] [N, E·r + E]: dx = dD·Wᵀ + [dh | dl]·[A | Wr]ᵀ
 * (with `xd`: dx = dD·Wᵀ + dl·Wrᵀ and dxd = dh·Aᵀ), [dA | dWr] = xᵀ·[dh | dl] (with `xd`:
 * dA = xdᵀ·dh, dWr = xᵀ·dl), dB = gatedᵀ·dD. Returns dx, dxd (with xd), dA, dB, dWr.
 */
function routedGrads(wasm: BackendWasm, blas: Blas, dhl: Info, t: RoutedTensors): Info[] {
  const { dD, x, A, B, Wr, gated, xd, W } = t;
  const { N, inF, ER, E, C, out } = routedShapes(x, A, Wr, B);
  const dx = wasm.makeOutput([N, inF], 'float32');
  const dxd = xd ? wasm.makeOutput([N, inF], 'float32') : null;
  const dA = wasm.makeOutput([inF, ER], 'float32');
  const dB = wasm.makeOutput([ER, out], 'float32');
  const dWr = wasm.makeOutput([inF, E], 'float32');
  const view = viewOf(wasm);
  if (W) blas.sgemm(false, true, N, inF, out, view(dD), out, view(W), out, view(dx), inF);
  const beta = W ? 1 : 0;
  if (!xd) {
    const aw = sideBySide(wasm, A, Wr); // packed again, not kept from the forward: [in, E·r + E], tens of KB
    const daw = wasm.makeOutput([inF, C], 'float32');
    blas.sgemm(false, true, N, inF, C, view(dhl), C, view(aw), C, view(dx), inF, { beta });
    blas.sgemm(true, false, inF, C, N, view(x), inF, view(dhl), C, view(daw), C);
    split(wasm, daw, dA, dWr);
    for (const s of [aw, daw]) wasm.disposeData(s.dataId);
  } else {
    const dl = view(dhl).subarray(ER); // the [N, E] block, rows C apart
    blas.sgemm(false, true, N, inF, E, dl, C, view(Wr), E, view(dx), inF, { beta });
    blas.sgemm(false, true, N, inF, ER, view(dhl), C, view(A), ER, view(dxd!), inF);
    blas.sgemm(true, false, inF, ER, N, view(xd), inF, view(dhl), C, view(dA), ER);
    const simd = simdOrNull(wasm);
    if (simd) simd.narrow_mm_tn(offset(wasm, x), offset(wasm, dhl) + 4 * ER, C, N, inF, E, offset(wasm, dWr));
    else blas.sgemm(true, false, inF, E, N, view(x), inF, dl, C, view(dWr), E);
  }
  blas.sgemm(true, false, ER, out, N, view(gated), ER, view(dD), out, view(dB), out);
  return [dx, ...(dxd ? [dxd] : []), dA, dB, dWr];
}

/** The router losses' weights, and the top-k (forward) or the losses' upstream gradient (backward). */
export interface RoutedTopKAttrs extends ExpertsAttrs {
  k: number;
  balanceCoef: number;
  zLossCoef: number;
  /** Backward: the gradient reaching the losses' value. */
  dy?: number;
}

/**
 * Where the routing's rows lie in the `route` buffer a top-k kernel hands out: p, m, gates [N, E]
 * and total [N] one after the other, so the backward gets them as one saved tensor. The parts
 * are byte offsets (added to the buffer's heap pointer); `size` is in floats.
 */
const routeParts = (N: number, E: number) => ({ p: 0, m: 4 * N * E, gates: 8 * N * E, total: 12 * N * E, size: N * (3 * E + 1) });

/** Whether the SIMD module's one-pass routing (routed_forward4 / routed_backward4) fits: 4 experts of a rank that is a multiple of 4. */
const fourExpertPass = (E: number, rank: number) => E === 4 && rank % 4 === 0;

/**
 * A training step's routed mixture with top-k routing and its router losses, as one kernel each
 * way: its callers check that the SIMD module runs too (hasSimdKernel). Against ROUTED_IN, the host routing and
 * ROUTED_OUT it keeps [h | l] as the one matrix the product makes (the routing and the gating
 * read it in place, where the others split it), computes the router losses' statistics in the
 * SIMD module, and makes a third of the tensors; the backward writes dh and dl side by side
 * straight into the [dh | dl] its products take, the losses' gradient included.
 *   forward   hl = x·[A | Wr] (or xd·A and x·Wr into the two blocks); route = top-k of l;
 *             stats = f [E], the losses' value, W; gated = h ⊙ scale·g; D = x·W + gated·B
 *   backward  dh = (dD·Bᵀ) ⊙ scale·g, dg; dl = the routing's gradient + dy·the losses'; then
 *             ROUTED_BACKWARD's products on [dh | dl]
 * Outputs: forward D, gated, hl, route, stats, and the losses' value as a scalar; backward dx,
 * dxd (with xd), dA, dB, dWr.
 */
function routedTopKForwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_TOPK_FORWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const simd = simdOrNull(wasm)!;
      const { x, A, Wr, B, xd, W, tokens } = inputs as Record<string, Info> & { xd?: Info; W?: Info; tokens?: Info };
      const { rank, scale, k, balanceCoef, zLossCoef } = fromAttrs<RoutedTopKAttrs>(attrs);
      const { N, inF, ER, E, C, out } = routedShapes(x, A, Wr, B);
      const at = (t: Info) => offset(wasm, t);
      const hl = wasm.makeOutput([N, C], 'float32');
      const route = wasm.makeOutput([routeParts(N, E).size], 'float32');
      const stats = wasm.makeOutput([E + 2], 'float32');
      const work = wasm.makeOutput([4 * E], 'float32'); // 2E doubles of scratch
      const gated = wasm.makeOutput([N, ER], 'float32');
      const D = wasm.makeOutput([N, out], 'float32');
      const aux = wasm.makeOutput([], 'float32');
      const view = viewOf(wasm);
      if (!xd) {
        const aw = sideBySide(wasm, A, Wr);
        blas.sgemm(false, false, N, C, inF, view(x), inF, view(aw), C, view(hl), C);
        wasm.disposeData(aw.dataId);
      } else {
        blas.sgemm(false, false, N, ER, inF, view(xd), inF, view(A), ER, view(hl), C);
        simd.narrow_mm(at(x), at(Wr), N, inF, E, at(hl) + 4 * ER, C);
      }
      const r = routeParts(N, E);
      const rt = at(route);
      const w = tokens ? at(tokens) : 0;
      if (fourExpertPass(E, rank)) {
        // hilo's MoE width: the three passes below as one (the same bits)
        simd.routed_forward4(at(hl), C, N, rank, k, scale, at(gated), rt + r.p, rt + r.m, rt + r.gates, rt + r.total, w, balanceCoef, zLossCoef, at(work), at(stats));
      } else {
        const l = at(hl) + 4 * ER;
        simd.route_topk(l, C, N, E, k, rt + r.p, rt + r.m, rt + r.gates, rt + r.total);
        simd.router_aux_stats(l, C, rt + r.m, rt + r.p, w, N, E, balanceCoef, zLossCoef, at(work), at(stats));
        simd.gate_columns(at(hl), C, at(gated), ER, rt + r.gates, N, ER, rank, scale, 0, 0);
      }
      wasm.disposeData(work.dataId);
      view(aux)[0] = view(stats)[E]; // the losses' value as a scalar of its own: the op's second output
      if (W) blas.sgemm(false, false, N, out, inF, view(x), inF, view(W), out, view(D), out);
      blas.sgemm(false, false, N, out, ER, view(gated), ER, view(B), out, view(D), out, { beta: W ? 1 : 0 });
      return [D, gated, hl, route, stats, aux];
    },
  };
}

function routedTopKBackwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: ROUTED_TOPK_BACKWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const simd = simdOrNull(wasm)!;
      const { hl, route, stats, tokens, ...rest } = inputs as Record<string, Info> & { tokens?: Info };
      const t = rest as unknown as RoutedTensors;
      const { rank, scale, balanceCoef, zLossCoef, dy } = fromAttrs<RoutedTopKAttrs>(attrs);
      const { N, ER, E, C, out } = routedShapes(t.x, t.A, t.Wr, t.B);
      const at = (i: Info) => offset(wasm, i);
      const dhl = wasm.makeOutput([N, C], 'float32');
      const r = routeParts(N, E);
      const rt = at(route);
      const w = tokens ? at(tokens) : 0;
      const view = viewOf(wasm);
      blas.sgemm(false, true, N, ER, out, view(t.dD), out, view(t.B), out, view(dhl), C);
      if (fourExpertPass(E, rank)) {
        simd.routed_backward4(at(dhl), C, at(hl), N, rank, scale, rt + r.p, rt + r.m, rt + r.gates, rt + r.total, w, at(stats), balanceCoef, zLossCoef, dy ?? 0);
      } else {
        const dg = wasm.makeOutput([N, E], 'float32');
        simd.gate_columns(at(dhl), C, at(dhl), C, rt + r.gates, N, ER, rank, scale, at(hl), at(dg));
        const dl = at(dhl) + 4 * ER;
        simd.gates_grad(at(dg), rt + r.p, rt + r.gates, rt + r.m, rt + r.total, 0, N, E, dl, C);
        if (dy) simd.router_aux_grad(dl, C, at(hl) + 4 * ER, C, rt + r.p, w, at(stats), N, E, balanceCoef, zLossCoef, dy);
        wasm.disposeData(dg.dataId);
      }
      const grads = routedGrads(wasm, blas, dhl, t);
      wasm.disposeData(dhl.dataId);
      return grads;
    },
  };
}

/**
 * Register the kernels for wasm, and the routed-experts op that runs them (wasm-routed.ts)
 * (initBackend does, where a native BLAS loaded), or remove both (`on` false: tests compare
 * against the tensor form). Idempotent.
 */
export function useWasmExperts(tf: typeof TF, on: boolean, blas: Blas | null): void {
  for (const name of KERNELS) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  if (on && blas) {
    const all = [forwardKernel, backwardKernel, routedInKernel, routedOutKernel, routedGateGradKernel, routedBackwardKernel, routedTopKForwardKernel, routedTopKBackwardKernel];
    for (const make of all) tf.registerKernel(make(blas));
  }
  useWasmRouted(on && blas !== null);
}

/** Whether the active backend has the fused experts kernels. */
export const hasFusedExperts = (tf: typeof TF): boolean => tf.getKernel(EXPERTS_FORWARD, tf.getBackend()) !== undefined;

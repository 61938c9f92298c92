/**
 * A mixture layer's experts as one kernel each way, for the wasm backend with a native BLAS
 * (src/backend/blas.ts). Written as tfjs ops (src/adapters/mixture.ts, expertsDelta) a module's
 * experts are ~6 products, ~4 elementwise kernels and the saved copies and clones of each on
 * the tape, plus the gates spread over every expert's r columns as an [N, E·r] upload. Here
 * the products are sgemm calls on the wasm heap and the gating is a loop over [N, E·r]:
 *
 *   forward   h = xd·A,  gated = h ⊙ scale·g (g[n, e] over expert e's r columns),  D = gated·B
 *   backward  dH = dD·Bᵀ,  dg[n, e] = scale·Σ_{j in e} dH⊙h,  dh = dH ⊙ scale·g,
 *             dxd = dh·Aᵀ,  dA = xdᵀ·dh,  dB = gatedᵀ·dD
 *
 * with xd [N, in], A [in, E·r], B [E·r, out], gates g [N, E]. Without a `gates` input the layer
 * is plain LoRA: one expert whose gate is 1, and no dg.
 *
 * Given the layer's frozen base kernel W [in, out] (and its rows x, when they are not xd), the
 * kernels also do the base: D = x·W + gated·B, with sgemm adding the experts into the base's
 * product, and dx = dD·Wᵀ (+ dh·Aᵀ, added the same way, when x is xd). That saves the add of the
 * two outputs forward and of the two input gradients backward, each a pass over [N, out] or
 * [N, in]. W gets no gradient: it is frozen. Backward outputs, in order: dx (with W), dxd (unless
 * it is dx), dA, dB, dg (with gates).
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { Blas } from './blas.ts';
import { offset, simdOrNull } from './wasm-simd.ts';

export const EXPERTS_FORWARD = 'HiloExpertsForward';
export const EXPERTS_BACKWARD = 'HiloExpertsBackward';

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

function forwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: EXPERTS_FORWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { xd, A, B, gates, x, W } = inputs as { xd: Info; A: Info; B: Info; gates?: Info; x?: Info; W?: Info };
      const { rank, scale } = attrs as unknown as ExpertsAttrs;
      const [N, inF] = xd.shape;
      const [ER, out] = B.shape;
      const D = wasm.makeOutput([N, out], 'float32');
      const h = wasm.makeOutput([N, ER], 'float32');
      const gated = wasm.makeOutput([N, ER], 'float32');
      // Views after the allocations: malloc may grow wasm memory and detach older views.
      const view = (t: Info) => wasm.typedArrayFromHeap(t) as Float32Array;
      const H = view(h);
      const Gd = view(gated);
      const Dv = view(D);
      blas.sgemm(false, false, N, ER, inF, view(xd), inF, view(A), ER, H, ER);
      const simd = simdOrNull(wasm); // the gating in wasm SIMD where it can run, else the JS loop
      if (simd) simd.gate_columns(offset(wasm, h), offset(wasm, gated), gates ? offset(wasm, gates) : 0, N, ER, rank, scale, 0, 0);
      else gateColumns(H, Gd, gates ? view(gates) : null, N, ER, rank, scale);
      if (W) blas.sgemm(false, false, N, out, inF, view(x ?? xd), inF, view(W), out, Dv, out); // the frozen base first
      blas.sgemm(false, false, N, out, ER, Gd, ER, view(B), out, Dv, out, { beta: W ? 1 : 0 });
      return [D, h, gated];
    },
  };
}

function backwardKernel(blas: Blas): TF.KernelConfig {
  return {
    kernelName: EXPERTS_BACKWARD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { dD, xd, A, B, h, gated, gates, W } = inputs as { dD: Info; xd: Info; A: Info; B: Info; h: Info; gated: Info; gates?: Info; W?: Info };
      const { rank, scale, sameRows } = attrs as unknown as ExpertsAttrs;
      const [N, inF] = xd.shape;
      const [ER, out] = B.shape;
      const dx = W ? wasm.makeOutput([N, inF], 'float32') : null; // the base's rows
      const dxd = dx && sameRows ? dx : wasm.makeOutput([N, inF], 'float32');
      const dA = wasm.makeOutput([inF, ER], 'float32');
      const dB = wasm.makeOutput([ER, out], 'float32');
      const dg = gates ? wasm.makeOutput(gates.shape, 'float32') : null;
      const view = (t: Info) => wasm.typedArrayFromHeap(t) as Float32Array;
      const simd = simdOrNull(wasm);
      const scratch = simd ? wasm.makeOutput([N, ER], 'float32') : null; // dH in the heap, for the SIMD gating
      const dDv = view(dD);
      const dH = scratch ? view(scratch) : new Float32Array(N * ER); // dD·Bᵀ, then dh in place
      blas.sgemm(false, true, N, ER, out, dDv, out, view(B), out, dH, ER);
      if (simd) {
        const at = (t: Info) => offset(wasm, t);
        simd.gate_columns(at(scratch!), at(scratch!), gates ? at(gates) : 0, N, ER, rank, scale, at(h), dg ? at(dg) : 0);
      } else {
        gateColumns(dH, dH, gates ? view(gates) : null, N, ER, rank, scale, view(h), dg ? view(dg) : undefined);
      }
      if (W) blas.sgemm(false, true, N, inF, out, dDv, out, view(W), out, view(dx!), inF);
      blas.sgemm(false, true, N, inF, ER, dH, ER, view(A), ER, view(dxd), inF, { beta: dxd === dx ? 1 : 0 });
      blas.sgemm(true, false, inF, ER, N, view(xd), inF, dH, ER, view(dA), ER);
      blas.sgemm(true, false, ER, out, N, view(gated), ER, dDv, out, view(dB), out);
      if (scratch) wasm.disposeData(scratch.dataId);
      return [...(dx ? [dx] : []), ...(dxd === dx ? [] : [dxd]), dA, dB, ...(dg ? [dg] : [])];
    },
  };
}

/**
 * Register the two kernels for wasm (initBackend does, where a native BLAS loaded), or remove
 * them (`on` false: tests compare against the tensor form). Idempotent.
 */
export function useWasmExperts(tf: typeof TF, on: boolean, blas: Blas | null): void {
  for (const name of [EXPERTS_FORWARD, EXPERTS_BACKWARD]) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  if (on && blas) {
    tf.registerKernel(forwardKernel(blas));
    tf.registerKernel(backwardKernel(blas));
  }
}

/** Whether the active backend has the fused experts kernels. */
export const hasFusedExperts = (tf: typeof TF): boolean => tf.getKernel(EXPERTS_FORWARD, tf.getBackend()) !== undefined;

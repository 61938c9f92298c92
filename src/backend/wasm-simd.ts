/**
 * Fused kernels for the wasm backend from hilo's own wasm SIMD module (src/backend/simd/
 * kernels.c, built into the committed kernels.wasm by scripts/build-simd.sh). The module imports
 * tfjs-backend-wasm's memory, so it reads and writes tensors where they lie, as the native BLAS
 * does (src/backend/blas.ts). Inside a training step the element-wise tfjs kernels each stream
 * whole tensors through memory; one pass that does a chain of them at once moves a fraction of
 * the bytes, and with data-parallel replicas on every core memory is what they share.
 *
 *   HiloSoftmaxXent      logits [N, V], targets [N] (int32, < 0: not counted) -> nll [N], lse [N]
 *                        ({keep: 1}: also the exps e [N, V] and 1/Σ e [N], for the backward)
 *   HiloSoftmaxXentGrad  dy [N], logits, lse, targets (or e, inv, targets) -> dlogits [N, V] =
 *                        dy·(softmax - onehot)
 *   HiloSwiGLU           g, u [N, I] -> h = silu(g)·u;  HiloSwiGLUGrad  dh, g, u -> dg, du
 *   HiloAttnSoftmax      s [B, H, Tq, Tk], mask [B or 1, 1, Tq, Tk], {scale} -> p = softmax(scale·s + mask)
 *   HiloAttnSoftmaxGrad  dp, p, {scale} -> ds = scale·p⊙(dp − Σ dp⊙p)
 *   HiloRmsNormSimd      x [N, H], w [H], {eps} -> y, r [N];  ...Grad  dy, x, w, r -> dx (w frozen)
 *   HiloLayerNorm        x [N, H], w, b [H], {eps} -> y, mean [N], r [N];  ...Grad  dy, x, w, mean, r -> dx, dw, db
 *   HiloRope             x [B, T, heads, d], cos, sinRot [T or B·T, d], {back} -> y (or dx from dy)
 *   HiloNarrowMatMul     x [N, K], w [K, E] -> x·w;  ...GradW  x, d [N, E] -> xᵀ·d;  ...GradX  d, w -> d·wᵀ
 *                        (a router's logits and gradients: E is a few experts, which OpenBLAS
 *                        handles by packing all of x each time)
 *   HiloRouteTopK, HiloRouteGatesGradSimd  a routed mixture's top-k routing and its gradient
 *   HiloAdamW            p, g, m, v, {beta1, beta2, eps, decay, stepSize, sqrtBc2, gradScale} -> p', m', v'
 *   HiloSumSquares       x -> Σ x² (summed in double): the gradient clip's norm
 *                        (the optimizer's two, under the names webgpu-adamw.ts gives them on the
 *                        GPU: with data-parallel replicas they run on one thread while the
 *                        others wait, and as JS loops they took about three times as long)
 *
 * Only for a single-threaded wasm backend: the threaded build's memory is shared, which a module
 * built without atomics cannot import (its products then stay tfjs's, as before).
 */
import fs from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { referenceRouterLogits, routerLogitsOp, type RouterLogitsImpl } from '../ops/router-logits.ts';
import { ADAMW_KERNEL, SUM_SQUARES_KERNEL, type AdamWKernelAttrs } from './webgpu-adamw.ts';
import { registerSimdOps } from './wasm-ops.ts';

export const SOFTMAX_XENT = 'HiloSoftmaxXent';
export const SOFTMAX_XENT_GRAD = 'HiloSoftmaxXentGrad';
export const SWIGLU = 'HiloSwiGLU';
export const SWIGLU_GRAD = 'HiloSwiGLUGrad';
export const ATTN_SOFTMAX = 'HiloAttnSoftmax';
export const ATTN_SOFTMAX_GRAD = 'HiloAttnSoftmaxGrad';
export const RMS_NORM_SIMD = 'HiloRmsNormSimd';
export const RMS_NORM_SIMD_GRAD = 'HiloRmsNormSimdGrad';
export const LAYER_NORM = 'HiloLayerNorm';
export const LAYER_NORM_GRAD = 'HiloLayerNormGrad';
export const ROPE = 'HiloRope';
export const NARROW_MATMUL = 'HiloNarrowMatMul';
export const NARROW_MATMUL_GRAD_W = 'HiloNarrowMatMulGradW';
export const NARROW_MATMUL_GRAD_X = 'HiloNarrowMatMulGradX';
export const ROUTE_TOPK = 'HiloRouteTopK';
export const ROUTE_GATES_GRAD_SIMD = 'HiloRouteGatesGradSimd';
const KERNELS = [
  SOFTMAX_XENT, SOFTMAX_XENT_GRAD, SWIGLU, SWIGLU_GRAD, ATTN_SOFTMAX, ATTN_SOFTMAX_GRAD, RMS_NORM_SIMD, RMS_NORM_SIMD_GRAD, LAYER_NORM, LAYER_NORM_GRAD, ROPE,
  NARROW_MATMUL, NARROW_MATMUL_GRAD_W, NARROW_MATMUL_GRAD_X, ROUTE_TOPK, ROUTE_GATES_GRAD_SIMD, ADAMW_KERNEL, SUM_SQUARES_KERNEL,
] as const;

/** The module's exports (pointers are byte offsets in tfjs's heap). */
export interface SimdExports {
  xent_stats(logits: number, n: number, v: number, rowMax: number, rowSum: number, e: number): void;
  xent_grad(logits: number, lse: number, target: number, g: number, n: number, v: number, d: number): void;
  xent_grad_kept(e: number, inv: number, target: number, g: number, n: number, v: number, d: number): void;
  xent_grad_block(logits: number, lse: number, target: number, g: number, n: number, v: number, d: number): void;
  swiglu(g: number, u: number, n: number, h: number): void;
  swiglu_grad(dh: number, g: number, u: number, n: number, dg: number, du: number): void;
  attn_softmax(s: number, mask: number, batch: number, heads: number, q: number, k: number, maskPerBatch: number, scale: number, p: number): void;
  attn_softmax_grad(dp: number, p: number, rows: number, k: number, scale: number, ds: number): void;
  rms_norm(x: number, w: number, n: number, h: number, eps: number, y: number, r: number): void;
  rms_norm_grad(dy: number, x: number, w: number, r: number, n: number, h: number, dx: number): void;
  layer_norm(x: number, w: number, b: number, n: number, h: number, eps: number, y: number, mean: number, r: number): void;
  layer_norm_grad(dy: number, x: number, w: number, mean: number, r: number, n: number, h: number, dx: number, dw: number, db: number): void;
  rope(x: number, cos: number, sinRot: number, batch: number, t: number, heads: number, d: number, perBatch: number, back: number, y: number): void;
  narrow_mm(x: number, w: number, n: number, k: number, e: number, out: number, ldo: number): void;
  narrow_mm_tn(x: number, d: number, ldd: number, n: number, k: number, e: number, dw: number): void;
  narrow_mm_nt(d: number, wT: number, n: number, k: number, e: number, dx: number): void;
  gate_columns(src: number, lds: number, out: number, ldo: number, gates: number, rows: number, er: number, r: number, scale: number, h: number, dg: number): void;
  copy_block(dst: number, ldd: number, src: number, lds: number, rows: number, cols: number): void;
  widen_bf16(src: number, dst: number, n: number): void;
  route_topk(l: number, ldl: number, n: number, e: number, k: number, p: number, m: number, gates: number, total: number): void;
  gates_grad(dg: number, p: number, gates: number, m: number, total: number, extra: number, n: number, e: number, dl: number, ldl: number): void;
  router_aux_stats(l: number, ldl: number, m: number, p: number, w: number, n: number, e: number, cb: number, cz: number, work: number, out: number): void;
  router_aux_grad(dl: number, ldd: number, l: number, ldl: number, p: number, w: number, stats: number, n: number, e: number, cb: number, cz: number, dy: number): void;
  routed_forward4(hl: number, C: number, n: number, r: number, k: number, scale: number, gated: number, p: number, m: number, gates: number, total: number, w: number, cb: number, cz: number, work: number, stats: number): void;
  routed_backward4(dhl: number, C: number, hl: number, n: number, r: number, scale: number, p: number, m: number, gates: number, total: number, w: number, stats: number, cb: number, cz: number, dy: number): void;
  adamw(p: number, g: number, m: number, v: number, n: number, b1: number, b2: number, eps: number, decay: number, stepSize: number, sqrtBc2: number, s: number, p1: number, m1: number, v1: number): void;
  sum_squares(x: number, n: number): number;
}

const WASM_FILE = new URL('./simd/kernels.wasm', import.meta.url);
let compiled: WebAssembly.Module | null = null;
/** One instance per backend (per wasm memory). */
const instances = new WeakMap<WebAssembly.Memory, SimdExports>();

/** tfjs-backend-wasm's memory object, which its Emscripten module exports (tfjs 4.22); undefined elsewhere. */
function exportedMemory(backend: object): WebAssembly.Memory | undefined {
  const memory = (backend as { wasm?: { asm?: { memory?: unknown } } }).wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/** Whether the module can import `backend`'s memory: not the threaded build's, which is shared. */
export function memoryImportable(backend: object): boolean {
  const memory = exportedMemory(backend);
  return memory !== undefined && !(memory.buffer instanceof SharedArrayBuffer);
}

function memoryOf(backend: BackendWasm): WebAssembly.Memory {
  const memory = exportedMemory(backend);
  if (!memory) throw new Error('tfjs-backend-wasm does not export its memory (hilo needs tfjs 4.22)');
  return memory;
}

/** The module instantiated on `backend`'s memory. */
export function simdFor(backend: BackendWasm): SimdExports {
  const memory = memoryOf(backend);
  let inst = instances.get(memory);
  if (!inst) {
    compiled ??= new WebAssembly.Module(fs.readFileSync(WASM_FILE));
    inst = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdExports;
    instances.set(memory, inst);
  }
  return inst;
}

/** Off while useSimdKernels(tf, false) holds: the other kernels' SIMD parts step back too. */
let enabled = true;

/**
 * The module on `backend`'s memory, or null where it cannot import it (the threaded build's
 * shared memory) or the SIMD kernels are switched off: callers then run their JS loops.
 */
export function simdOrNull(backend: BackendWasm): SimdExports | null {
  if (!enabled) return null;
  return memoryImportable(backend) ? simdFor(backend) : null;
}

type Info = TF.TensorInfo;
/** A tensor's byte offset in the wasm heap: the pointer the module's functions take. */
export const offset = (backend: BackendWasm, t: Info): number =>
  (backend as unknown as { dataIdMap: { get(id: unknown): { memoryOffset: number } } }).dataIdMap.get(t.dataId).memoryOffset;

function softmaxXent(): TF.KernelConfig {
  return {
    kernelName: SOFTMAX_XENT,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const { logits, targets } = inputs as { logits: Info; targets: Info };
      const keep = Boolean((attrs as { keep?: number } | undefined)?.keep);
      const [N, V] = logits.shape;
      const nll = wasm.makeOutput([N], 'float32');
      const lse = wasm.makeOutput([N], 'float32');
      const e = keep ? wasm.makeOutput([N, V], 'float32') : null;
      const inv = keep ? wasm.makeOutput([N], 'float32') : null;
      simdFor(wasm).xent_stats(offset(wasm, logits), N, V, offset(wasm, nll), offset(wasm, lse), e ? offset(wasm, e) : 0); // row max, Σ exp
      const l = wasm.typedArrayFromHeap(logits) as Float32Array;
      const y = wasm.typedArrayFromHeap(targets) as Int32Array;
      const out = wasm.typedArrayFromHeap(nll) as Float32Array;
      const lv = wasm.typedArrayFromHeap(lse) as Float32Array;
      const iv = inv ? (wasm.typedArrayFromHeap(inv) as Float32Array) : null;
      for (let i = 0; i < N; i++) {
        if (iv) iv[i] = 1 / lv[i];
        lv[i] = out[i] + Math.log(lv[i]);
        out[i] = y[i] < 0 ? 0 : lv[i] - l[i * V + y[i]];
      }
      return e && inv ? [nll, lse, e, inv] : [nll, lse];
    },
  };
}

function softmaxXentGrad(): TF.KernelConfig {
  return {
    kernelName: SOFTMAX_XENT_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { dy, logits, lse, targets, e, inv } = inputs as { dy: Info; logits?: Info; lse?: Info; targets: Info; e?: Info; inv?: Info };
      const [N, V] = (e ?? logits!).shape;
      const d = wasm.makeOutput([N, V], 'float32');
      const at = (t: Info) => offset(wasm, t);
      if (e && inv) simdFor(wasm).xent_grad_kept(at(e), at(inv), at(targets), at(dy), N, V, at(d));
      else simdFor(wasm).xent_grad(at(logits!), at(lse!), at(targets), at(dy), N, V, at(d));
      return d;
    },
  };
}

/**
 * A kernel whose outputs are made first (`outputs`), then filled by `run` with every tensor's
 * heap offset: inputs by name, outputs in order (offsets after all allocations). `run` may free
 * a scratch output and return the ones to hand out.
 */
function simdKernel(
  kernelName: string, outputs: (inputs: Record<string, Info>) => number[][],
  run: (simd: SimdExports, at: (t: Info) => number, inputs: Record<string, Info>, outs: Info[], attrs: Record<string, number>, wasm: BackendWasm) => Info[] | void,
): TF.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const ins = inputs as Record<string, Info>;
      const outs = outputs(ins).map((shape) => wasm.makeOutput(shape, 'float32'));
      const handed = run(simdFor(wasm), (t) => offset(wasm, t), ins, outs, (attrs ?? {}) as Record<string, number>, wasm) ?? outs;
      return handed.length === 1 ? handed[0] : handed;
    },
  };
}

const size = (t: Info) => t.shape.reduce((a, b) => a * b, 1);

const ELEMENTWISE: TF.KernelConfig[] = [
  simdKernel(SWIGLU, ({ g }) => [g.shape], (k, at, { g, u }, [h]) => k.swiglu(at(g), at(u), size(g), at(h))),
  simdKernel(SWIGLU_GRAD, ({ g }) => [g.shape, g.shape], (k, at, { dh, g, u }, [dg, du]) => k.swiglu_grad(at(dh), at(g), at(u), size(g), at(dg), at(du))),
  simdKernel(ATTN_SOFTMAX, ({ s }) => [s.shape], (k, at, { s, mask }, [p], { scale }) => {
    const [B, H, Tq, Tk] = s.shape;
    k.attn_softmax(at(s), at(mask), B, H, Tq, Tk, mask.shape[0] === 1 ? 0 : 1, scale, at(p));
  }),
  simdKernel(ATTN_SOFTMAX_GRAD, ({ p }) => [p.shape], (k, at, { dp, p }, [ds], { scale }) => {
    const Tk = p.shape[p.shape.length - 1];
    k.attn_softmax_grad(at(dp), at(p), size(p) / Tk, Tk, scale, at(ds));
  }),
  simdKernel(RMS_NORM_SIMD, ({ x }) => [x.shape, [x.shape[0]]], (k, at, { x, w }, [y, r], { eps }) =>
    k.rms_norm(at(x), at(w), x.shape[0], x.shape[1], eps, at(y), at(r))),
  simdKernel(RMS_NORM_SIMD_GRAD, ({ x }) => [x.shape], (k, at, { dy, x, w, r }, [dx]) => k.rms_norm_grad(at(dy), at(x), at(w), at(r), x.shape[0], x.shape[1], at(dx))),
  simdKernel(LAYER_NORM, ({ x }) => [x.shape, [x.shape[0]], [x.shape[0]]], (k, at, { x, w, b }, [y, mean, r], { eps }) =>
    k.layer_norm(at(x), at(w), at(b), x.shape[0], x.shape[1], eps, at(y), at(mean), at(r))),
  simdKernel(LAYER_NORM_GRAD, ({ x }) => [x.shape, [x.shape[1]], [x.shape[1]]], (k, at, { dy, x, w, mean, r }, [dx, dw, db]) =>
    k.layer_norm_grad(at(dy), at(x), at(w), at(mean), at(r), x.shape[0], x.shape[1], at(dx), at(dw), at(db))),
  simdKernel(ROPE, ({ x }) => [x.shape], (k, at, { x, cos, sinRot }, [y], { back }) => {
    const [B, T, heads, d] = x.shape;
    k.rope(at(x), at(cos), at(sinRot), B, T, heads, d, cos.shape[0] === T ? 0 : 1, back ? 1 : 0, at(y));
  }),
  simdKernel(NARROW_MATMUL, ({ x, w }) => [[x.shape[0], w.shape[1]]], (k, at, { x, w }, [y]) => k.narrow_mm(at(x), at(w), x.shape[0], x.shape[1], w.shape[1], at(y), w.shape[1])),
  simdKernel(NARROW_MATMUL_GRAD_W, ({ x, d }) => [[x.shape[1], d.shape[1]]], (k, at, { x, d }, [dw]) => k.narrow_mm_tn(at(x), at(d), d.shape[1], x.shape[0], x.shape[1], d.shape[1], at(dw))),
  simdKernel(NARROW_MATMUL_GRAD_X, ({ d, w }) => [[d.shape[0], w.shape[0]], [w.shape[1], w.shape[0]]], (k, at, { d, w }, [dx, wT], _attrs, wasm) => {
    // wT: w transposed [E, K] (a few KB) so the product runs along K; freed before returning
    const [K, E] = w.shape;
    const src = wasm.typedArrayFromHeap(w) as Float32Array;
    const dst = wasm.typedArrayFromHeap(wT) as Float32Array;
    for (let j = 0; j < K; j++) for (let c = 0; c < E; c++) dst[c * K + j] = src[j * E + c];
    k.narrow_mm_nt(at(d), at(wT), d.shape[0], K, E, at(dx));
    wasm.disposeData(wT.dataId);
    return [dx];
  }),
  // a routed mixture's host math (src/backend/wasm-routed.ts): logits [N, E] -> p, m, gates [N, E], total [N]
  simdKernel(ROUTE_TOPK, ({ logits }) => [logits.shape, logits.shape, logits.shape, [logits.shape[0]]], (k, at, { logits }, [p, m, g, total], { k: top }) =>
    k.route_topk(at(logits), logits.shape[1], logits.shape[0], logits.shape[1], top, at(p), at(m), at(g), at(total))),
  simdKernel(ROUTE_GATES_GRAD_SIMD, ({ dg }) => [dg.shape], (k, at, { dg, p, gates, m, total, extra }, [dl]) =>
    k.gates_grad(at(dg), at(p), at(gates), at(m), at(total), extra ? at(extra) : 0, dg.shape[0], dg.shape[1], at(dl), dg.shape[1])),
  // the optimizer (src/train/adamw.ts, clip.ts): one pass a parameter, as webgpu-adamw.ts's kernels on the GPU
  simdKernel(ADAMW_KERNEL, ({ p }) => [p.shape, p.shape, p.shape], (k, at, { p, g, m, v }, [p1, m1, v1], a) =>
    k.adamw(at(p), at(g), at(m), at(v), size(p), a.beta1, a.beta2, a.eps, a.decay, a.stepSize, a.sqrtBc2, a.gradScale, at(p1), at(m1), at(v1))),
  simdKernel(SUM_SQUARES_KERNEL, () => [[]], (k, at, { x }, [out], _attrs, wasm) => {
    (wasm.typedArrayFromHeap(out) as Float32Array)[0] = k.sum_squares(at(x), size(x));
  }),
];

/**
 * HiloAdamW's update written into p, m and v themselves, no kernel and no tensors made (kernels.c's
 * adamw allows its outputs to be its inputs): for the adamw op's wasm version (wasm-ops.ts), which
 * checks that the three may be written in place (placement.ts, writableInPlace). Returns false,
 * doing nothing, where the SIMD module does not run.
 */
export function adamwInPlace(backend: BackendWasm, p: Info, g: Info, m: Info, v: Info, a: AdamWKernelAttrs): boolean {
  const k = simdOrNull(backend);
  if (!k) return false;
  const at = (t: Info) => offset(backend, t);
  k.adamw(at(p), at(g), at(m), at(v), size(p), a.beta1, a.beta2, a.eps, a.decay, a.stepSize, a.sqrtBc2, a.gradScale, at(p), at(m), at(v));
  return true;
}

/**
 * Register the kernels for wasm (initWasm does, on a single-threaded backend), or remove them
 * (`on` false: tests compare against the tensor forms). Idempotent.
 */
export function useSimdKernels(tf: typeof TF, on: boolean): void {
  registerSimdOps(tf, on); // the ops layer's wasm versions (wasm-ops.ts), which run these kernels
  for (const name of KERNELS) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  enabled = on;
  routerLogitsOp.register('wasm', on ? narrowRouterLogits(tf) : null);
  if (!on) return;
  tf.registerKernel(softmaxXent());
  tf.registerKernel(softmaxXentGrad());
  for (const k of ELEMENTWISE) tf.registerKernel(k);
}

/**
 * The router-logits op (src/ops/router-logits.ts) as one pass over x each way: OpenBLAS packs
 * all of x for each of these narrow products, costlier than the product itself. Rows that are not
 * float32 take the reference.
 */
function narrowRouterLogits(tf: typeof TF): RouterLogitsImpl {
  return (x, router) => {
    if (x.dtype !== 'float32') return referenceRouterLogits(x, router);
    const op = tf.customGrad((...args) => {
      const [xs, w] = args.slice(0, 2) as TF.Tensor2D[];
      (args[2] as TF.GradSaveFunc)([xs, w]);
      return {
        value: tf.engine().runKernel(NARROW_MATMUL, { x: xs, w }) as TF.Tensor2D,
        gradFunc: (dl: TF.Tensor, saved: TF.Tensor[]) => [
          tf.engine().runKernel(NARROW_MATMUL_GRAD_X, { d: dl, w: saved[1] }) as TF.Tensor,
          tf.engine().runKernel(NARROW_MATMUL_GRAD_W, { x: saved[0], d: dl }) as TF.Tensor,
        ],
      };
    });
    return op(x, router) as TF.Tensor2D;
  };
}

/** Whether the active backend has kernel `name` of this file. */
export const hasSimdKernel = (tf: typeof TF, name: (typeof KERNELS)[number]): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;

/**
 * Σ x² over float32 tensors where they lie in the wasm heap, summed in double by the SIMD
 * module with no tensor made: the gradient clip's norm, which with data-parallel replicas runs
 * while the other threads wait, so a kernel and a scalar per gradient cost the whole step
 * (docs/performance.md). Null where the module does not run or a tensor is not float32.
 */
export function heapSumSquares(tf: typeof TF, xs: Iterable<TF.Tensor>): number | null {
  if (tf.getBackend() !== 'wasm' || !hasSimdKernel(tf, SUM_SQUARES_KERNEL)) return null;
  const wasm = tf.backend() as unknown as BackendWasm;
  const simd = simdOrNull(wasm);
  if (!simd) return null;
  const all = [...xs];
  if (all.some((x) => x.dtype !== 'float32')) return null;
  let sum = 0;
  for (const x of all) sum += simd.sum_squares(offset(wasm, x as unknown as Info), x.size);
  return sum;
}

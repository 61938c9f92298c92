/**
 * The wasm backend's versions of the ops (src/ops/) that hilo's SIMD module runs as one kernel
 * each way (src/backend/wasm-simd.ts): registered while those kernels are (useSimdKernels, which
 * calls registerSimdOps), so with the module off, as on the threaded build, every op runs its
 * reference. Each falls back to the reference for inputs its kernel does not take.
 */
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { swiGluOp } from '../ops/activation.ts';
import { adamwOp, type AdamWImpl } from '../ops/adamw.ts';
import { attentionOp, groupedAttentionWith, referenceProbs, referenceRotary, rotaryOp, type AttentionProbs, type RotaryImpl } from '../ops/attention.ts';
import { sumSquaresOp, type SumSquaresImpl } from '../ops/clip.ts';
import { IGNORE_INDEX, referenceTokenNll, tokenNllOp, type TokenNllImpl } from '../ops/cross-entropy.ts';
import { layerNormOp, referenceLayerNorm, rmsNormOp, type LayerNormImpl, type RmsNormImpl } from '../ops/norm.ts';
import { writableInPlace } from './placement.ts';
import {
  adamwInPlace, ATTN_SOFTMAX, ATTN_SOFTMAX_GRAD, heapSumSquares, LAYER_NORM, LAYER_NORM_GRAD, RMS_NORM_SIMD, RMS_NORM_SIMD_GRAD, ROPE,
  SOFTMAX_XENT, SOFTMAX_XENT_GRAD, SWIGLU, SWIGLU_GRAD,
} from './wasm-simd.ts';
import { ADAMW_KERNEL, adamwKernelAttrs, SUM_SQUARES_KERNEL } from './webgpu-adamw.ts';
import { toAttrs } from './kernel-attrs.ts';

/** RMSNorm in one pass each way; the forward also hands the backward each row's r [N]. */
const rmsNorm = (tf: typeof TF): RmsNormImpl => (x, weight, eps) => {
  const op = tf.customGrad((...args) => {
    const xs = args[0] as TF.Tensor2D;
    const [y, r] = tf.engine().runKernel(RMS_NORM_SIMD, { x: xs, w: weight }, { eps }) as TF.Tensor[];
    (args[1] as TF.GradSaveFunc)([xs, r]);
    return {
      value: y as TF.Tensor2D,
      gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(RMS_NORM_SIMD_GRAD, { dy, x: saved[0], w: weight, r: saved[1] }) as TF.Tensor2D,
    };
  });
  return op(x) as TF.Tensor2D;
};

/**
 * LayerNorm in one pass each way (GPT-2's norms), where the reference's moments, normalisation
 * and affine were ~8 kernels forward and autodiff's ~20 backward; the forward hands the backward
 * each row's mean and r, and the backward gives the weight and bias their gradients too (full
 * training trains them). Inputs its kernel does not take run the reference.
 */
const layerNorm = (tf: typeof TF): LayerNormImpl => (x, weight, bias, eps) => {
  if ([x, weight, bias].some((t) => t.dtype !== 'float32') || x.rank !== 2) return referenceLayerNorm(x, weight, bias, eps);
  const op = tf.customGrad((...args) => {
    const [xs, w, b] = args.slice(0, 3) as [TF.Tensor2D, TF.Tensor1D, TF.Tensor1D];
    const [y, mean, r] = tf.engine().runKernel(LAYER_NORM, { x: xs, w, b }, { eps }) as TF.Tensor[];
    (args[3] as TF.GradSaveFunc)([xs, w, mean, r]);
    return {
      value: y as TF.Tensor2D,
      gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) =>
        tf.engine().runKernel(LAYER_NORM_GRAD, { dy, x: saved[0], w: saved[1], mean: saved[2], r: saved[3] }) as TF.Tensor[],
    };
  });
  return op(x, weight, bias) as TF.Tensor2D;
};

/**
 * The attention probabilities in one kernel each way, where the scale, the mask's add, the
 * softmax and its gradient were ~8 kernels over [B, H, Tq, Tk] (and a sum of the mask's unused
 * gradient). The kernel takes a mask as wide as the scores.
 */
const attentionProbs = (tf: typeof TF): AttentionProbs => (s, mask, scale) => {
  if (s.dtype !== 'float32' || mask.shape[2] !== s.shape[2] || mask.shape[3] !== s.shape[3]) return referenceProbs(s, mask, scale);
  const op = tf.customGrad((...args) => {
    const p = tf.engine().runKernel(ATTN_SOFTMAX, { s: args[0] as TF.Tensor4D, mask }, { scale }) as TF.Tensor4D;
    (args[1] as TF.GradSaveFunc)([p]);
    return {
      value: p,
      gradFunc: (dp: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(ATTN_SOFTMAX_GRAD, { dp, p: saved[0] }, { scale }) as TF.Tensor4D,
    };
  });
  return op(s) as TF.Tensor4D;
};

/** The rotation in one kernel each way, in place of the reference's [d, d] product and its 4 element-wise passes. */
const rotary = (tf: typeof TF): RotaryImpl => (x, cos, sinRot, swap) => {
  const [b, t, , d] = x.shape;
  if (x.dtype !== 'float32' || d % 2 !== 0) return referenceRotary(x, cos, sinRot, swap);
  const rows = cos.shape[0] === 1 ? t : b * t; // one table row per position, or per (batch, position)
  const c = cos.reshape([rows, d]);
  const sr = sinRot.reshape([rows, d]);
  const op = tf.customGrad((...args) => ({
    value: tf.engine().runKernel(ROPE, { x: args[0] as TF.Tensor4D, cos: c, sinRot: sr }, { back: 0 }) as TF.Tensor4D,
    gradFunc: (dy: TF.Tensor) => tf.engine().runKernel(ROPE, { x: dy, cos: c, sinRot: sr }, { back: 1 }) as TF.Tensor4D,
  }));
  return op(x) as TF.Tensor4D;
};

const swiGlu = (tf: typeof TF) => (gate: TF.Tensor2D, up: TF.Tensor2D): TF.Tensor2D => {
  const op = tf.customGrad((...args) => {
    const [g, u] = args.slice(0, 2) as TF.Tensor2D[];
    (args[2] as TF.GradSaveFunc)([g, u]);
    return {
      value: tf.engine().runKernel(SWIGLU, { g, u }) as TF.Tensor2D,
      gradFunc: (dh: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(SWIGLU_GRAD, { dh, g: saved[0], u: saved[1] }) as TF.Tensor[],
    };
  });
  return op(gate, up) as TF.Tensor2D;
};

/**
 * The token NLL as one kernel each way: the forward reads the logits twice (row max, then Σ
 * exp) and writes [N] (and, for a backward, the exps); the backward writes dy·(softmax −
 * onehot) in one pass. The reference's softmax, maxima, scatter, multiply and subtract each
 * streamed [N, V].
 */
const tokenNll = (tf: typeof TF): TokenNllImpl => (logits, targets) => {
  if (logits.dtype !== 'float32') return referenceTokenNll(logits, targets);
  const counted = Int32Array.from(targets, (t) => (t === IGNORE_INDEX ? -1 : t));
  const nll = tf.customGrad((...args: Array<TF.Tensor | TF.GradSaveFunc>) => {
    const l = args[0] as TF.Tensor2D;
    const save = args[1] as TF.GradSaveFunc;
    const y = tf.tensor1d(counted, 'int32');
    // Under a gradient tape the forward keeps its exps [N, V] for the backward, which then
    // takes no exp of its own: the exp is most of an element's cost (docs/performance.md).
    const keep = tf.engine().state.gradientDepth > 0;
    const [value, lse, e, inv] = tf.engine().runKernel(SOFTMAX_XENT, { logits: l, targets: y }, { keep: keep ? 1 : 0 }) as TF.Tensor[];
    save(keep ? [e, inv, y] : [l, lse, y]);
    return {
      value,
      gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
        const grads: TF.NamedTensorMap = keep ? { dy, e: saved[0], inv: saved[1], targets: saved[2] } : { dy, logits: saved[0], lse: saved[1], targets: saved[2] };
        return tf.engine().runKernel(SOFTMAX_XENT_GRAD, grads) as TF.Tensor;
      },
    };
  });
  return tf.tidy(() => nll(logits) as TF.Tensor1D);
};

/**
 * One pass a parameter; where p, m and v may be written in place (writableInPlace: nothing else
 * shares their data and the products keep nothing by data id), the module writes them directly:
 * no kernel, no new tensors, no assigns.
 */
const adamw = (tf: typeof TF): AdamWImpl => (p, g, m, v, h) => {
  const attrs = adamwKernelAttrs(h);
  const wasm = tf.backend() as unknown as BackendWasm;
  if (g.dtype === 'float32' && [p, m, v].every(writableInPlace) && adamwInPlace(wasm, p, g, m, v, attrs)) return;
  const [p1, m1, v1] = tf.engine().runKernel(ADAMW_KERNEL, { p, g, m, v }, toAttrs(attrs)) as TF.Tensor[];
  m.assign(m1);
  v.assign(v1);
  p.assign(p1);
};

/** Σ x² summed in double: of one tensor as a kernel; of many where they lie in the heap, with none. */
const sumSquares = (tf: typeof TF): SumSquaresImpl => ({
  of: (x) => (x.dtype === 'float32' ? (tf.engine().runKernel(SUM_SQUARES_KERNEL, { x }) as TF.Scalar) : x.square().sum()),
  now: (xs) => heapSumSquares(tf, xs),
});

/** Register the wasm versions of the ops (on) or remove them (off), with the SIMD kernels they run. */
export function registerSimdOps(tf: typeof TF, on: boolean): void {
  rmsNormOp.register('wasm', on ? rmsNorm(tf) : null);
  layerNormOp.register('wasm', on ? layerNorm(tf) : null);
  const probs = attentionProbs(tf);
  attentionOp.register('wasm', on ? { attend: groupedAttentionWith(probs), probs } : null);
  rotaryOp.register('wasm', on ? rotary(tf) : null);
  swiGluOp.register('wasm', on ? swiGlu(tf) : null);
  tokenNllOp.register('wasm', on ? tokenNll(tf) : null);
  adamwOp.register('wasm', on ? adamw(tf) : null);
  sumSquaresOp.register('wasm', on ? sumSquares(tf) : null);
}


/**
 * The optimizer's kernels on webgpu. AdamW's update as one kernel (`HiloAdamW`), three GPU
 * programs instead of ~14 tfjs kernels a parameter; and the gradient clipping's Σ g² of one
 * tensor as one program (`HiloSumSquares`) instead of Square then Sum. On a GPU a training
 * step is bound by host time per kernel, and a MoE model has ~100 small parameters: the unfused
 * update spent about a quarter of a small MoE step's kernels on them.
 *
 *   m' = b1 m + (1-b1) g          v' = b2 v + (1-b2) g²
 *   p' = p (1 - lr wd) - (lr / bc1) m' / (sqrt(v') / sqrt(bc2) + eps)
 *
 * the order and arithmetic of adamwUpdate (the host form), in f32. The constants are uniforms,
 * so one compiled shader serves every step and learning rate.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { adamwOp, stepConstants, type AdamWHyper } from '../ops/adamw.ts';
import { sumSquaresOp } from '../ops/clip.ts';
import { f32, i32, ThreadProgram, type WebGPUUtil } from './webgpu-programs.ts';
import { fromAttrs, toAttrs } from './kernel-attrs.ts';

export const ADAMW_KERNEL = 'HiloAdamW';
export const SUM_SQUARES_KERNEL = 'HiloSumSquares';

/** Attributes of HiloAdamW: the step's constants, computed on the host in double precision. */
export interface AdamWKernelAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 - lr·weightDecay */
  decay: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** sqrt(1 - beta2^t) */
  sqrtBc2: number;
  /** The gradient is multiplied by this first (a clip coefficient). */
  gradScale: number;
}

/** HiloAdamW's attributes for a step of the adamw op. */
export const adamwKernelAttrs = (h: AdamWHyper): AdamWKernelAttrs =>
  ({ beta1: h.beta1, beta2: h.beta2, eps: h.eps, gradScale: h.gradScale ?? 1, ...stepConstants(h) });

/** One moment, g = s·G: a·X + c·g (the first) or a·X + c·g² (the second), one thread per element. */
const momentProgram = (util: WebGPUUtil, shape: number[], n: number, squared: boolean) =>
  new ThreadProgram(util, ['X', 'G'], shape, n, 'threads : i32, a : f32, c : f32, s : f32,', `hilo_adamw_moment_${squared ? 2 : 1}`, `
    let g = G[index] * uniforms.s;
    setOutputAtIndex(index, uniforms.a * X[index] + uniforms.c * ${squared ? 'g * g' : 'g'});
  `);

/** The parameter: P·decay − stepSize·M / (sqrt(V)/sqrtBc2 + eps), from the new moments. */
const paramProgram = (util: WebGPUUtil, shape: number[], n: number) =>
  new ThreadProgram(util, ['P', 'M', 'V'], shape, n, 'threads : i32, decay : f32, stepSize : f32, sqrtBc2 : f32, eps : f32,', 'hilo_adamw_param', `
    let denom = sqrt(V[index]) / uniforms.sqrtBc2 + uniforms.eps;
    setOutputAtIndex(index, P[index] * uniforms.decay - uniforms.stepSize * M[index] / denom);
  `);

/** Σ x² of a whole tensor: one workgroup of 256 threads, strided partial sums, then a tree. */
class SumSquaresProgram implements WebGPUProgram {
  variableNames = ['X'];
  uniforms = 'n : i32,';
  workgroupSize: [number, number, number] = [256, 1, 1];
  outputShape: number[] = [];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  shaderKey = 'hilo_sum_squares';

  getUserCode(): string {
    return `
      var<workgroup> partial : array<f32, 256>;
      fn main(index : i32) {
        var s = 0.0;
        for (var i = index; i < uniforms.n; i += 256) { let v = X[i]; s += v * v; }
        partial[index] = s;
        workgroupBarrier();
        for (var half = 128; half > 0; half = half / 2) {
          if (index < half) { partial[index] = partial[index] + partial[index + half]; }
          workgroupBarrier();
        }
        if (index == 0) { setOutputAtIndex(0, partial[0]); }
      }
    `;
  }
}

let installed = false;

/**
 * Register for webgpu once per process: HiloAdamW, inputs {p, g, m, v}, outputs [p', m', v'];
 * HiloSumSquares, input {x}, output the scalar Σ x²; and the adamw and sum-squares ops' webgpu
 * versions (src/ops/adamw.ts, src/ops/clip.ts), which run them.
 */
export function installAdamW(tf: typeof TF, util: WebGPUUtil): void {
  if (installed) return;
  tf.registerKernel({
    kernelName: ADAMW_KERNEL,
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { p, g, m, v } = args.inputs as Record<'p' | 'g' | 'm' | 'v', TF.TensorInfo>;
      const a = fromAttrs<AdamWKernelAttrs>(args.attrs);
      const backend = args.backend as WebGPUBackend;
      for (const [name, t] of [['g', g], ['m', m], ['v', v]] as const) {
        if (t.dtype !== 'float32' || t.shape.join() !== p.shape.join()) {
          throw new Error(`${ADAMW_KERNEL}: ${name} is ${t.dtype} [${t.shape}], the parameter float32 [${p.shape}]`);
        }
      }
      const n = p.shape.reduce((x, y) => x * y, 1);
      const m1 = backend.runWebGPUProgram(momentProgram(util, p.shape, n, false), [m, g], 'float32', [i32(n), f32(a.beta1), f32(1 - a.beta1), f32(a.gradScale ?? 1)]);
      const v1 = backend.runWebGPUProgram(momentProgram(util, p.shape, n, true), [v, g], 'float32', [i32(n), f32(a.beta2), f32(1 - a.beta2), f32(a.gradScale ?? 1)]);
      const p1 = backend.runWebGPUProgram(paramProgram(util, p.shape, n), [p, m1, v1], 'float32', [i32(n), f32(a.decay), f32(a.stepSize), f32(a.sqrtBc2), f32(a.eps)]);
      return [p1, m1, v1];
    },
  });
  tf.registerKernel({
    kernelName: SUM_SQUARES_KERNEL,
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const x = args.inputs.x as TF.TensorInfo;
      if (x.dtype !== 'float32') throw new Error(`${SUM_SQUARES_KERNEL}: x is ${x.dtype}, not float32`);
      const n = x.shape.reduce((a, b) => a * b, 1);
      return (args.backend as WebGPUBackend).runWebGPUProgram(new SumSquaresProgram(), [x], 'float32', [i32(n)]);
    },
  });
  adamwOp.register('webgpu', (p, g, m, v, h) => {
    const [p1, m1, v1] = tf.engine().runKernel(ADAMW_KERNEL, { p, g, m, v }, toAttrs(adamwKernelAttrs(h))) as TF.Tensor[];
    m.assign(m1);
    v.assign(v1);
    p.assign(p1);
  });
  sumSquaresOp.register('webgpu', {
    of: (x) => (x.dtype === 'float32' ? (tf.engine().runKernel(SUM_SQUARES_KERNEL, { x }) as TF.Scalar) : x.square().sum()),
  });
  installed = true;
}

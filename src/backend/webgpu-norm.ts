/**
 * RMSNorm as one GPU program forward and one backward on webgpu, one thread per row, where the
 * tfjs ops took ~18 GPU programs for the two (a Llama step has 2 norms per layer + 1). Only x
 * gets a gradient: the norm weights are frozen base weights (hilo trains adapters).
 *   forward   r = 1/sqrt(mean(x²) + eps),  y = w ⊙ x · r
 *   backward  g = w ⊙ dy,  dx = r·g − x · r³ · mean(g ⊙ x)
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { rmsNormOp } from '../ops/norm.ts';
import { f32, i32, ThreadProgram, type WebGPUUtil } from './webgpu-programs.ts';

export const RMS_NORM = 'HiloRmsNorm';
export const RMS_NORM_GRAD = 'HiloRmsNormGrad';

/** r for row `row` of X [N, H], in the row's own loop. */
const RSTD = `
  fn rstd(row : i32, H : i32) -> f32 {
    var s = 0.0;
    for (var j = 0; j < H; j++) { let v = X[row * H + j]; s += v * v; }
    return inverseSqrt(s / f32(H) + uniforms.eps);
  }
`;

const normProgram = (util: WebGPUUtil, N: number, H: number) =>
  new ThreadProgram(util, ['X', 'Wt'], [N, H], N, 'threads : i32, H : i32, eps : f32,', 'hilo_rms_norm', `
    let H = uniforms.H;
    let r = rstd(index, H);
    for (var j = 0; j < H; j++) { setOutputAtIndex(index * H + j, Wt[j] * (X[index * H + j] * r)); }
  `, RSTD);

const normGradProgram = (util: WebGPUUtil, N: number, H: number) =>
  new ThreadProgram(util, ['Dy', 'X', 'Wt'], [N, H], N, 'threads : i32, H : i32, eps : f32,', 'hilo_rms_norm_grad', `
    let H = uniforms.H;
    let r = rstd(index, H);
    var gx = 0.0;
    for (var j = 0; j < H; j++) { gx += Wt[j] * Dy[index * H + j] * X[index * H + j]; }
    let c = r * r * r * gx / f32(H);
    for (var j = 0; j < H; j++) {
      setOutputAtIndex(index * H + j, r * Wt[j] * Dy[index * H + j] - X[index * H + j] * c);
    }
  `, RSTD);

let installed = false;

/**
 * Register HiloRmsNorm {x [N,H], w [H]} -> y and HiloRmsNormGrad {dy, x, w} -> dx for webgpu,
 * and the rms-norm op's webgpu version (src/ops/norm.ts), which runs them.
 */
export function installRmsNorm(tf: typeof TF, util: WebGPUUtil): void {
  if (installed) return;
  const shape = (x: TF.TensorInfo, w: TF.TensorInfo) => {
    if (x.shape.length !== 2 || w.shape.length !== 1 || w.shape[0] !== x.shape[1] || x.dtype !== 'float32' || w.dtype !== 'float32') {
      throw new Error(`${RMS_NORM}: takes float32 x [N, H] and w [H], got x ${x.dtype} [${x.shape}], w ${w.dtype} [${w.shape}]`);
    }
    return x.shape as [number, number];
  };
  tf.registerKernel({
    kernelName: RMS_NORM,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const [N, H] = shape(inputs.x as TF.TensorInfo, inputs.w as TF.TensorInfo);
      return (backend as WebGPUBackend).runWebGPUProgram(normProgram(util, N, H), [inputs.x as TF.TensorInfo, inputs.w as TF.TensorInfo], 'float32',
        [i32(N), i32(H), f32(attrs!.eps as number)]);
    },
  });
  tf.registerKernel({
    kernelName: RMS_NORM_GRAD,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const [N, H] = shape(inputs.x as TF.TensorInfo, inputs.w as TF.TensorInfo);
      return (backend as WebGPUBackend).runWebGPUProgram(normGradProgram(util, N, H),
        [inputs.dy as TF.TensorInfo, inputs.x as TF.TensorInfo, inputs.w as TF.TensorInfo], 'float32', [i32(N), i32(H), f32(attrs!.eps as number)]);
    },
  });
  rmsNormOp.register('webgpu', (x, weight, eps) => {
    const op = tf.customGrad((...args) => {
      const xs = args[0] as TF.Tensor2D;
      (args[1] as TF.GradSaveFunc)([xs]);
      return {
        value: tf.engine().runKernel(RMS_NORM, { x: xs, w: weight }, { eps }) as TF.Tensor2D,
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(RMS_NORM_GRAD, { dy, x: saved[0], w: weight }, { eps }) as TF.Tensor2D,
      };
    });
    return op(x) as TF.Tensor2D;
  });
  installed = true;
}

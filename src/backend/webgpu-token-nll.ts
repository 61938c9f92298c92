/**
 * The token NLL (src/ops/cross-entropy.ts) as one GPU program each way on webgpu, one workgroup
 * per row of logits [N, V], where the reference's softmax, maxima, log and gather dispatched 8
 * programs forward and its scatter, multiply and subtract 5 backward, most of them over [N, V].
 *   forward   m = max(l),  s = Σ exp(l − m),  nll = (m − l[t]) + log s   (0 where t is ignored)
 *   backward  dl = g · (exp(l − m) / s − onehot(t)),  g = dy · (t counted)
 * Each thread keeps a running (m, s) over its stride of the row, rescaling s when m grows, so
 * the row is read once for both; the workgroup then combines the threads' pairs.
 *
 * The backward computes m and s again (one more read of the row) instead of taking lse from the
 * forward: a program has one output, so keeping lse would cost a slice of a two-output forward,
 * and an lse rounded to float32 is off by up to half an ulp of the logits' magnitude, which
 * exp(l − lse) turns into that relative error in every probability (3e-5 at logits of 1000);
 * exp(l − m) / s is as exact as the reference's softmax.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { referenceTokenNll, tokenNllOp } from '../ops/cross-entropy.ts';
import { i32, reduction, RowProgram, type WebGPUUtil } from './webgpu-programs.ts';

export const TOKEN_NLL = 'HiloTokenNll';
export const TOKEN_NLL_GRAD = 'HiloTokenNllGrad';

/** Threads per row: vocabularies are 32k-152k, 125-600 elements a thread. */
const WIDTH = 256;

/**
 * `fn maxSum(row, lane) -> vec2(m, s)` of row `row` of L [N, V]. A thread whose stride holds
 * nothing keeps (lowest float, 0), which the combine's exp(lowest − m) = 0 weighs out; an
 * infinite start would give exp(−inf + inf) = NaN.
 */
const MAX_SUM = `
  ${reduction('row_max_sum', WIDTH, 'vec2<f32>(max(a.x, b.x), a.y * exp(a.x - max(a.x, b.x)) + b.y * exp(b.x - max(a.x, b.x)))')}
  fn maxSum(row : i32, lane : i32) -> vec2<f32> {
    let V = uniforms.V;
    var m = -3.4028234e38;
    var s = 0.0;
    for (var j = lane; j < V; j += ${WIDTH}) {
      let v = L[row * V + j];
      if (v > m) { s = s * exp(m - v) + 1.0; m = v; } else { s += exp(v - m); }
    }
    return row_max_sum(vec2<f32>(m, s));
  }
  /** Row row's label, or -1 where it counts nothing (IGNORE_INDEX, or outside the vocabulary, which is never read). */
  fn label(row : i32) -> i32 {
    let t = T[row];
    return select(-1, t, t >= 0 && t < uniforms.V);
  }
`;

const UNIFORMS = 'rows : i32, V : i32,';

const nllProgram = (util: WebGPUUtil, N: number) =>
  new RowProgram(util, ['L', 'T'], [N], N, WIDTH, UNIFORMS, 'hilo_token_nll', `
    let ms = maxSum(row, lane);
    if (live && lane == 0) {
      let t = label(row);
      // m − l[t] first: both near the row's largest logits, so their difference is exact
      setOutputAtIndex(row, select(0.0, (ms.x - L[row * uniforms.V + max(t, 0)]) + log(ms.y), t >= 0));
    }
  `, MAX_SUM);

const gradProgram = (util: WebGPUUtil, N: number, V: number) =>
  new RowProgram(util, ['Dy', 'L', 'T'], [N, V], N, WIDTH, UNIFORMS, 'hilo_token_nll_grad', `
    let V = uniforms.V;
    let ms = maxSum(row, lane);
    if (live) {
      let t = label(row);
      let g = select(0.0, Dy[row], t >= 0);
      let inv = 1.0 / ms.y;
      for (var j = lane; j < V; j += W) {
        let p = exp(L[row * V + j] - ms.x) * inv;
        setOutputAtIndex(row * V + j, p * g - select(0.0, g, j == t));
      }
    }
  `, MAX_SUM);

/** [N, V] of float32 logits [N, V] with int32 targets [N] (and float32 dy [N]); throws, naming them, otherwise. */
function shapeOf(inputs: Record<'logits' | 'targets' | 'dy', TF.TensorInfo>): [number, number] {
  const { logits, targets, dy } = inputs;
  const [N] = logits.shape;
  const ok = logits.shape.length === 2 && logits.dtype === 'float32' && targets.dtype === 'int32' && targets.shape.join() === `${N}`
    && (!dy || (dy.dtype === 'float32' && dy.shape.join() === `${N}`));
  if (!ok) {
    const got = Object.entries(inputs).map(([name, t]) => `${name} ${t.dtype} [${t.shape}]`).join(', ');
    throw new Error(`${TOKEN_NLL}: takes float32 logits [N, V], int32 targets [N] and float32 dy [N]; got ${got}`);
  }
  return logits.shape as [number, number];
}

let installed = false;

/**
 * Register HiloTokenNll {logits, targets} -> nll [N] and HiloTokenNllGrad {dy, logits, targets}
 * -> dlogits for webgpu, once per process, and the token-nll op's webgpu version, which runs them.
 */
export function installTokenNll(tf: typeof TF, util: WebGPUUtil): void {
  if (installed) return;
  tf.registerKernel({
    kernelName: TOKEN_NLL,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend }) => {
      const [N, V] = shapeOf(inputs as Record<'logits' | 'targets' | 'dy', TF.TensorInfo>);
      return (backend as WebGPUBackend).runWebGPUProgram(nllProgram(util, N), [inputs.logits!, inputs.targets!], 'float32', [i32(N), i32(V)]);
    },
  });
  tf.registerKernel({
    kernelName: TOKEN_NLL_GRAD,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend }) => {
      const [N, V] = shapeOf(inputs as Record<'logits' | 'targets' | 'dy', TF.TensorInfo>);
      return (backend as WebGPUBackend).runWebGPUProgram(gradProgram(util, N, V), [inputs.dy!, inputs.logits!, inputs.targets!], 'float32', [i32(N), i32(V)]);
    },
  });
  tokenNllOp.register('webgpu', (logits, targets) => {
    if (logits.dtype !== 'float32') return referenceTokenNll(logits, targets);
    const nll = tf.customGrad((...args: Array<TF.Tensor | TF.GradSaveFunc>) => {
      const l = args[0] as TF.Tensor2D;
      const y = tf.tensor1d(targets, 'int32'); // IGNORE_INDEX is negative: the kernels count it as no label
      (args[1] as TF.GradSaveFunc)([l, y]);
      return {
        value: tf.engine().runKernel(TOKEN_NLL, { logits: l, targets: y }) as TF.Tensor1D,
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => tf.engine().runKernel(TOKEN_NLL_GRAD, { dy, logits: saved[0], targets: saved[1] }) as TF.Tensor2D,
      };
    });
    return tf.tidy(() => nll(logits) as TF.Tensor1D);
  });
  installed = true;
}

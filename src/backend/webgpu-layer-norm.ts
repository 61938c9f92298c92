/**
 * LayerNorm (GPT-2's norms) as one GPU program forward on webgpu, one workgroup per row, and one
 * backward for x, where the reference's tfjs ops dispatched 10 programs forward and 21 backward.
 *   forward   μ = mean(x),  r = 1/sqrt(mean((x − μ)²) + eps),  x̂ = (x − μ)·r,  y = w ⊙ x̂ + b
 *   backward  g = w ⊙ dy,  dx = r·(g − mean(g) − x̂ · mean(g ⊙ x̂)),
 *             dw = Σ_rows dy ⊙ x̂,  db = Σ_rows dy
 * The gradient is registered per input (tf.registerGradient), so tfjs runs only what its tape
 * needs: dx alone, one program, for hilo's frozen norm weights; dw (row statistics, then a column
 * sum) and db (a column sum) only where the weight and bias train. Each row's μ and r are
 * computed again where needed instead of kept: a program has one output, and a second would
 * cost a slice each way.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { layerNormOp, referenceLayerNorm } from '../ops/norm.ts';
import { f32, i32, reduction, RowProgram, ThreadProgram, type WebGPUUtil } from './webgpu-programs.ts';

export const LAYER_NORM_GPU = 'HiloLayerNormGpu';
export const LAYER_NORM_GPU_DX = 'HiloLayerNormGpuDx';
export const LAYER_NORM_GPU_DW = 'HiloLayerNormGpuDw';
export const LAYER_NORM_GPU_DB = 'HiloLayerNormGpuDb';

/** Threads per row: GPT-2's hidden sizes (768-1600) are 12-25 elements a thread. */
const WIDTH = 64;

/**
 * `fn stats(row, lane) -> vec2(μ, r)` of X [N, H], two passes over the row (the variance of
 * x − μ, not mean(x²) − μ², which cancels for rows far from zero), each summed across the workgroup.
 */
const STATS = `
  ${reduction('row_sum', WIDTH, 'a + b')}
  fn stats(row : i32, lane : i32) -> vec2<f32> {
    let H = uniforms.H;
    var s = 0.0;
    for (var j = lane; j < H; j += ${WIDTH}) { s += X[row * H + j]; }
    let mean = row_sum(vec2<f32>(s, 0.0)).x / f32(H);
    var q = 0.0;
    for (var j = lane; j < H; j += ${WIDTH}) { let d = X[row * H + j] - mean; q += d * d; }
    return vec2<f32>(mean, inverseSqrt(row_sum(vec2<f32>(q, 0.0)).x / f32(H) + uniforms.eps));
  }
`;

const UNIFORMS = 'rows : i32, H : i32, eps : f32,';

const normProgram = (util: WebGPUUtil, N: number, H: number) =>
  new RowProgram(util, ['X', 'Wt', 'B'], [N, H], N, WIDTH, UNIFORMS, 'hilo_layer_norm', `
    let H = uniforms.H;
    let st = stats(row, lane);
    if (live) {
      for (var j = lane; j < H; j += W) { setOutputAtIndex(row * H + j, (X[row * H + j] - st.x) * st.y * Wt[j] + B[j]); }
    }
  `, STATS);

const dxProgram = (util: WebGPUUtil, N: number, H: number) =>
  new RowProgram(util, ['Dy', 'X', 'Wt'], [N, H], N, WIDTH, UNIFORMS, 'hilo_layer_norm_dx', `
    let H = uniforms.H;
    let st = stats(row, lane);
    var acc = vec2<f32>(0.0, 0.0); // Σ g, Σ g·x̂ over this thread's columns
    for (var j = lane; j < H; j += W) {
      let g = Wt[j] * Dy[row * H + j];
      acc += vec2<f32>(g, g * (X[row * H + j] - st.x) * st.y);
    }
    let m = row_sum(acc) / f32(H);
    if (live) {
      for (var j = lane; j < H; j += W) {
        let xhat = (X[row * H + j] - st.x) * st.y;
        setOutputAtIndex(row * H + j, st.y * (Wt[j] * Dy[row * H + j] - m.x - xhat * m.y));
      }
    }
  `, STATS);

/** Each row's (μ, r) [N, 2], for dw's column sums. */
const statsProgram = (util: WebGPUUtil, N: number, H: number) =>
  new RowProgram(util, ['X'], [N, 2], N, WIDTH, UNIFORMS, 'hilo_layer_norm_stats', `
    let st = stats(row, lane);
    if (live && lane == 0) {
      setOutputAtIndex(2 * row, st.x);
      setOutputAtIndex(2 * row + 1, st.y);
    }
  `, STATS);

/**
 * Column sums of [N, H] `term`s, one thread per column, in blocks of 64 rows: a block's sum,
 * then the sum of blocks, so float32 error grows with 64 + N/64 rather than N.
 */
const columnSumProgram = (util: WebGPUUtil, inputs: string[], H: number, key: string, term: string) =>
  new ThreadProgram(util, inputs, [H], H, 'threads : i32, N : i32,', key, `
    let H = uniforms.threads;
    var total = 0.0;
    for (var i0 = 0; i0 < uniforms.N; i0 += 64) {
      var block = 0.0;
      for (var i = i0; i < min(i0 + 64, uniforms.N); i++) { block += ${term}; }
      total += block;
    }
    setOutputAtIndex(index, total);
  `);

const dwProgram = (util: WebGPUUtil, H: number) =>
  columnSumProgram(util, ['Dy', 'X', 'S'], H, 'hilo_layer_norm_dw', 'Dy[i * H + index] * (X[i * H + index] - S[2 * i]) * S[2 * i + 1]');

const dbProgram = (util: WebGPUUtil, H: number) =>
  columnSumProgram(util, ['Dy'], H, 'hilo_layer_norm_db', 'Dy[i * H + index]');

/** A kernel's inputs by name: some of x, dy [N, H] and w, b [H]. */
type Inputs = Record<'x' | 'dy' | 'w' | 'b', TF.TensorInfo>;

/** [N, H] of float32 x and dy [N, H] and w, b [H] (those given); throws, naming them, otherwise. */
function rowsOf(inputs: Inputs): [number, number] {
  const rows = (inputs.x ?? inputs.dy).shape;
  const fits = (name: string, t: TF.TensorInfo) =>
    t.dtype === 'float32' && (name === 'w' || name === 'b' ? t.shape.length === 1 && t.shape[0] === rows[1] : t.shape.join() === rows.join());
  if (rows.length !== 2 || !Object.entries(inputs).every(([name, t]) => fits(name, t))) {
    const got = Object.entries(inputs).map(([name, t]) => `${name} ${t.dtype} [${t.shape}]`).join(', ');
    throw new Error(`${LAYER_NORM_GPU}: takes float32 x and dy [N, H], w and b [H]; got ${got}`);
  }
  return rows as [number, number];
}

let installed = false;

/**
 * Register for webgpu once per process: HiloLayerNormGpu {x, w, b} -> y with its gradient, the
 * kernels that gradient runs (Dx {dy, x, w}, Dw {dy, x}, Db {dy}), and the layer-norm op's webgpu
 * version (src/ops/norm.ts), which runs them.
 */
export function installLayerNorm(tf: typeof TF, util: WebGPUUtil): void {
  if (installed) return;
  const kernel = (kernelName: string, run: (b: WebGPUBackend, inputs: Inputs, N: number, H: number, eps: number) => TF.TensorInfo) =>
    tf.registerKernel({
      kernelName,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const [N, H] = rowsOf(inputs as Inputs);
        return run(backend as WebGPUBackend, inputs as Inputs, N, H, (attrs?.eps as number) ?? 0);
      },
    });
  kernel(LAYER_NORM_GPU, (b, { x, w, b: bias }, N, H, eps) => b.runWebGPUProgram(normProgram(util, N, H), [x, w, bias], 'float32', [i32(N), i32(H), f32(eps)]));
  kernel(LAYER_NORM_GPU_DX, (b, { dy, x, w }, N, H, eps) => b.runWebGPUProgram(dxProgram(util, N, H), [dy, x, w], 'float32', [i32(N), i32(H), f32(eps)]));
  kernel(LAYER_NORM_GPU_DW, (b, { dy, x }, N, H, eps) => {
    const s = b.runWebGPUProgram(statsProgram(util, N, H), [x], 'float32', [i32(N), i32(H), f32(eps)]);
    const dw = b.runWebGPUProgram(dwProgram(util, H), [dy, x, s], 'float32', [i32(H), i32(N)]);
    b.disposeData(s.dataId);
    return dw;
  });
  kernel(LAYER_NORM_GPU_DB, (b, { dy }, N, H) => b.runWebGPUProgram(dbProgram(util, H), [dy], 'float32', [i32(H), i32(N)]));
  tf.registerGradient({
    kernelName: LAYER_NORM_GPU,
    inputsToSave: ['x', 'w'],
    gradFunc: (dy, saved, attrs) => {
      const [x, w] = saved;
      const run = (name: string, inputs: TF.NamedTensorMap) => () => tf.engine().runKernel(name, inputs, attrs) as TF.Tensor;
      return { x: run(LAYER_NORM_GPU_DX, { dy: dy as TF.Tensor, x, w }), w: run(LAYER_NORM_GPU_DW, { dy: dy as TF.Tensor, x }), b: run(LAYER_NORM_GPU_DB, { dy: dy as TF.Tensor }) };
    },
  });
  layerNormOp.register('webgpu', (x, weight, bias, eps) => {
    if ([x, weight, bias].some((t) => t.dtype !== 'float32') || x.rank !== 2) return referenceLayerNorm(x, weight, bias, eps);
    return tf.engine().runKernel(LAYER_NORM_GPU, { x, w: weight, b: bias }, { eps }) as TF.Tensor2D;
  });
  installed = true;
}

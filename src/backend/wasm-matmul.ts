/**
 * Fast transposed products on tfjs-backend-wasm. Its BatchMatMul kernel is fast only when
 * neither operand is transposed ([1024,256]x[256,4096]: ~17 GFLOP/s, but x[4096,256]^T:
 * ~1.4), and backward passes are made of transposed products (dA = dY B^T, dB = A^T dY),
 * as are tied lm heads (x E^T) and attention scores (Q K^T). A transpose is a memory-bound
 * copy, far cheaper than the slow path, so the replacement kernels transpose the operand
 * explicitly and run the untransposed kernel. Registering kernels (rather than changing
 * callers) makes every product take the fast path, gradients included.
 */
import type * as TF from '@tensorflow/tfjs';

const KERNELS = ['BatchMatMul', '_FusedMatMul'] as const;
const originals = new Map<string, TF.KernelConfig>();

/** Transpose the last two axes with the backend's own Transpose kernel. */
function swapLastTwo(tf: typeof TF, x: TF.TensorInfo, backend: TF.KernelBackend): TF.TensorInfo {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  const transpose = tf.getKernel('Transpose', 'wasm')!;
  return transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as TF.TensorInfo;
}

const size = (x: TF.TensorInfo) => x.shape.reduce((n, d) => n * d, 1);

/**
 * Elements to transpose for each way of computing C = op(A) op(B) with untransposed products:
 *  - operands: transpose each transposed operand, then A' B';
 *  - output:   C^T = op(B)^T op(A)^T, whose operands are untransposed exactly where op() transposed,
 *              then transpose C. Cheaper when the transposed operand is large and C is small
 *              (LoRA's dA = x^T dY: x is [1024,256], C only [256,8]).
 */
export function transposeCosts(aSize: number, bSize: number, cSize: number, tA: boolean, tB: boolean) {
  return { operands: (tA ? aSize : 0) + (tB ? bSize : 0), output: (tA ? 0 : aSize) + (tB ? 0 : bSize) + cSize };
}

function untransposed(tf: typeof TF, original: TF.KernelConfig): TF.KernelConfig {
  return {
    ...original,
    kernelFunc: (args) => {
      const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
      const tA = attrs.transposeA;
      const tB = attrs.transposeB;
      if (!tA && !tB) return original.kernelFunc(args);
      const backend = args.backend as TF.KernelBackend;
      const a = args.inputs.a as TF.TensorInfo;
      const b = args.inputs.b as TF.TensorInfo;
      const m = tA ? a.shape.at(-1)! : a.shape.at(-2)!;
      const n = tB ? b.shape.at(-2)! : b.shape.at(-1)!;
      const batch = Math.max(size(a) / (a.shape.at(-1)! * a.shape.at(-2)!), size(b) / (b.shape.at(-1)! * b.shape.at(-2)!));
      const cost = transposeCosts(size(a), size(b), batch * m * n, tA, tB);
      const temps: TF.TensorInfo[] = [];
      const swap = (x: TF.TensorInfo) => {
        const t = swapLastTwo(tf, x, backend);
        temps.push(t);
        return t;
      };
      const run = (x: TF.TensorInfo, y: TF.TensorInfo) =>
        original.kernelFunc({ ...args, inputs: { ...args.inputs, a: x, b: y }, attrs: { ...args.attrs, transposeA: false, transposeB: false } }) as TF.TensorInfo;
      try {
        // FusedMatMul's bias/activation apply to C, so only plain BatchMatMul may compute C^T.
        if (cost.output < cost.operands && original.kernelName === 'BatchMatMul') {
          // C^T [.., n, m] = B' [.., n, k] · A' [.., k, m]
          const ct = run(tB ? b : swap(b), tA ? a : swap(a));
          temps.push(ct);
          return swapLastTwo(tf, ct, backend);
        }
        // C [.., m, n] = A' [.., m, k] · B' [.., k, n]
        return run(tA ? swap(a) : a, tB ? swap(b) : b);
      } finally {
        for (const t of temps) backend.disposeData(t.dataId);
      }
    },
  };
}

/**
 * Turn the fast path on (default from initBackend('wasm')) or off (for benchmarks and
 * tests that compare against tfjs's own kernels). Idempotent.
 */
export function useFastWasmMatMul(tf: typeof TF, on: boolean): void {
  for (const name of KERNELS) {
    if (!originals.has(name)) {
      const k = tf.getKernel(name, 'wasm');
      if (!k) throw new Error(`tfjs-backend-wasm registered no ${name} kernel`);
      originals.set(name, k);
    }
    const original = originals.get(name)!;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(on ? untransposed(tf, original) : original);
  }
}

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

function untransposed(tf: typeof TF, original: TF.KernelConfig): TF.KernelConfig {
  return {
    ...original,
    kernelFunc: (args) => {
      const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
      if (!attrs.transposeA && !attrs.transposeB) return original.kernelFunc(args);
      const backend = args.backend as TF.KernelBackend;
      const a = args.inputs.a as TF.TensorInfo;
      const b = args.inputs.b as TF.TensorInfo;
      const temps: TF.TensorInfo[] = [];
      // a [..., K, M] -> [..., M, K]; b [..., N, K] -> [..., K, N]
      const a2 = attrs.transposeA ? swapLastTwo(tf, a, backend) : a;
      const b2 = attrs.transposeB ? swapLastTwo(tf, b, backend) : b;
      if (a2 !== a) temps.push(a2);
      if (b2 !== b) temps.push(b2);
      try {
        return original.kernelFunc({
          ...args,
          inputs: { ...args.inputs, a: a2, b: b2 },
          attrs: { ...args.attrs, transposeA: false, transposeB: false },
        });
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

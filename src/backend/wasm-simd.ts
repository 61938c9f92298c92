/**
 * Fused kernels for the wasm backend from hilo's own wasm SIMD module (src/backend/simd/
 * kernels.c, built into the committed kernels.wasm by scripts/build-simd.sh). The module imports
 * tfjs-backend-wasm's memory, so it reads and writes tensors where they lie, as the native BLAS
 * does (src/backend/blas.ts). Inside a training step the element-wise tfjs kernels each stream
 * whole tensors through memory; one pass that does a chain of them at once moves a fraction of
 * the bytes, and with data-parallel replicas on every core memory is what they share.
 *
 *   HiloSoftmaxXent      logits [N, V], targets [N] (int32, < 0: not counted) -> nll [N], lse [N]
 *   HiloSoftmaxXentGrad  dy [N], logits, lse, targets -> dlogits [N, V] = dy·(softmax - onehot)
 *
 * Only for a single-threaded wasm backend: the threaded build's memory is shared, which a module
 * built without atomics cannot import (its products then stay tfjs's, as before).
 */
import fs from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export const SOFTMAX_XENT = 'HiloSoftmaxXent';
export const SOFTMAX_XENT_GRAD = 'HiloSoftmaxXentGrad';
const KERNELS = [SOFTMAX_XENT, SOFTMAX_XENT_GRAD] as const;

/** The module's exports (pointers are byte offsets in tfjs's heap). */
export interface SimdExports {
  xent_stats(logits: number, n: number, v: number, rowMax: number, rowSum: number): void;
  xent_grad(logits: number, lse: number, target: number, g: number, n: number, v: number, d: number): void;
}

const WASM_FILE = new URL('./simd/kernels.wasm', import.meta.url);
let compiled: WebAssembly.Module | null = null;
/** One instance per backend (per wasm memory). */
const instances = new WeakMap<WebAssembly.Memory, SimdExports>();

/** tfjs-backend-wasm's memory object (its Emscripten module exports it). */
function memoryOf(backend: BackendWasm): WebAssembly.Memory {
  const memory = (backend.wasm as unknown as { asm?: { memory?: WebAssembly.Memory } }).asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) throw new Error('tfjs-backend-wasm does not export its memory (hilo needs tfjs 4.22)');
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

type Info = TF.TensorInfo;
const offset = (backend: BackendWasm, t: Info): number =>
  (backend as unknown as { dataIdMap: { get(id: unknown): { memoryOffset: number } } }).dataIdMap.get(t.dataId).memoryOffset;

function softmaxXent(): TF.KernelConfig {
  return {
    kernelName: SOFTMAX_XENT,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { logits, targets } = inputs as { logits: Info; targets: Info };
      const [N, V] = logits.shape;
      const nll = wasm.makeOutput([N], 'float32');
      const lse = wasm.makeOutput([N], 'float32');
      simdFor(wasm).xent_stats(offset(wasm, logits), N, V, offset(wasm, nll), offset(wasm, lse)); // row max, Σ exp
      const l = wasm.typedArrayFromHeap(logits) as Float32Array;
      const y = wasm.typedArrayFromHeap(targets) as Int32Array;
      const out = wasm.typedArrayFromHeap(nll) as Float32Array;
      const lv = wasm.typedArrayFromHeap(lse) as Float32Array;
      for (let i = 0; i < N; i++) {
        lv[i] = out[i] + Math.log(lv[i]);
        out[i] = y[i] < 0 ? 0 : lv[i] - l[i * V + y[i]];
      }
      return [nll, lse];
    },
  };
}

function softmaxXentGrad(): TF.KernelConfig {
  return {
    kernelName: SOFTMAX_XENT_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as BackendWasm;
      const { dy, logits, lse, targets } = inputs as { dy: Info; logits: Info; lse: Info; targets: Info };
      const [N, V] = logits.shape;
      const d = wasm.makeOutput([N, V], 'float32');
      const at = (t: Info) => offset(wasm, t);
      simdFor(wasm).xent_grad(at(logits), at(lse), at(targets), at(dy), N, V, at(d));
      return d;
    },
  };
}

/**
 * Register the kernels for wasm (initWasm does, on a single-threaded backend), or remove them
 * (`on` false: tests compare against the tensor forms). Idempotent.
 */
export function useSimdKernels(tf: typeof TF, on: boolean): void {
  for (const name of KERNELS) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  if (!on) return;
  tf.registerKernel(softmaxXent());
  tf.registerKernel(softmaxXentGrad());
}

/** Whether the active backend has kernel `name` of this file. */
export const hasSimdKernel = (tf: typeof TF, name: (typeof KERNELS)[number]): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;

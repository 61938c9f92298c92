/**
 * What `hilo doctor` reports: every engine, whether it is usable here, what exactly it is,
 * and, when it is not usable, why and what to do about it. Probing never creates a GPU device
 * and never changes the active backend except to check that wasm instantiates.
 */
import { AUTO_ORDER } from './index.ts';
import { TENSORFLOW_PACKAGES, cuda11Absent, loadTensorflowPackage } from './tensorflow.ts';

export interface BackendStatus {
  /** The --backend value that selects it. */
  backend: string;
  /** The package behind it, where there is a choice. */
  package?: string;
  available: boolean;
  /** What runs: adapter, limits, SIMD/threads. */
  detail?: string;
  /** Why it is not available, and what to do. */
  reason?: string;
  /** True when `auto` would pass it over although it works (software GPU). */
  autoSkips?: boolean;
}

async function probeTensorflow(): Promise<BackendStatus[]> {
  const rows: BackendStatus[] = [];
  for (const pkg of TENSORFLOW_PACKAGES) {
    const why = await loadTensorflowPackage(pkg);
    // installed or not, say whether its CUDA runtime is here: without it the GPU build runs on the CPU
    const cuda = pkg.endsWith('-gpu') ? cuda11Absent() : null;
    rows.push(why
      ? { backend: 'tensorflow', package: pkg, available: false, reason: cuda ? `${why}. And ${cuda}` : why }
      : { backend: 'tensorflow', package: pkg, available: true, detail: 'libtensorflow loaded', ...(cuda && { reason: cuda }) });
  }
  return rows;
}

async function probeWebgpu(): Promise<BackendStatus> {
  const { openAdapter, describeAdapter } = await import('./webgpu.ts');
  try {
    const { report } = await openAdapter();
    const limits = `maxStorageBufferBindingSize ${report.maxStorageBufferBindingSize}, maxBufferSize ${report.maxBufferSize}, shader-f16 ${report.shaderF16 ? 'yes' : 'no'}; weights above the binding limit go in row blocks`;
    return {
      backend: 'webgpu',
      package: 'webgpu (Dawn) + @tensorflow/tfjs-backend-webgpu',
      available: true,
      detail: `${describeAdapter(report)} (${limits})`,
      ...(report.software && {
        autoSkips: true,
        reason: 'software adapter: exact but slower than wasm, so auto skips it; --backend webgpu uses it',
      }),
    };
  } catch (e) {
    return { backend: 'webgpu', package: 'webgpu (Dawn) + @tensorflow/tfjs-backend-webgpu', available: false, reason: (e as Error).message };
  }
}

async function probeWasm(): Promise<BackendStatus> {
  const simd = WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11]));
  try {
    const { initBackend, wasmProductsDetail } = await import('./index.ts');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    await initBackend('wasm');
    const n = wasm.getThreadsCount();
    const threads = `threads: ${n} (HILO_WASM_THREADS sets it; default every core, at most 8, or 1 beside a native BLAS)`;
    const detail = `SIMD: ${simd ? 'yes' : 'no (slower scalar build)'}; ${threads}; matrix products: ${wasmProductsDetail()}`;
    return { backend: 'wasm', package: '@tensorflow/tfjs-backend-wasm', available: true, detail };
  } catch (e) {
    return { backend: 'wasm', package: '@tensorflow/tfjs-backend-wasm', available: false, reason: `${(e as Error).message}; reinstall dependencies (npm ci)` };
  }
}

/** Every engine in `auto` order. */
export async function probeBackends(): Promise<{ backends: BackendStatus[]; auto: string }> {
  const backends = [
    ...(await probeTensorflow()),
    await probeWebgpu(),
    await probeWasm(),
    { backend: 'cpu', package: '@tensorflow/tfjs-backend-cpu', available: true, detail: 'plain JavaScript: always works, slowest' },
  ];
  const usable = (name: string) => backends.some((b) => b.backend === name && b.available && !b.autoSkips);
  return { backends, auto: AUTO_ORDER.find(usable) ?? 'none' };
}

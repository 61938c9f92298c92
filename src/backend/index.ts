/**
 * Choosing and initialising the tfjs engine. One code path runs on every backend; `auto`
 * takes the fastest that initialises: tensorflow (tfjs-node-gpu, then tfjs-node), webgpu
 * on a hardware adapter, wasm, cpu. Heavy modules are imported only here, and only when
 * asked for: src/cli/options.ts imports this file on the `hilo --help` path.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { HiloError, fieldError } from '../errors.ts';
import { BACKENDS, HOST_MEMORY_BACKENDS, type BackendName } from '../names.ts';
import { setDeviceLimit } from './limits.ts';

export { assertFitsDevice, deviceLimit, formatBytes, tensorBytes, type DeviceLimit } from './limits.ts';

export { BACKENDS, type BackendName };
/** The order `auto` tries. */
export const AUTO_ORDER = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
type Engine = (typeof AUTO_ORDER)[number];

export interface BackendInfo {
  /** The tfjs backend name in use (tensorflow, webgpu, wasm, cpu). */
  name: string;
  /** What exactly runs, e.g. the GPU adapter or the package that loaded. */
  detail: string;
  /** Why the faster ones were skipped, for `auto`. */
  skipped: Array<{ name: string; reason: string }>;
  /** Its tensors are host memory (names.ts HOST_MEMORY_BACKENDS): data-parallel replicas may split batches over the cores. */
  hostMemory: boolean;
}

const require = createRequire(import.meta.url);

/** How the wasm backend does matrix products, once initialised (for `hilo doctor`). */
let wasmProducts = '';
export const wasmProductsDetail = () => wasmProducts;
/** The native BLAS the wasm backend's products use, once initialised with one. */
let wasmBlas: import('./blas.ts').Blas | null = null;

/**
 * At most n threads for this thread's native BLAS products from now on (null: as many as it
 * has); nothing to do without one. Data-parallel replicas (src/train/replicas.ts) take 1.
 */
export function limitBlasThreads(n: number | null): void {
  wasmBlas?.limitThreads(n);
}

export interface InitOptions {
  /**
   * Kernels on one thread (wasm's pool and the native BLAS): for data-parallel replicas
   * (src/train/replicas.ts), where one replica per core is the parallelism.
   */
  singleThreaded?: boolean;
}

async function initWasm(tf: typeof TF, opts: InitOptions): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  wasm.setWasmPaths(`${dir}/dist/`);
  const { initThreadedWasm, wasmThreadCount } = await import('./wasm-threads.ts');
  const { loadBlas } = await import('./blas.ts');
  const found = loadBlas(process.env, { maxThreads: opts.singleThreaded ? 1 : undefined }); // a bad HILO_BLAS is an error, like a bad HILO_WASM_THREADS
  const setWasm = async () => {
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs refused to initialise the wasm backend');
  };
  // a bad HILO_WASM_THREADS is an error, not a silent fallback
  const wanted = opts.singleThreaded ? 1 : wasmThreadCount(process.env, found.blas !== null);
  let threads: number;
  let why = '';
  try {
    threads = await initThreadedWasm(tf, wanted, setWasm);
  } catch (e) {
    why = `; the threaded build failed (${(e as Error).message}), so one`;
    threads = await initThreadedWasm(tf, 1, setWasm);
  }
  const { guardWasmHeap } = await import('./wasm-heap.ts');
  guardWasmHeap(tf);
  const { useFastWasmMatMul } = await import('./wasm-matmul.ts');
  const { registerWasmFallbacks } = await import('./wasm-fallbacks.ts');
  const { useWasmExperts } = await import('./wasm-experts.ts');
  const { useWasmFrozenLinear } = await import('./wasm-frozen.ts');
  (await import('./host-router.ts')).useHostRouter('wasm');
  (await import('./placement.ts')).useHostValues();
  wasmBlas = found.blas;
  useFastWasmMatMul(tf, true, found.blas);
  useWasmExperts(tf, true, found.blas);
  useWasmFrozenLinear(tf, true, found.blas);
  registerWasmFallbacks(tf);
  // hilo's SIMD module imports the backend's memory; the threaded build's is shared, which it cannot
  const { memoryImportable, useSimdKernels } = await import('./wasm-simd.ts');
  useSimdKernels(tf, memoryImportable(tf.backend()));
  // the stored head's cross-entropy needs both the BLAS and the SIMD module's softmax kernels
  (await import('./wasm-head-nll.ts')).useWasmHeadNll(tf, memoryImportable(tf.backend()), found.blas);
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  wasmProducts = found.blas
    ? `native BLAS ${found.blas.detail} (HILO_BLAS)`
    : `XNNPACK, transposed ones through the untransposed kernel (no native BLAS: ${found.reason})`;
  return `tfjs-backend-wasm, ${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'} (HILO_WASM_THREADS${why}); matrix products: ${wasmProducts}`;
}

async function initCpu(tf: typeof TF): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs refused to initialise the cpu backend');
  (await import('./host-router.ts')).useHostRouter('cpu');
  (await import('./placement.ts')).useHostValues();
  return 'tfjs-backend-cpu (plain JavaScript, slowest)';
}

async function initTensorflowEngine(tf: typeof TF): Promise<string> {
  const { initTensorflow } = await import('./tensorflow.ts');
  return `libtensorflow via ${await initTensorflow(tf)}`;
}

/** webgpu for `auto` refuses a software adapter: lavapipe is exact but slower than wasm. */
let webgpuTried = false;

async function initWebgpuEngine(tf: typeof TF, explicit: boolean): Promise<string> {
  webgpuTried = true;
  const { initWebgpu } = await import('./webgpu.ts');
  return (await initWebgpu(tf, { allowSoftware: explicit })).detail;
}

async function initEngine(tf: typeof TF, engine: Engine, explicit: boolean, opts: InitOptions): Promise<string> {
  if (engine === 'webgpu') return initWebgpuEngine(tf, explicit);
  setDeviceLimit(null);
  if (engine === 'tensorflow') return initTensorflowEngine(tf);
  if (engine === 'wasm') return initWasm(tf, opts);
  return initCpu(tf);
}

/**
 * Initialise `name` (or the best available for `auto`) and make it the active tfjs backend.
 * An explicit name initialises exactly that engine or throws a HiloError saying why and what
 * to do. Call shutdownBackend() when done: a live WebGPU device keeps Node from exiting.
 */
export async function initBackend(name: string = 'auto', opts: InitOptions = {}): Promise<BackendInfo> {
  if (!(BACKENDS as readonly string[]).includes(name)) throw fieldError('--backend', name, BACKENDS);
  const tf = await import('@tensorflow/tfjs');
  const explicit = name !== 'auto';
  const order: readonly Engine[] = explicit ? [name as Engine] : AUTO_ORDER;
  const skipped: BackendInfo['skipped'] = [];
  for (const engine of order) {
    try {
      const detail = await initEngine(tf, engine, explicit, opts);
      return { name: tf.getBackend(), detail, skipped, hostMemory: HOST_MEMORY_BACKENDS.includes(tf.getBackend()) };
    } catch (e) {
      skipped.push({ name: engine, reason: (e as Error).message });
    }
  }
  if (explicit) throw new HiloError(`--backend ${name}: ${skipped[0].reason}. \`hilo doctor\` lists every backend's status.`);
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new HiloError(`no tfjs backend could be initialised (${why}); run \`hilo doctor\` for details`);
}

/** Release what the engine holds outside tfjs (the WebGPU device and Dawn), so Node can exit. */
export async function shutdownBackend(): Promise<void> {
  if (!webgpuTried) return; // nothing outside tfjs to release; keeps this free for CLI exits
  const { shutdownWebgpu } = await import('./webgpu.ts');
  await shutdownWebgpu(await import('@tensorflow/tfjs'));
}

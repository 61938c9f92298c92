/**
 * Every core for tfjs-backend-wasm under Node. The package ships a threaded SIMD build
 * (XNNPACK on a pthreadpool of Emscripten workers) but never uses it in Node (tfjs#3830), for
 * three reasons, each worked around here only while the backend initialises:
 *
 *  1. `WASM_HAS_MULTITHREAD_SUPPORT` is hard-wired to false under Node: the flag is set.
 *  2. The pthread workers are started from blob: URLs (the worker script, and the module
 *     factory it imports), which Node's Worker cannot load. Blobs made from strings are
 *     recorded as they are created; a Worker asked for such a URL runs the recorded script
 *     with `eval: true`, and its `load` message carries the factory's source (the package's
 *     wasm-out/tfjs-backend-wasm-threaded-simd.js) as text instead of a Blob.
 *  3. The pool is sized `min(threads, logical cores / 2)` (it assumes two hyper-threads per
 *     core): os.cpus() reports twice the wanted count while the module starts.
 *
 * Products only (XNNPACK's matmul, conv) run threaded; element-wise kernels stay on one
 * thread. Results are identical: XNNPACK splits output tiles, never a sum.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import workerThreads from 'node:worker_threads';
import type * as TF from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);
/** tfjs caps its pool at 8 workers (PTHREAD_POOL_SIZE in tfjs-backend-wasm's BUILD). */
export const MAX_WASM_THREADS = 8;
/** What the worker script checks before it imports the factory; rewritten to take text. */
const WORKER_IMPORT = 'if(typeof e.data.urlOrBlob=="string")';

/**
 * Threads for the wasm backend: HILO_WASM_THREADS if set (1 turns threading off), else every
 * logical core, at most 8; else 1 when `nativeBlas` does the matrix products (the only work
 * the pool speeds up, and its threads would compete with the BLAS's for the same cores).
 */
export function wasmThreadCount(env: NodeJS.ProcessEnv = process.env, nativeBlas = false): number {
  const raw = env.HILO_WASM_THREADS;
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS) {
      throw new Error(`HILO_WASM_THREADS=${raw}: must be a whole number from 1 to ${MAX_WASM_THREADS}`);
    }
    return n;
  }
  if (nativeBlas) return 1;
  return Math.max(1, Math.min(MAX_WASM_THREADS, os.availableParallelism?.() ?? os.cpus().length));
}

/** Scripts recorded from string Blobs, by object URL; kept for workers started later. */
const scriptsByUrl = new Map<string, string>();
const blobTexts = new WeakMap<Blob, string>();
let factorySource: string | undefined;

/** Worker that can start from a recorded blob: URL (see 2. above); anything else is unchanged. */
class BlobAwareWorker extends workerThreads.Worker {
  constructor(file: string | URL, options?: workerThreads.WorkerOptions) {
    const script = typeof file === 'string' ? scriptsByUrl.get(file) : undefined;
    if (script === undefined) {
      super(file, options);
      return;
    }
    if (!script.includes(WORKER_IMPORT)) throw new Error('tfjs-backend-wasm worker script has an unexpected shape (threads need tfjs 4.22)');
    const patched = script.replace(WORKER_IMPORT, `if(e.data.hiloFactorySource){(0,eval)(e.data.hiloFactorySource)}else ${WORKER_IMPORT}`);
    // A classic script: no execArgv, so a parent's --input-type=module or loaders never apply.
    super(patched, { ...options, eval: true, execArgv: [] });
  }

  /**
   * Emscripten refs a worker while it runs a pthread, but XNNPACK's pool threads run for the
   * life of the process: ref'd, they would keep Node from ever exiting. Work reaches them
   * through shared memory, not messages, so nothing waits on the event loop for them.
   */
  override ref(): void {}

  override postMessage(message: unknown, transfer?: readonly workerThreads.TransferListItem[]): void {
    const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
    if (m && m.cmd === 'load' && m.urlOrBlob instanceof Blob) {
      factorySource ??= fs.readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'), 'utf8');
      message = { ...m, urlOrBlob: undefined, hiloFactorySource: factorySource };
    }
    super.postMessage(message, transfer);
  }
}

/**
 * Run `init` (which calls tf.setBackend('wasm')) with the threaded build enabled for
 * `threads` threads, then put back what was patched. Returns the thread count the backend
 * reports. With threads = 1 the single-threaded build loads as tfjs would by default.
 */
export async function initThreadedWasm(tf: typeof TF, threads: number, init: () => Promise<void>): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const sharedMemory = typeof SharedArrayBuffer === 'function';
  if (threads <= 1 || !sharedMemory) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    await init();
    return 1;
  }
  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  const moduleExports = require('node:worker_threads') as typeof workerThreads;
  const OriginalWorker = moduleExports.Worker;
  class RecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (parts?.every((p) => typeof p === 'string')) blobTexts.set(this, (parts as string[]).join(''));
    }
  }
  try {
    globalThis.Blob = RecordingBlob;
    URL.createObjectURL = (blob: Blob) => {
      const url = originalCreateObjectURL(blob);
      const text = blobTexts.get(blob);
      if (text !== undefined) scriptsByUrl.set(url, text);
      return url;
    };
    // Emscripten copies worker_threads' Worker into global.Worker when its factory runs.
    moduleExports.Worker = BlobAwareWorker;
    const cpus = originalCpus();
    os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    await init();
  } finally {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    moduleExports.Worker = OriginalWorker;
    os.cpus = originalCpus;
  }
  return wasm.getThreadsCount();
}

/**
 * The wasm heap's one hard limit, made a clear error. tfjs-backend-wasm keeps every tensor in
 * one WebAssembly.Memory of at most 4 GiB; when malloc cannot grow it, malloc returns 0 and
 * tfjs writes the new tensor at address 0 regardless, over whatever lives there. What follows
 * is silent corruption, then a raw `RuntimeError: Aborted()` or a RangeError from a heap view
 * some kernels later. Checking malloc's result where tfjs calls it turns the first failed
 * allocation into a HiloError that says how full the heap is and what to change.
 */
import type * as TF from '@tensorflow/tfjs';
import { threadId } from 'node:worker_threads';
import { HiloError } from '../errors.ts';
import { WASM_HEAP_LIMIT } from './limits.ts';

interface WasmModule {
  _malloc(size: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
  hiloHeapGuard?: true;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** The wasm backend's module, or null on other backends. */
function wasmModule(tf: typeof TF): WasmModule | null {
  const w = (tf.backend() as unknown as { wasm?: WasmModule }).wasm;
  return w && typeof w._malloc === 'function' ? w : null;
}

/** Bytes the active wasm backend's heap has grown to (it never shrinks), or null elsewhere. */
export function wasmHeapBytes(tf: typeof TF): number | null {
  return wasmModule(tf)?.HEAPU8.buffer.byteLength ?? null;
}

/** Make a failed tensor allocation on the active wasm backend throw a HiloError (idempotent). */
export function guardWasmHeap(tf: typeof TF): void {
  const w = wasmModule(tf);
  if (!w || w.hiloHeapGuard) return;
  // emscripten's _malloc is a stub that replaces itself with the raw export on its first call
  w._free(w._malloc(8));
  const malloc = w._malloc;
  w._malloc = (size: number): number => {
    const ptr = malloc(size);
    if (ptr === 0 && size > 0) {
      throw new HiloError(
        `out of wasm heap: a ${gib(size)} tensor does not fit in a heap grown to ${gib(w.HEAPU8.buffer.byteLength)} ` +
          `(tfjs-backend-wasm's heap holds at most ${gib(WASM_HEAP_LIMIT)} per thread). Lower train.batch_size or ` +
          'data.max_length, set train.data_parallel=1, or use a smaller model; `hilo plan RECIPE` shows the memory estimate.',
      );
    }
    return ptr;
  };
  w.hiloHeapGuard = true;
  if (process.env.HILO_HEAP_TRACE) traceHeap(w);
}

/**
 * HILO_HEAP_TRACE=1: what a heap holds at its high-water mark. Every allocation tfjs makes from
 * JS is tagged with the hilo frames that made it; when the live bytes fall to half a new peak,
 * the peak's live bytes by tag go to stderr (a diagnostic for memory work, off by default).
 */
function traceHeap(w: WasmModule): void {
  const live = new Map<number, { size: number; tag: string }>();
  let bytes = 0;
  let peak = 0;
  let snapshot: Map<string, number> | null = null;
  Error.stackTraceLimit = 40; // past tfjs's own frames to the hilo code that called them
  const who = threadId === 0 ? 'main' : `worker ${threadId}`;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const tag = () => (new Error().stack ?? '').split('\n').filter((l) => l.includes('/src/') && !/tfjs|node_modules|wasm-heap\.ts/.test(l))
    .slice(0, 5).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/src\//, '(')).join(' < ');
  const malloc = w._malloc;
  const free = w._free;
  w._malloc = (size: number): number => {
    const ptr = malloc(size);
    live.set(ptr, { size, tag: tag() });
    bytes += size;
    if (bytes > peak) {
      peak = bytes;
      if (size >= 2 ** 20 || !snapshot) {
        snapshot = new Map();
        for (const a of live.values()) snapshot.set(a.tag, (snapshot.get(a.tag) ?? 0) + a.size);
      }
    }
    return ptr;
  };
  w._free = (ptr: number): void => {
    bytes -= live.get(ptr)?.size ?? 0;
    live.delete(ptr);
    free(ptr);
    if (snapshot && bytes < peak / 2) {
      const rows = [...snapshot].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([t, b]) => `  ${mib(b).padStart(10)}  ${t}`);
      process.stderr.write(`[heap ${who}] peak ${mib(peak)} live, heap ${mib(w.HEAPU8.buffer.byteLength)}; by where it was made:\n${rows.join('\n')}\n`);
      snapshot = null;
    }
  };
}

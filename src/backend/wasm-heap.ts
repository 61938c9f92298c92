/**
 * The wasm heap's one hard limit, made a clear error. tfjs-backend-wasm keeps every tensor in
 * one WebAssembly.Memory of at most 4 GiB; when malloc cannot grow it, malloc returns 0 and
 * tfjs writes the new tensor at address 0 regardless, over whatever lives there. What follows
 * is silent corruption, then a raw `RuntimeError: Aborted()` or a RangeError from a heap view
 * some kernels later. Checking malloc's result where tfjs calls it turns the first failed
 * allocation into a HiloError that says how full the heap is and what to change.
 */
import type * as TF from '@tensorflow/tfjs';
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
}

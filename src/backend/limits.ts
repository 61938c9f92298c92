/**
 * The largest tensor the active engine can hold in one piece. WebGPU binds each tensor as one
 * storage buffer, and a buffer above the adapter's maxStorageBufferBindingSize is not refused:
 * Dawn logs a validation error and the kernel reads zeros (a 152 MiB `sum` returned 6e7 for
 * 8e7). So hilo checks sizes itself and refuses, naming the tensor, before anything runs.
 * No tfjs import here: src/cli/options.ts reaches this file through index.ts.
 */
import { HiloError } from '../errors.ts';

/** tfjs-backend-wasm's WebAssembly.Memory maximum: 65536 pages of 64 KiB (wasm32). */
export const WASM_HEAP_LIMIT = 4 * 2 ** 30;

export interface DeviceLimit {
  /** Engine the limit belongs to, e.g. "webgpu". */
  backend: string;
  /** Device in words, e.g. "llvmpipe: Mesa 25.0.7 (software)". */
  device: string;
  /** Largest tensor in bytes: min(maxStorageBufferBindingSize, maxBufferSize). */
  maxTensorBytes: number;
}

let active: DeviceLimit | null = null;

/** Called by initBackend: the new engine's limit, or null for engines without one. */
export function setDeviceLimit(limit: DeviceLimit | null): void {
  active = limit;
}

export function deviceLimit(): DeviceLimit | null {
  return active;
}

/** Bytes per element as the GPU stores it (bool is widened to i32 there). */
export function bytesPerElement(dtype: string): number {
  if (dtype === 'complex64') return 8;
  if (dtype === 'string') return 0;
  return 4;
}

export function tensorBytes(shape: readonly number[], dtype: string): number {
  return shape.reduce((n, d) => n * d, 1) * bytesPerElement(dtype);
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/**
 * Throw a HiloError when a tensor of `shape`/`dtype` cannot be held by the active device.
 * `what` names it for the user, e.g. `model.embed_tokens.weight`. A no-op on engines without
 * a per-tensor limit (wasm, cpu, tensorflow).
 */
export function assertFitsDevice(shape: readonly number[], dtype: string, what: string): void {
  if (!active) return;
  const bytes = tensorBytes(shape, dtype);
  if (bytes <= active.maxTensorBytes) return;
  throw new HiloError(
    `${what}: [${shape.join(', ')}] ${dtype} is ${formatBytes(bytes)}, above the largest tensor ` +
      `${active.backend} can bind on ${active.device} (${formatBytes(active.maxTensorBytes)}); ` +
      `results would be silently wrong, so hilo stops here. Use --backend wasm (or cpu), ` +
      `a smaller model, or a GPU whose maxStorageBufferBindingSize is larger (\`hilo doctor\` shows it).`,
  );
}

/**
 * WebGPU in Node: Dawn (the `webgpu` npm package) under @tensorflow/tfjs-backend-webgpu.
 * hilo requests the device itself, so that it
 *  - asks for the adapter's full limits (maxStorageBufferBindingSize, maxBufferSize) and
 *    records them for assertFitsDevice (larger tensors would silently read as zeros);
 *  - catches Dawn's validation errors (instead of letting Dawn print them) and turns them
 *    into an exception at the next read, so wrong numbers never reach the caller;
 *  - can destroy the device and drop the Dawn instance on shutdown: a live `create()`
 *    keeps Node's event loop running forever;
 *  - spends less CPU per kernel, which is what bounds a training step on a real GPU (host time
 *    per kernel, not the kernels, dominated the H200 profile): host values go up with
 *    queue.writeBuffer instead of a new mapped buffer per tensor (createBuffer was a large
 *    share of a step's CPU time), and commands are submitted in
 *    batches of `submitBatchSize()` kernels instead of tfjs's browser default of 15.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { HiloError } from '../errors.ts';
import { frozenLinearOp } from '../ops/frozen-linear.ts';
import { assertFitsDevice, formatBytes, setDeviceLimit, type DeviceLimit } from './limits.ts';
import { withStderrSilenced } from './stderr.ts';
import { installAdamW } from './webgpu-adamw.ts';
import { installAttention } from './webgpu-attention.ts';
import { installFrozenLinear } from './webgpu-frozen.ts';
import { installLayerNorm } from './webgpu-layer-norm.ts';
import { installRmsNorm } from './webgpu-norm.ts';
import { installRouterKernels } from './webgpu-router.ts';
import { installTokenNll } from './webgpu-token-nll.ts';
import { installIntTranspose } from './webgpu-transpose.ts';

export const WEBGPU_APT =
  'apt-get install -y mesa-vulkan-drivers  (Debian 12: add bookworm-backports and use -t bookworm-backports; see scripts/setup-webgpu.sh)';

export interface AdapterReport {
  /** e.g. "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1" */
  description: string;
  vendor: string;
  architecture: string;
  /** True for software adapters (Mesa lavapipe): correct but slower than wasm. */
  software: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  /**
   * The adapter offers f16 arithmetic in shaders. hilo's 2-byte frozen weights do not need it
   * (they are widened with core WGSL's unpack2x16float and accumulated in f32: webgpu-frozen.ts).
   */
  shaderF16: boolean;
}

/** Mesa's Vulkan loader wants a runtime dir; containers and CI often have none. */
function ensureRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  process.env.XDG_RUNTIME_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-xdg-'));
  fs.chmodSync(process.env.XDG_RUNTIME_DIR, 0o700);
}

/** Where the Vulkan loader looks for driver manifests, and where containers mount NVIDIA's. */
export const VULKAN_ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
export const MOUNTED_ICD_DIRS = ['/usr/local/nvidia/share/vulkan/icd.d'];

function manifests(dirs: string[]): string[] {
  return dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => path.join(d, f)) : []));
}

export function noAdapterReason(icdDirs = VULKAN_ICD_DIRS, mountedDirs = MOUNTED_ICD_DIRS, env: NodeJS.ProcessEnv = process.env): string {
  const icds = manifests(icdDirs);
  const found = icds.length ? `Vulkan drivers present: ${icds.join(', ')}, but none gave an adapter` : 'no Vulkan driver (ICD) is installed';
  // A container's GPU driver mount has the manifest, but the loader does not look there.
  const mounted = icds.length || env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES ? [] : manifests(mountedDirs);
  const hint = mounted.length ? `. The driver's manifest is at ${mounted[0]}, where the Vulkan loader does not look: set VK_DRIVER_FILES=${mounted[0]}` : '';
  return `Dawn found no WebGPU adapter (${found})${hint}. For a GPU install its vendor's Vulkan driver ` +
    `(NVIDIA: the driver's libnvidia-gl / Vulkan ICD, and the Vulkan loader libvulkan1); for a software GPU, slow but exact: ${WEBGPU_APT}`;
}

export interface OpenAdapter {
  gpu: GPU;
  adapter: GPUAdapter;
  report: AdapterReport;
}

/** Load Dawn and ask it for the best adapter; throws a HiloError saying what to install. */
export async function openAdapter(): Promise<OpenAdapter> {
  ensureRuntimeDir();
  let dawn: typeof import('webgpu');
  try {
    dawn = await import('webgpu');
  } catch (e) {
    throw new HiloError(
      `the webgpu package (Dawn) did not load on ${process.platform}-${process.arch}: ${(e as Error).message}. ` +
        'Reinstall dependencies (npm ci); Dawn ships prebuilt for linux/darwin/win32 x64 and arm64.',
    );
  }
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const pending = withStderrSilenced(() => gpu.requestAdapter({ powerPreference: 'high-performance' }));
  const adapter = await pending;
  if (!adapter) throw new HiloError(noAdapterReason());
  const info = adapter.info;
  const report: AdapterReport = {
    description: info.description || info.device || info.vendor || 'unknown adapter',
    vendor: info.vendor,
    architecture: info.architecture,
    software: info.isFallbackAdapter || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(info.description),
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    shaderF16: adapter.features.has('shader-f16'),
  };
  return { gpu, adapter, report };
}

export function describeAdapter(r: AdapterReport): string {
  return `${r.description}${r.software ? ' (software)' : ''}; largest tensor ${formatBytes(Math.min(r.maxStorageBufferBindingSize, r.maxBufferSize))}`;
}

interface Session {
  gpu: GPU;
  device: GPUDevice;
  report: AdapterReport;
  limit: DeviceLimit;
  /** Dawn validation errors not yet reported to the caller. */
  errors: string[];
}
let session: Session | undefined;

/** tfjs-backend-webgpu submits its command buffer every this many kernels (its own default is 15). */
export const DEFAULT_SUBMIT_BATCH = 128;
export const MAX_SUBMIT_BATCH = 4096;

/** Kernels per queue submit: HILO_WEBGPU_SUBMIT_BATCH, else DEFAULT_SUBMIT_BATCH. */
export function submitBatchSize(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.HILO_WEBGPU_SUBMIT_BATCH;
  if (raw === undefined || raw === '') return DEFAULT_SUBMIT_BATCH;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_SUBMIT_BATCH) {
    throw new HiloError(`HILO_WEBGPU_SUBMIT_BATCH=${raw}: must be a whole number from 1 to ${MAX_SUBMIT_BATCH} (kernels per GPU queue submit; default ${DEFAULT_SUBMIT_BATCH})`);
  }
  return n;
}

/** The part of tfjs-backend-webgpu's backend that uploadValues touches. */
interface UploadTarget {
  tensorMap: { get(dataId: object): { dtype: TF.DataType; shape: number[]; values: TF.backend_util.BackendValues | null; resource: unknown } };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
  queue: GPUQueue;
}

/**
 * Put a tensor's host values into a pooled GPU buffer with queue.writeBuffer; false when there is
 * nothing to do here (already on the GPU, no host values, or empty), for tfjs's own path.
 * tfjs instead takes a buffer mapped at creation, or, when the pool hands back a used one, a new
 * mapped staging buffer and a copy: a GPUDevice.createBuffer per upload either way. writeBuffer
 * lands before the commands of the next submit; a pooled buffer is never referenced by commands
 * not yet submitted (tfjs returns a buffer to the pool only once they are), which is the same
 * reasoning tfjs relies on for its uniform buffers.
 */
export function uploadValues(b: UploadTarget, dataId: object): boolean {
  const d = b.tensorMap.get(dataId);
  if (d.resource != null || d.values == null) return false;
  const n = d.shape.reduce((a, x) => a * x, 1);
  if (n === 0) return false;
  const v = d.values as TF.TypedArray;
  const words = d.dtype === 'float32' ? (v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>))
    : d.dtype === 'int32' || d.dtype === 'bool' ? (v instanceof Int32Array ? v : Int32Array.from(v as ArrayLike<number>))
      : null;
  if (words === null || words.length !== n) return false;
  const buffer = b.bufferManager.acquireBuffer(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
  b.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength);
  d.values = null; // as tfjs: once uploaded, the values are not kept on the host
  d.resource = buffer;
  return true;
}

function throwIfGpuFailed(s: Session): void {
  if (!s.errors.length) return;
  const first = s.errors[0].split('\n')[0];
  const n = s.errors.length;
  s.errors.length = 0;
  throw new HiloError(
    `webgpu: the GPU rejected ${n} command(s) (first: ${first}); the results are invalid. ` +
      'Re-run with HILO_DEBUG=1 for details, or use --backend wasm.',
  );
}

/** Request the device with the adapter's own limits and make `webgpu` the active tfjs backend. */
export async function initWebgpu(
  tf: typeof TF,
  opts: { allowSoftware: boolean } = { allowSoftware: true },
): Promise<{ detail: string; report: AdapterReport }> {
  if (session) {
    if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs refused to re-activate webgpu');
    setDeviceLimit(session.limit);
    return { detail: describeAdapter(session.report), report: session.report };
  }
  const submitBatch = submitBatchSize(); // a bad HILO_WEBGPU_SUBMIT_BATCH fails before the GPU is opened
  const { gpu, adapter, report } = await openAdapter();
  if (report.software && !opts.allowSoftware) {
    throw new HiloError(
      `only a software adapter (${report.description}): exact but slower than wasm, so auto skips it; ` +
        'use --backend webgpu to run on it anyway',
    );
  }
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
  const limit: DeviceLimit = {
    backend: 'webgpu',
    device: report.description,
    maxTensorBytes: Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize),
  };
  const s: Session = { gpu, device, report, limit, errors: [] };
  device.addEventListener('uncapturederror', (ev) => {
    const e = ev as GPUUncapturedErrorEvent;
    if (!process.env.HILO_DEBUG) e.preventDefault(); // preventDefault stops Dawn printing it
    s.errors.push(e.error.message);
  });

  // tfjs-backend-webgpu registers its kernels (and a default factory, when navigator.gpu exists) on import.
  const g = globalThis as { navigator?: { gpu?: GPU } };
  g.navigator ??= {};
  g.navigator.gpu = gpu;
  const mod = await import('@tensorflow/tfjs-backend-webgpu');
  installIntTranspose(tf, mod.webgpu_util);
  installAdamW(tf, mod.webgpu_util);
  installRouterKernels(tf, mod.webgpu_util);
  installRmsNorm(tf, mod.webgpu_util);
  installLayerNorm(tf, mod.webgpu_util);
  installTokenNll(tf, mod.webgpu_util);
  installAttention(tf, mod.webgpu_util);
  installFrozenLinear(tf);

  class GuardedWebGPUBackend extends mod.WebGPUBackend {
    override write(...args: Parameters<TF.KernelBackend['write']>) {
      assertFitsDevice(args[1], args[2], 'a tensor');
      return super.write(...args);
    }
    override runWebGPUProgram(...args: Parameters<InstanceType<typeof mod.WebGPUBackend>['runWebGPUProgram']>) {
      const [program, inputs, dtype] = args;
      for (const x of inputs) assertFitsDevice(x.shape, x.dtype, `an input of ${program.shaderKey}`);
      assertFitsDevice(program.outputShape, dtype, `the output of ${program.shaderKey}`);
      return super.runWebGPUProgram(...args);
    }
    override async read(dataId: object) {
      const values = await super.read(dataId);
      throwIfGpuFailed(s);
      return values;
    }
    override uploadToGPU(dataId: object) {
      if (!uploadValues(this as unknown as UploadTarget, dataId)) super.uploadToGPU(dataId);
    }
    override readSync(dataId: object) {
      try {
        return super.readSync(dataId);
      } catch (e) {
        if (!(e instanceof ReferenceError)) throw e;
        // tfjs reads GPU buffers synchronously through OffscreenCanvas, which Node lacks.
        throw new HiloError('webgpu in Node cannot read GPU tensors synchronously (dataSync/arraySync); use `await t.data()` / `await t.array()`');
      }
    }
  }
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', submitBatch);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new GuardedWebGPUBackend(device, adapter.info), 3);
  session = s;
  setDeviceLimit(limit);
  if (!(await tf.setBackend('webgpu'))) {
    await shutdownWebgpu(tf);
    throw new Error('tfjs could not create the webgpu backend on the device');
  }
  return { detail: describeAdapter(report), report };
}

/** Free GPU memory, destroy the device and drop Dawn, so the process can exit. */
export async function shutdownWebgpu(tf: typeof TF): Promise<void> {
  if (!session) return;
  const s = session;
  session = undefined;
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  frozenLinearOp.register('webgpu', null);
  s.device.destroy();
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (g.navigator?.gpu === s.gpu) delete g.navigator.gpu;
  setDeviceLimit(null);
}

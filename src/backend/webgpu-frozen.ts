/**
 * The frozen linear op (src/ops/frozen-linear.ts) on webgpu, for weights of any size. A stored
 * matrix S [R, C] goes to the GPU once, in row blocks that each fit one storage binding
 * (maxStorageBufferBindingSize: a Qwen2.5-0.5B embedding, 151936 x 896 f32, is 545 MB; one
 * lavapipe binding is 128 MiB, and a larger one is not refused by Dawn but reads as zeros), in
 * the checkpoint's own dtype: float32 as it is, bfloat16 and float16 as 2 bytes a value, two to an
 * i32 word, widened in the shader (unpack2x16float is core WGSL: no `shader-f16` needed), with
 * float32 accumulation. The activations and the product are float32 tensors.
 *
 * With a block S[r0:r1] of the stored rows, a product is, as in backend/wasm-frozen.ts, either
 *   output columns: 'out-in' forward  y[:, r0:r1] = x·S[r0:r1]ᵀ,  'in-out' backward dx[:, r0:r1] = dy·S[r0:r1]ᵀ
 *                   (one program a block, the blocks' columns concatenated), or
 *   input columns:  'out-in' backward dx += dy[:, r0:r1]·S[r0:r1],  'in-out' forward  y += x[:, r0:r1]·S[r0:r1]
 *                   (each block's program adds the previous partial sum).
 * So an LM head tied to a 545 MB embedding is several products of bounded blocks, and its logits
 * come a chunk of rows at a time already (src/ops/cross-entropy.ts).
 *
 * The device copies are backend data, not tfjs tensors (they do not count in tf.memory()'s
 * numTensors, so a leak test sees only what a product leaves): made at a matrix's first product,
 * freed with releaseOnDevice, or when the matrix itself is garbage-collected.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { HiloError } from '../errors.ts';
import { frozenLinearOp } from '../ops/frozen-linear.ts';
import { bytesPerValue, type StoredMatrix } from '../ops/stored.ts';
import { deviceLimit, formatBytes } from './limits.ts';
import { i32 } from './webgpu-programs.ts';
import { fromAttrs, toAttrs } from './kernel-attrs.ts';

export const FROZEN_LINEAR_WEBGPU = 'HiloFrozenLinear';

/**
 * HILO_WEBGPU_BLOCK_BYTES: the largest block of a stored matrix in bytes, below the device's own
 * limit; for tests (several blocks from a small matrix) and for trying block sizes on a GPU.
 */
export const BLOCK_BYTES_ENV = 'HILO_WEBGPU_BLOCK_BYTES';

/** Bytes a block of a stored matrix may take: the binding limit, or less by HILO_WEBGPU_BLOCK_BYTES. */
export function blockBytes(env: NodeJS.ProcessEnv = process.env, deviceBytes = deviceLimit()?.maxTensorBytes ?? Infinity): number {
  const raw = env[BLOCK_BYTES_ENV]?.trim();
  if (!raw) return deviceBytes;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 4) throw new HiloError(`${BLOCK_BYTES_ENV}=${raw}: expected a whole number of bytes >= 4 (the largest block of a frozen weight on the GPU; default the device's binding limit)`);
  return Math.min(n, deviceBytes);
}

/** Rows of `m` a block holds: as many as `bytes` allows, at least one (a row above the limit is an error). */
export function blockRows(m: StoredMatrix, bytes: number): number {
  const rowBytes = m.cols * bytesPerValue(m.dtype);
  // two-byte values go in i32 words: an odd count rounds up by one half
  const rows = Math.floor((bytes - 2) / rowBytes);
  if (rows < 1) {
    throw new HiloError(
      `a frozen weight [${m.rows}, ${m.cols}] ${m.dtype}: one row is ${formatBytes(rowBytes)}, above the largest block the GPU binds (${formatBytes(bytes)}); ` +
        `use --backend wasm, or unset ${BLOCK_BYTES_ENV} if it is set`,
    );
  }
  return Math.min(m.rows, rows);
}

interface Block {
  r0: number;
  r1: number;
  info: TF.TensorInfo;
}
interface OnDevice {
  backend: WebGPUBackend;
  blocks: Block[];
}

const onDevice = new WeakMap<StoredMatrix, OnDevice>();
/** A matrix collected before its copies were released: free them, if their backend still lives. */
const collected = new FinalizationRegistry<OnDevice>((d) => {
  try {
    free(d);
  } catch {
    // its backend was removed (shutdownWebgpu): the device and its buffers are gone already
  }
});

function free(d: OnDevice): void {
  const blocks = d.blocks;
  d.blocks = [];
  for (const b of blocks) d.backend.disposeData(b.info.dataId, true);
}

/** Block `r0..r1` of `m` as a flat float32 tensor, or its 2-byte values two to an int32 word. */
function upload(backend: WebGPUBackend, m: StoredMatrix, r0: number, r1: number): TF.TensorInfo {
  const n = (r1 - r0) * m.cols;
  if (m.dtype === 'float32') {
    return backend.makeTensorInfo([n], 'float32', new Float32Array(m.bytes, 4 * r0 * m.cols, n).slice());
  }
  const halves = new Uint16Array(n + (n & 1)); // a copy: the block may start at an odd value
  halves.set(new Uint16Array(m.bytes, 2 * r0 * m.cols, n));
  return backend.makeTensorInfo([halves.length / 2], 'int32', new Int32Array(halves.buffer));
}

/** The device copies of `m` for `backend`, made on first use. */
function blocksOf(backend: WebGPUBackend, m: StoredMatrix): Block[] {
  const had = onDevice.get(m);
  if (had && had.backend === backend && had.blocks.length) return had.blocks;
  if (had?.backend === backend) releaseOnDevice(m);
  else if (had) {
    onDevice.delete(m); // a removed backend's copies: they went with its device (shutdownWebgpu)
    collected.unregister(m);
  }
  const step = blockRows(m, blockBytes());
  const blocks: Block[] = [];
  for (let r0 = 0; r0 < m.rows; r0 += step) {
    const r1 = Math.min(m.rows, r0 + step);
    blocks.push({ r0, r1, info: upload(backend, m, r0, r1) });
  }
  const d: OnDevice = { backend, blocks };
  onDevice.set(m, d);
  collected.register(m, d, m);
  return blocks;
}

/** Free the GPU copies of `m` (the next product makes them again). */
export function releaseOnDevice(m: StoredMatrix): void {
  const d = onDevice.get(m);
  if (!d) return;
  onDevice.delete(m);
  collected.unregister(m);
  free(d);
}

/** How many blocks `m` is held in on the GPU (0: none yet): for tests and `hilo doctor`. */
export function blocksOnDevice(m: StoredMatrix): number {
  return onDevice.get(m)?.blocks.length ?? 0;
}

/** Value `f` (flat, row-major) of a block, as f32, for each stored dtype. */
const READ_W: Record<StoredMatrix['dtype'], string> = {
  float32: 'return W[f];',
  float16: 'let u = bitcast<u32>(W[f >> 1]); return unpack2x16float(u)[f & 1];',
  // bfloat16 is a float32's top half: the low half of a word moves up, the high half stays
  bfloat16: 'let u = bitcast<u32>(W[f >> 1]); return bitcast<f32>(select(u & 0xffff0000u, u << 16u, (f & 1) == 0));',
};

const TILE = 32; // output tile of a workgroup: TILE x TILE, 4 x 4 a thread

/**
 * out [M, J] = A[:, off:off+K] · B (+ P), B (k, j) = S[j, k] (`trans`, output columns) or S[k, j]
 * of a block S [rows, cols] held in W. Tiled: a workgroup of 8 x 8 threads makes a 32 x 32 tile
 * of `out`, stepping through K in tiles of 32 staged in workgroup memory.
 */
class BlockProductProgram implements WebGPUProgram {
  variableNames: string[];
  uniforms = 'M : i32, K : i32, J : i32, aStride : i32, aOffset : i32, cols : i32,';
  workgroupSize: [number, number, number] = [8, 8, 1];
  outputShape: number[];
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  shaderKey: string;

  constructor(M: number, J: number, private readonly dtype: StoredMatrix['dtype'], private readonly trans: boolean, private readonly accumulate: boolean) {
    this.variableNames = accumulate ? ['A', 'W', 'P'] : ['A', 'W'];
    this.outputShape = [M, J];
    this.dispatch = [Math.ceil(J / TILE), Math.ceil(M / TILE), 1];
    this.shaderKey = `hilo_frozen_${dtype}_${trans ? 't' : 'n'}_${accumulate ? 'acc' : 'set'}`;
  }

  getUserCode(): string {
    const bIndex = this.trans ? 'j * uniforms.cols + k' : 'k * uniforms.cols + j';
    return `
      var<workgroup> tileA : array<array<f32, ${TILE}>, ${TILE}>; // [m][k]
      var<workgroup> tileB : array<array<f32, ${TILE}>, ${TILE}>; // [k][j]
      fn readW(f : i32) -> f32 { ${READ_W[this.dtype]} }
      fn readA(m : i32, k : i32) -> f32 {
        if (m < uniforms.M && k < uniforms.K) { return A[m * uniforms.aStride + uniforms.aOffset + k]; }
        return 0.0;
      }
      fn readB(k : i32, j : i32) -> f32 {
        if (k < uniforms.K && j < uniforms.J) { return readW(${bIndex}); }
        return 0.0;
      }
      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let li = i32(localIndex);
        let m0 = i32(workgroupId.y) * ${TILE};
        let j0 = i32(workgroupId.x) * ${TILE};
        var acc : array<array<f32, 4>, 4>;
        for (var k0 = 0; k0 < uniforms.K; k0 += ${TILE}) {
          for (var i = 0; i < ${(TILE * TILE) / 64}; i++) {
            let e = li + i * 64;
            let r = e / ${TILE};
            let c = e % ${TILE};
            tileA[r][c] = readA(m0 + r, k0 + c);
            tileB[r][c] = readB(k0 + r, j0 + c);
          }
          workgroupBarrier();
          for (var k = 0; k < ${TILE}; k++) {
            var b : array<f32, 4>;
            for (var q = 0; q < 4; q++) { b[q] = tileB[k][tx * 4 + q]; }
            for (var p = 0; p < 4; p++) {
              let a = tileA[ty * 4 + p][k];
              for (var q = 0; q < 4; q++) { acc[p][q] += a * b[q]; }
            }
          }
          workgroupBarrier();
        }
        for (var p = 0; p < 4; p++) {
          let m = m0 + ty * 4 + p;
          if (m >= uniforms.M) { break; }
          for (var q = 0; q < 4; q++) {
            let j = j0 + tx * 4 + q;
            if (j < uniforms.J) {
              let o = m * uniforms.J + j;
              setOutputAtIndex(o, acc[p][q]${this.accumulate ? ' + P[o]' : ''});
            }
          }
        }
      }
    `;
  }
}

interface FrozenAttrs {
  w: StoredMatrix;
  back: boolean;
}

function product(backend: WebGPUBackend, a: TF.TensorInfo, w: StoredMatrix, back: boolean, concat: TF.KernelFunc): TF.TensorInfo {
  const [N, A] = a.shape;
  const [inF, outF] = w.layout === 'out-in' ? [w.cols, w.rows] : [w.rows, w.cols];
  if (A !== (back ? outF : inF)) throw new Error(`${FROZEN_LINEAR_WEBGPU}: input has ${A} columns for a [${inF}, ${outF}] weight${back ? ' (backward)' : ''}`);
  const C = back ? inF : outF;
  if (N === 0 || C === 0 || A === 0) return backend.makeTensorInfo([N, C], 'float32', new Float32Array(N * C)); // nothing to multiply: zeros
  const blocks = blocksOf(backend, w);
  const outputColumns = (w.layout === 'out-in') !== back;
  const dims = (b: Block) => [i32(N), i32(outputColumns ? w.cols : b.r1 - b.r0), i32(outputColumns ? b.r1 - b.r0 : w.cols), i32(A), i32(outputColumns ? 0 : b.r0), i32(w.cols)];
  if (outputColumns) {
    const parts = blocks.map((b) => backend.runWebGPUProgram(new BlockProductProgram(N, b.r1 - b.r0, w.dtype, true, false), [a, b.info], 'float32', dims(b)));
    if (parts.length === 1) return parts[0];
    // tfjs's Concat takes its inputs as an array (it splits past the storage-buffer limit itself)
    const out = concat({ inputs: parts as unknown as TF.NamedTensorInfoMap, backend, attrs: { axis: 1 } }) as TF.TensorInfo;
    for (const p of parts) backend.disposeData(p.dataId);
    return out;
  }
  let sum: TF.TensorInfo | null = null;
  for (const b of blocks) {
    const inputs = sum ? [a, b.info, sum] : [a, b.info];
    const next: TF.TensorInfo = backend.runWebGPUProgram(new BlockProductProgram(N, w.cols, w.dtype, false, sum !== null), inputs, 'float32', dims(b));
    if (sum) backend.disposeData(sum.dataId);
    sum = next;
  }
  return sum!;
}

let installed = false;

/** Register the webgpu frozen linear (kernel and op), once per process. */
export function installFrozenLinear(tf: typeof TF): void {
  if (!installed) {
    const concat = tf.getKernel('Concat', 'webgpu')?.kernelFunc;
    if (!concat) throw new Error('tfjs-backend-webgpu registered no Concat kernel');
    tf.registerKernel({
      kernelName: FROZEN_LINEAR_WEBGPU,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { w, back } = fromAttrs<FrozenAttrs>(attrs);
        return product(backend as WebGPUBackend, (inputs as { a: TF.TensorInfo }).a, w, back, concat);
      },
    });
    installed = true;
  }
  const run = (a: TF.Tensor2D, w: StoredMatrix, back: boolean) =>
    tf.engine().runKernel(FROZEN_LINEAR_WEBGPU, { a }, toAttrs({ w, back })) as TF.Tensor2D;
  frozenLinearOp.register('webgpu', { forward: (x, w) => run(x, w, false), backward: (dy, w) => run(dy, w, true) });
}

/**
 * A frozen weight matrix held outside every tensor engine: its bytes in a SharedArrayBuffer, in
 * the checkpoint's own dtype (bfloat16 and float16 stay 2 bytes a value). Outside tfjs-wasm's
 * heap, a model is not bounded by the heap's 4 GiB, and data-parallel replicas (worker threads)
 * receive the same memory instead of a copy each. Products read it in row blocks converted to
 * float32 (src/ops/frozen-linear.ts); the conversions here are exact (bf16 and f16 are floats).
 */
import { HiloError } from '../errors.ts';
import { floatsToBf16, floatToHalf, halfToFloat } from './float16.ts';

/** HF's names for the dtypes a frozen weight may be held in (recipe model.dtype). */
export const STORED_DTYPES = ['bfloat16', 'float16', 'float32'] as const;
export type StoredDtype = (typeof STORED_DTYPES)[number];

export interface StoredMatrix {
  dtype: StoredDtype;
  /** Shape as stored (the checkpoint's own layout). */
  rows: number;
  cols: number;
  /**
   * How the stored matrix S maps to the linear map y = x·K with K [in, out]:
   * 'out-in' S = Kᵀ (HF nn.Linear [out, in], an embedding [vocab, hidden] as a tied head);
   * 'in-out' S = K (GPT-2 Conv1D).
   */
  layout: 'out-in' | 'in-out';
  /** rows·cols values, row-major, little-endian. */
  bytes: SharedArrayBuffer;
}

export const bytesPerValue = (dtype: StoredDtype): number => (dtype === 'float32' ? 4 : 2);

/** [in, out] of the linear map a stored matrix holds. */
export function linearShape(m: StoredMatrix): [number, number] {
  return m.layout === 'out-in' ? [m.cols, m.rows] : [m.rows, m.cols];
}

let halfTable: Float32Array | null = null;
/** Every float16 bit pattern's float32 value: a table lookup beats decoding the bits (docs/performance.md). */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Rows r0..r1 of `m` as float32 into `out` (at least (r1 - r0)·cols long). */
export function decodeRows(m: StoredMatrix, r0: number, r1: number, out: Float32Array): void {
  const n = (r1 - r0) * m.cols;
  if (m.dtype === 'float32') {
    out.set(new Float32Array(m.bytes, 4 * r0 * m.cols, n));
    return;
  }
  const src = new Uint16Array(m.bytes, 2 * r0 * m.cols, n);
  if (m.dtype === 'bfloat16') {
    const bits = new Uint32Array(out.buffer, out.byteOffset, n); // bf16 is a float32's top half
    const first = 2 * r0 * m.cols;
    if (first % 4 === 0) {
      // two values a load (little-endian: the first in the low half): a third less time than one
      const pairs = new Uint32Array(m.bytes, first, n >>> 1);
      for (let i = 0, j = 0; i < pairs.length; i++, j += 2) {
        const v = pairs[i];
        bits[j] = v << 16;
        bits[j + 1] = v & 0xffff0000;
      }
      if (n & 1) bits[n - 1] = src[n - 1] << 16;
      return;
    }
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
    return;
  }
  const table = halves();
  for (let i = 0; i < n; i++) out[i] = table[src[i]];
}

/** The whole matrix as float32, in its stored layout. */
export function decodeAll(m: StoredMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  decodeRows(m, 0, m.rows, out);
  return out;
}

/** Float32 values held as `dtype` in a new shared buffer, rounded to nearest even as torch does. */
export function encodeShared(data: Float32Array, dtype: StoredDtype): SharedArrayBuffer {
  const bytes = new SharedArrayBuffer(data.length * bytesPerValue(dtype));
  if (dtype === 'float32') new Float32Array(bytes).set(data);
  else if (dtype === 'bfloat16') floatsToBf16(data, new Uint16Array(bytes)); // one pass over the bits, no per-value arrays
  else {
    const out = new Uint16Array(bytes);
    for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]);
  }
  return bytes;
}

/** Values of `data` as `dtype` would hold them (float32 again): what a stored copy multiplies by. */
export function roundTo(data: Float32Array, dtype: StoredDtype): Float32Array {
  if (dtype === 'float32') return data;
  const m: StoredMatrix = { dtype, rows: 1, cols: data.length, layout: 'in-out', bytes: encodeShared(data, dtype) };
  return decodeAll(m);
}

/**
 * Rows `ids` of `m` ([vocab, hidden] as stored), float32 [ids.length, hidden]: an embedding
 * lookup from the stored bytes. An id outside [0, rows) is an error naming it.
 */
export function gatherRows(m: StoredMatrix, ids: ArrayLike<number>): Float32Array {
  const H = m.cols;
  const out = new Float32Array(ids.length * H);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < m.rows)) throw new HiloError(`token id ${id} at position ${i} is outside the vocabulary [0, ${m.rows})`);
    decodeRows(m, id, id + 1, out.subarray(i * H, (i + 1) * H));
  }
  return out;
}

/**
 * The spectrum alpha-hill fits (eigenvalues of a weight's smaller Gram matrix, float64,
 * ascending): through LAPACK where the machine has it (src/backend/lapack.ts), else through the
 * JS eigensolver of hill.ts. Both build the Gram matrix in float64 from the stored values, so the
 * two agree to float64 round-off (test/probe/spectrum.test.ts).
 *
 * Weights stored as bfloat16 or float16 may take the float32 Gram product instead (half the
 * time of the float64 one at real size, and no widened copy): a product of two values with 8
 * (bf16) or 11 (f16) significant bits is exact in float32, so the only error is float32
 * accumulation, which is bounded by summing at most GRAM32_BLOCK products in float32 and adding
 * the block sums in float64. The eigensolver stays float64. Float32 checkpoints keep the float64
 * product: their products are not exact in float32.
 */
import type { Lapack } from '../backend/lapack.ts';
import { gramEigenvalues, type WeightMatrix } from './hill.ts';

/**
 * Buffers a thread keeps from one matrix to the next (the weight, its Gram matrix, the float32
 * block Gram, the widening block). Fresh memory is paid in page faults on first touch, which at
 * real size cost more CPU than reading and widening the weight (docs/performance.md). A buffer only grows; a smaller
 * request gets a view of its start. Contents are not cleared between requests.
 */
export class Scratch {
  private readonly f32s = new Map<string, Float32Array>();
  private readonly f64s = new Map<string, Float64Array>();

  f32(name: string, n: number): Float32Array {
    return take(this.f32s, name, n, (m) => new Float32Array(m));
  }

  f64(name: string, n: number): Float64Array {
    return take(this.f64s, name, n, (m) => new Float64Array(m));
  }
}

function take<T extends Float32Array | Float64Array>(pool: Map<string, T>, name: string, n: number, make: (n: number) => T): T {
  let b = pool.get(name);
  if (!b || b.length < n) {
    pool.delete(name); // dropped before the larger one is made: not both at once
    b = make(n);
    pool.set(name, b);
  }
  return (b.length === n ? b : b.subarray(0, n)) as T;
}

/**
 * Doubles converted per Gram product: the weight is widened block by block, so a 7B model's
 * 11008 x 4096 projection needs 16 MB of float64 at a time rather than 360 MB.
 */
export const BLOCK_DOUBLES = 1 << 21;

/** Copy `n` values of `src` from `from` into `dst` at `to`, widening to float64. */
function widen(src: ArrayLike<number>, from: number, n: number, dst: Float64Array, to: number): void {
  if (ArrayBuffer.isView(src)) {
    dst.set((src as Float32Array).subarray(from, from + n), to);
  } else {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
  }
}

/**
 * W^T W (the smaller Gram matrix), float64, upper triangle, row-major: the float64 product of
 * widened blocks. With a `scratch`, the result is its 'gram' buffer (valid until the next product).
 */
export function lapackGram(w: WeightMatrix, lapack: Lapack, blockDoubles = BLOCK_DOUBLES, scratch = new Scratch()): Float64Array {
  const { rows, cols, data } = w;
  const small = Math.min(rows, cols);
  const gram = scratch.f64('gram', small * small); // beta 0 on the first block: its old contents go
  if (cols <= rows) {
    // W^T W [cols, cols] = sum over blocks B of rows, [r, cols], of B^T B
    const per = Math.max(1, Math.floor(blockDoubles / cols));
    const block = scratch.f64('block', Math.min(per, rows) * cols);
    for (let r0 = 0; r0 < rows; r0 += per) {
      const r = Math.min(per, rows - r0);
      widen(data, r0 * cols, r * cols, block, 0);
      lapack.gram(true, cols, r, block, cols, gram, r0 === 0 ? 0 : 1);
    }
  } else {
    // W W^T [rows, rows] = sum over blocks B of columns, [rows, c], of B B^T
    const per = Math.max(1, Math.floor(blockDoubles / rows));
    const block = scratch.f64('block', rows * Math.min(per, cols));
    for (let c0 = 0; c0 < cols; c0 += per) {
      const c = Math.min(per, cols - c0);
      for (let i = 0; i < rows; i++) widen(data, i * cols + c0, c, block, i * c);
      lapack.gram(false, rows, c, block, c, gram, c0 === 0 ? 0 : 1);
    }
  }
  return gram;
}

/**
 * Products summed in float32 per block of the float32 Gram product (rows of W for W^T W,
 * columns for W W^T) before the block's Gram is added into the float64 one.
 */
export const GRAM32_BLOCK = 1024;

/**
 * The same Gram matrix for W holding bfloat16 or float16 values (decoded to float32): float32
 * products over blocks of `block` rows (or columns), each block's Gram added in float64 (see the
 * file comment). Blocks are views into W: nothing is widened or copied.
 */
export function lapackGram32(w: WeightMatrix & { data: Float32Array }, lapack: Lapack, block = GRAM32_BLOCK, scratch = new Scratch()): Float64Array {
  const { rows, cols, data } = w;
  const small = Math.min(rows, cols);
  const gram = scratch.f64('gram', small * small);
  const part = scratch.f32('part', small * small);
  const addPart = (first: boolean) => {
    for (let i = 0; i < small; i++) {
      const at = i * small;
      // the upper triangle ssyrk wrote; the first block's sets it (the scratch holds old values)
      if (first) for (let j = i; j < small; j++) gram[at + j] = part[at + j];
      else for (let j = i; j < small; j++) gram[at + j] += part[at + j];
    }
  };
  if (cols <= rows) {
    // W^T W [cols, cols] = sum over blocks B of rows, [r, cols], of B^T B
    for (let r0 = 0; r0 < rows; r0 += block) {
      lapack.gram32(true, cols, Math.min(block, rows - r0), data.subarray(r0 * cols), cols, part, 0);
      addPart(r0 === 0);
    }
  } else {
    // W W^T [rows, rows] = sum over blocks B of columns, [rows, c] at leading dimension cols, of B B^T
    for (let c0 = 0; c0 < cols; c0 += block) {
      lapack.gram32(false, rows, Math.min(block, cols - c0), data.subarray(c0), cols, part, 0);
      addPart(c0 === 0);
    }
  }
  return gram;
}

/** Eigenvalues, ascending and clamped at 0, of the n x n Gram matrix whose upper triangle `gram` holds (overwritten). */
export function gramSpectrum(gram: Float64Array, n: number, lapack: Lapack): Float64Array {
  const eig = lapack.eigenvalues(gram, n);
  for (let i = 0; i < n; i++) eig[i] = Math.max(0, eig[i]); // round-off can dip below 0
  return eig; // ascending, and clamping keeps it so
}

/** Eigenvalues of W^T W (squared singular values of W), ascending, through LAPACK. */
export function lapackGramEigenvalues(w: WeightMatrix, lapack: Lapack, blockDoubles = BLOCK_DOUBLES, scratch?: Scratch): Float64Array {
  return gramSpectrum(lapackGram(w, lapack, blockDoubles, scratch), Math.min(w.rows, w.cols), lapack);
}

/**
 * Eigenvalues of W^T W, ascending, through LAPACK, for W holding bfloat16 or float16 values:
 * the float32 Gram product (lapackGram32), the float64 eigensolver.
 */
export function lapackGram32Eigenvalues(w: WeightMatrix & { data: Float32Array }, lapack: Lapack, block = GRAM32_BLOCK, scratch?: Scratch): Float64Array {
  return gramSpectrum(lapackGram32(w, lapack, block, scratch), Math.min(w.rows, w.cols), lapack);
}

/**
 * The Gram spectrum of `w` through `lapack` if given, else the JS path. `halfStored`: the
 * values are bfloat16 or float16 ones (as stored), so the float32 Gram product is used.
 */
export function matrixSpectrum(w: WeightMatrix, lapack: Lapack | null, halfStored = false, scratch?: Scratch): Float64Array {
  if (!lapack) return gramEigenvalues(w);
  if (halfStored && w.data instanceof Float32Array) {
    return lapackGram32Eigenvalues(w as WeightMatrix & { data: Float32Array }, lapack, GRAM32_BLOCK, scratch);
  }
  return lapackGramEigenvalues(w, lapack, BLOCK_DOUBLES, scratch);
}

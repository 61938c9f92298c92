/**
 * The spectrum alpha-hill fits (eigenvalues of a weight's smaller Gram matrix, float64,
 * ascending): through LAPACK where the machine has it (src/backend/lapack.ts), else through the
 * JS eigensolver of hill.ts. Both build the Gram matrix in float64 from the stored values, so the
 * two agree to float64 round-off (test/probe/spectrum.test.ts).
 */
import type { Lapack } from '../backend/lapack.ts';
import { gramEigenvalues, type WeightMatrix } from './hill.ts';

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

/** Eigenvalues of W^T W (squared singular values of W), ascending, through LAPACK. */
export function lapackGramEigenvalues(w: WeightMatrix, lapack: Lapack, blockDoubles = BLOCK_DOUBLES): Float64Array {
  const { rows, cols, data } = w;
  const small = Math.min(rows, cols);
  const gram = new Float64Array(small * small);
  if (cols <= rows) {
    // W^T W [cols, cols] = sum over blocks B of rows, [r, cols], of B^T B
    const per = Math.max(1, Math.floor(blockDoubles / cols));
    const block = new Float64Array(Math.min(per, rows) * cols);
    for (let r0 = 0; r0 < rows; r0 += per) {
      const r = Math.min(per, rows - r0);
      widen(data, r0 * cols, r * cols, block, 0);
      lapack.gram(true, cols, r, block, cols, gram, r0 === 0 ? 0 : 1);
    }
  } else {
    // W W^T [rows, rows] = sum over blocks B of columns, [rows, c], of B B^T
    const per = Math.max(1, Math.floor(blockDoubles / rows));
    const block = new Float64Array(rows * Math.min(per, cols));
    for (let c0 = 0; c0 < cols; c0 += per) {
      const c = Math.min(per, cols - c0);
      for (let i = 0; i < rows; i++) widen(data, i * cols + c0, c, block, i * c);
      lapack.gram(false, rows, c, block, c, gram, c0 === 0 ? 0 : 1);
    }
  }
  const eig = lapack.eigenvalues(gram, small);
  for (let i = 0; i < small; i++) eig[i] = Math.max(0, eig[i]); // round-off can dip below 0
  return eig; // ascending, and clamping keeps it so
}

/** The Gram spectrum of `w` through `lapack` if given, else the JS path. */
export function matrixSpectrum(w: WeightMatrix, lapack: Lapack | null): Float64Array {
  return lapack ? lapackGramEigenvalues(w, lapack) : gramEigenvalues(w);
}

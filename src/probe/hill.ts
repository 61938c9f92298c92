/**
 * Heavy-tailed self-regularisation (HT-SR) metric of one weight matrix, as AlphaLoRA computes it
 * (shared/reference/methods.md §2.2), in float64:
 *
 * 1. eigenvalues of the correlation matrix W^T W, i.e. squared singular values, taken from the
 *    smaller Gram matrix (min(rows, cols) of them) with a symmetric eigendecomposition;
 * 2. keep eigenvalues above EVALS_THRESH (WeightWatcher/TempBalance's 1e-5), sorted ascending;
 * 3. for every candidate x_min = lambda_i, i = 0..N-2 (all eigenvalues but the largest; we do NOT
 *    use AlphaLoRA's histogram-peak window, whose lower bound compares a log10 value with linear
 *    eigenvalues), fit the tail lambda_i..lambda_{N-1} (n = N - i values) with the Hill estimator
 *    alpha_i = 1 + n / (sum_{j>=i} ln lambda_j - n ln lambda_i)
 *    and score it with the Kolmogorov-Smirnov distance between the fitted power law and the
 *    empirical tail, D_i = max_{k<n} |1 - (lambda_{i+k} / lambda_i)^(1 - alpha_i) - k / n|;
 *    candidates with alpha_i <= 1 (or a zero log-sum: a flat tail) are not eligible;
 * 4. alpha = alpha_i of the smallest D_i (the first one on exact ties).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

export const EVALS_THRESH = 1e-5;

/** A weight matrix as row-major data; orientation does not matter (same nonzero spectrum). */
export interface WeightMatrix {
  rows: number;
  cols: number;
  data: ArrayLike<number>;
}

/** Eigenvalues of W^T W (squared singular values of W), ascending, from the smaller Gram matrix. */
export function gramEigenvalues(w: WeightMatrix): Float64Array {
  const { rows, cols, data } = w;
  const small = Math.min(rows, cols);
  const gram = new Float64Array(small * small);
  if (cols <= rows) {
    // W^T W [cols, cols]: sum over rows of outer products of each row with itself
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let i = 0; i < cols; i++) {
        const wi = data[base + i];
        if (wi === 0) continue;
        for (let j = i; j < cols; j++) gram[i * small + j] += wi * data[base + j];
      }
    }
  } else {
    // W W^T [rows, rows]: dot products of rows
    for (let i = 0; i < rows; i++) {
      for (let j = i; j < rows; j++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += data[i * cols + c] * data[j * cols + c];
        gram[i * small + j] = s;
      }
    }
  }
  const m = new Matrix(small, small);
  for (let i = 0; i < small; i++) {
    for (let j = i; j < small; j++) {
      m.set(i, j, gram[i * small + j]);
      m.set(j, i, gram[i * small + j]);
    }
  }
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const eig = Float64Array.from(evd.realEigenvalues, (x) => Math.max(0, x)); // round-off can dip below 0
  return eig.sort();
}

export interface HillFit {
  alpha: number;
  /** The chosen x_min (an eigenvalue). */
  xmin: number;
  /** KS distance of the chosen fit. */
  ks: number;
  /** Eigenvalues in the fitted tail. */
  tail: number;
  /** Eigenvalues above EVALS_THRESH. */
  nonzero: number;
}

/** Hill estimate with KS-selected x_min over ascending eigenvalues (see the file comment). */
export function hillAlpha(eigsAscending: ArrayLike<number>): HillFit {
  const nz = Array.from(eigsAscending).filter((x) => x > EVALS_THRESH);
  const N = nz.length;
  if (N < 2) throw new Error(`alpha-hill needs at least 2 eigenvalues above ${EVALS_THRESH.toExponential()}; got ${N}`);
  const logs = nz.map(Math.log);
  // suffix sums of ln lambda, so each candidate's Hill sum is O(1)
  const suffix = new Float64Array(N + 1);
  for (let j = N - 1; j >= 0; j--) suffix[j] = suffix[j + 1] + logs[j];
  // Candidates from the shortest tail down: the best fit is usually a short tail, so its D
  // bounds the rest early, and D_i only grows with k, so a candidate stops as soon as it is
  // worse. Ties go to the smaller i (the longer tail), as the forward search's first minimum.
  // Same result as scoring every candidate in full, at a fraction of the N^2 / 2 powers.
  let best: HillFit | null = null;
  for (let i = N - 2; i >= 0; i--) {
    const n = N - i;
    const denom = suffix[i] - n * logs[i];
    if (!(denom > 0)) continue;
    const alpha = 1 + n / denom;
    const bound = best ? best.ks : Infinity;
    let d = 0;
    for (let k = 0; k < n && d <= bound; k++) {
      const gap = Math.abs(1 - (nz[i + k] / nz[i]) ** (1 - alpha) - k / n);
      if (gap > d) d = gap;
    }
    if (d <= bound) best = { alpha, xmin: nz[i], ks: d, tail: n, nonzero: N };
  }
  if (!best) throw new Error('alpha-hill: every candidate tail is flat (all eigenvalues equal)');
  return best;
}

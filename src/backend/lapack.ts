/**
 * LAPACK's symmetric eigensolver and BLAS's double-precision Gram product, for the alpha-hill
 * probe (src/probe/spectrum.ts), from the same library the wasm backend's products use
 * (blas.ts's discovery: HILO_BLAS, else the system's OpenBLAS, which ships LAPACK).
 *
 * Eigenvalues only: `dsyevd_2stage` (LAPACK >= 3.7) reduces the matrix to a band with BLAS-3
 * products and then to tridiagonal form by bulge chasing, where the one-stage `dsyevd`
 * reduction spends half its work in matrix-vector products bound by memory bandwidth; on this
 * project's 2-core machine the two-stage solver takes about a third of the time at n = 4096
 * (scripts/bench-results/probe-cpu.json, "solvers"). Its two steps are called one by one
 * (dsytrd_sy2sb to a band, dsytrd_sb2st to tridiagonal, dsterf for the eigenvalues) so the band
 * width can follow n (eigenBand); the drivers `dsyevd_2stage`, then `dsyevd`, are the fallback
 * for a library without them.
 *
 * Fortran calls take every argument by reference, and gfortran appends one hidden length per
 * character argument; both are passed.
 */
import { loadNativeLibrary, openblasControls, type OpenblasControls } from './blas.ts';

export interface Lapack {
  /**
   * C = A^T A (`trans`) or A A^T, plus C when beta is 1, into C's upper triangle; row-major, C is
   * n x n, A is [k, n] (trans) or [n, k] with leading dimension lda. The lower triangle is left as is.
   */
  gram(trans: boolean, n: number, k: number, a: Float64Array, lda: number, c: Float64Array, beta: 0 | 1): void;
  /**
   * The same product in float32 (BLAS's ssyrk: twice the rate of dsyrk on AVX-512, half the
   * memory). `a` may be a subarray view: BLAS reads from its first element.
   */
  gram32(trans: boolean, n: number, k: number, a: Float32Array, lda: number, c: Float32Array, beta: 0 | 1): void;
  /**
   * Eigenvalues, ascending, of the n x n Gram matrix (symmetric positive semi-definite) whose
   * upper triangle (row-major) `a` holds; `a` is overwritten. The two-stage reduction's steps
   * with the band width eigenBand(n) where the library exports them, else syevdEigenvalues.
   */
  eigenvalues(a: Float64Array, n: number): Float64Array;
  /** The same through LAPACK's driver, dsyevd_2stage (or dsyevd), at its own band width. */
  syevdEigenvalues(a: Float64Array, n: number): Float64Array;
  /**
   * The same eigenvalues through the two-stage reduction's steps called one by one (dsytrd_sy2sb
   * to a band of half-width `kd`, dsytrd_sb2st to tridiagonal, dsterf), so the band width is
   * ours to choose; null where the library lacks them. `a` is overwritten.
   */
  bandEigenvalues: ((a: Float64Array, n: number, kd: number) => Float64Array) | null;
  /** OpenBLAS's process-wide thread count (null for another library): workers set 1. */
  threads: Pick<OpenblasControls, 'getThreads' | 'setThreads'> | null;
  /** The library and the solver, e.g. "libopenblas.so.0, dsyevd_2stage". */
  detail: string;
}

/**
 * Band half-width of the first reduction stage for an n x n matrix. Wider bands make the first
 * stage's updates larger BLAS-3 products and the second stage's bulge chasing longer, so the
 * total moves little: ilaenv2stage's 32 is about best to n = 2048, 64 slightly faster at
 * n = 4096 on one thread (scripts/bench-probe.ts --bands; figures in docs/performance.md).
 */
export function eigenBand(n: number): number {
  return n >= 3072 ? 64 : 32;
}

export type LapackResult = { lapack: Lapack } | { lapack: null; reason: string };

const ROW_MAJOR = 101;
const UPPER = 121;
const NO_TRANS = 111;
const TRANS = 112;

type Sy2sb = (
  uplo: string, n: number[], kd: number[], a: Float64Array, lda: number[], ab: Float64Array, ldab: number[], tau: Float64Array,
  work: Float64Array, lwork: number[], info: Int32Array, luplo: number,
) => void;
type Sb2st = (
  stage1: string, vect: string, uplo: string, n: number[], kd: number[], ab: Float64Array, ldab: number[], d: Float64Array, e: Float64Array,
  hous: Float64Array, lhous: number[], work: Float64Array, lwork: number[], info: Int32Array, lstage1: number, lvect: number, luplo: number,
) => void;
type Sterf = (n: number[], d: Float64Array, e: Float64Array, info: Int32Array) => void;

type Syevd = (
  jobz: string, uplo: string, n: number[], a: Float64Array, lda: number[], w: Float64Array,
  work: Float64Array, lwork: number[], iwork: Int32Array, liwork: number[], info: Int32Array, ljobz: number, luplo: number,
) => void;

function bind(koffi: typeof import('koffi'), file: string): Lapack {
  const lib = koffi.load(file);
  const syrk = lib.func(
    'void cblas_dsyrk(int order, int uplo, int trans, int n, int k, double alpha, void *a, int lda, double beta, void *c, int ldc)',
  );
  const ssyrk = lib.func(
    'void cblas_ssyrk(int order, int uplo, int trans, int n, int k, float alpha, void *a, int lda, float beta, void *c, int ldc)',
  );
  const signature = (name: string) =>
    `void ${name}(const char *jobz, const char *uplo, int *n, void *a, int *lda, void *w, void *work, ` +
    'int *lwork, void *iwork, int *liwork, void *info, size_t ljobz, size_t luplo)';
  let solver = 'dsyevd_2stage';
  let syevd: Syevd;
  try {
    syevd = lib.func(signature('dsyevd_2stage_')) as Syevd;
  } catch {
    solver = 'dsyevd';
    syevd = lib.func(signature('dsyevd_')) as Syevd;
  }
  // Workspace sizes per n, from the solver's own query (lwork = -1).
  const workspace = new Map<number, { work: Float64Array; iwork: Int32Array }>();
  const info = new Int32Array(1);
  const syevdEigenvalues = (a: Float64Array, n: number): Float64Array => {
    const w = new Float64Array(n);
    if (n === 0) return w;
    let ws = workspace.get(n);
    if (!ws) {
      const q = new Float64Array(1);
      const iq = new Int32Array(1);
      // Column-major lower = row-major upper: the triangle gram() fills.
      syevd('N', 'L', [n], a, [n], w, q, [-1], iq, [-1], info, 1, 1);
      if (info[0] !== 0) throw new Error(`${solver} workspace query for n = ${n} failed (info ${info[0]})`);
      ws = { work: new Float64Array(Math.max(1, q[0])), iwork: new Int32Array(Math.max(1, iq[0])) };
      workspace.clear(); // one size at a time: a 7B model's n = 4096 workspace is ~3.4 MB
      workspace.set(n, ws);
    }
    syevd('N', 'L', [n], a, [n], w, ws.work, [ws.work.length], ws.iwork, [ws.iwork.length], info, 1, 1);
    // info > 0: the tridiagonal QR did not converge (LAPACK's "failed to converge" case)
    if (info[0] !== 0) throw new Error(`${solver} on a ${n} x ${n} Gram matrix failed (info ${info[0]})`);
    return w;
  };
  // The two stages one by one, for a band width of our choosing (dsyevd_2stage takes
  // ilaenv2stage's, 32 in the reference LAPACK without OpenMP).
  let band: Lapack['bandEigenvalues'] = null;
  try {
    const sy2sb = lib.func('void dsytrd_sy2sb_(const char *uplo, int *n, int *kd, void *a, int *lda, void *ab, int *ldab, void *tau, ' +
      'void *work, int *lwork, void *info, size_t luplo)') as Sy2sb;
    const sb2st = lib.func('void dsytrd_sb2st_(const char *stage1, const char *vect, const char *uplo, int *n, int *kd, void *ab, ' +
      'int *ldab, void *d, void *e, void *hous, int *lhous, void *work, int *lwork, void *info, size_t l1, size_t l2, size_t l3)') as Sb2st;
    const sterf = lib.func('void dsterf_(int *n, void *d, void *e, void *info)') as Sterf;
    const query = (f: (work: Float64Array, lwork: number[]) => void): Float64Array => {
      const q = new Float64Array(1);
      f(q, [-1]);
      return new Float64Array(Math.max(1, q[0]));
    };
    // Workspaces per (n, kd), one at a time as for dsyevd: fresh memory costs its page faults.
    let kept: { key: string; ab: Float64Array; tau: Float64Array; e: Float64Array; w1: Float64Array; hous: Float64Array; w2: Float64Array } | null = null;
    band = (a, n, kd) => {
      const d = new Float64Array(n);
      if (n === 0) return d;
      kd = Math.max(1, Math.min(kd, n - 1));
      const ldab = kd + 1;
      const check = (what: string) => {
        if (info[0] !== 0) throw new Error(`${what} on a ${n} x ${n} Gram matrix (band ${kd}) failed (info ${info[0]})`);
      };
      if (kept?.key !== `${n} ${kd}`) {
        kept = null;
        const ab = new Float64Array(ldab * n);
        const tau = new Float64Array(Math.max(1, n - kd));
        const e = new Float64Array(Math.max(1, n - 1));
        const w1 = query((w, l) => sy2sb('L', [n], [kd], a, [n], ab, [ldab], tau, w, l, info, 1));
        check('dsytrd_sy2sb workspace query');
        const hq = new Float64Array(1);
        const wq = new Float64Array(1);
        sb2st('Y', 'N', 'L', [n], [kd], ab, [ldab], d, e, hq, [-1], wq, [-1], info, 1, 1, 1);
        check('dsytrd_sb2st workspace query');
        kept = { key: `${n} ${kd}`, ab, tau, e, w1, hous: new Float64Array(Math.max(1, hq[0])), w2: new Float64Array(Math.max(1, wq[0])) };
      }
      const { ab, tau, e, w1, hous, w2 } = kept;
      sy2sb('L', [n], [kd], a, [n], ab, [ldab], tau, w1, [w1.length], info, 1);
      check('dsytrd_sy2sb');
      sb2st('Y', 'N', 'L', [n], [kd], ab, [ldab], d, e, hous, [hous.length], w2, [w2.length], info, 1, 1, 1);
      check('dsytrd_sb2st');
      sterf([n], d, e, info);
      check('dsterf');
      return d;
    };
  } catch {
    band = null;
  }
  const eigenvalues = (a: Float64Array, n: number): Float64Array => {
    if (!band) return syevdEigenvalues(a, n);
    // The drivers scale a matrix whose largest entry (a Gram's is on its diagonal) is outside
    // about 1e-146..1e146 before reducing it; such a matrix takes the driver.
    let top = 0;
    for (let i = 0; i < n; i++) top = Math.max(top, Math.abs(a[i * n + i]));
    if (top > 0 && (top < 1e-140 || top > 1e140)) return syevdEigenvalues(a, n);
    return band(a, n, eigenBand(n));
  };
  const gram: Lapack['gram'] = (trans, n, k, a, lda, c, beta) => {
    if (n === 0) return;
    syrk(ROW_MAJOR, UPPER, trans ? TRANS : NO_TRANS, n, k, 1, a, lda, beta, c, n);
  };
  const gram32: Lapack['gram32'] = (trans, n, k, a, lda, c, beta) => {
    if (n === 0) return;
    ssyrk(ROW_MAJOR, UPPER, trans ? TRANS : NO_TRANS, n, k, 1, a, lda, beta, c, n);
  };
  const ob = openblasControls(lib);
  return {
    gram,
    gram32,
    eigenvalues,
    syevdEigenvalues,
    bandEigenvalues: band,
    threads: ob && { getThreads: ob.getThreads, setThreads: ob.setThreads },
    detail: band ? `${file}, dsytrd_sy2sb + dsytrd_sb2st + dsterf` : `${file}, ${solver}`,
  };
}

/**
 * LAPACK from the library blas.ts would load, or why not (the probe then takes its JS path).
 * A HILO_BLAS library that loads but lacks LAPACK is a reason, not an error: it is a valid BLAS.
 */
export function loadLapack(env: NodeJS.ProcessEnv = process.env): LapackResult {
  try {
    const found = loadNativeLibrary(env, 'cblas_dsyrk, cblas_ssyrk and dsyevd_', bind);
    return found.value ? { lapack: found.value } : { lapack: null, reason: found.reason };
  } catch (e) {
    return { lapack: null, reason: (e as Error).message };
  }
}

/**
 * Run `f` with OpenBLAS on one thread, then restore its count. The eigensolver is mostly
 * sequential, and waking a second thread for each of its many small calls costs more than the
 * call on a busy machine (scripts/bench-probe.ts --breakdown: the "all threads" column).
 */
export async function onOneThread<T>(lapack: Lapack | null, f: () => T | Promise<T>): Promise<T> {
  const threads = lapack?.threads?.getThreads();
  if (threads === undefined || threads === 1) return f();
  lapack!.threads!.setThreads(1);
  try {
    return await f();
  } finally {
    lapack!.threads!.setThreads(threads);
  }
}

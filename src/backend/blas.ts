/**
 * A native BLAS for the wasm backend's matrix products, where the machine has one.
 *
 * tfjs-backend-wasm's products run in XNNPACK's 128-bit wasm SIMD, an order of magnitude slower
 * than OpenBLAS's sgemm (AVX2/FMA, every core; figures in docs/performance.md). Its tensors live in the wasm heap, an ArrayBuffer that native code can read and write in place:
 * `cblas_sgemm`, reached through koffi (an FFI whose binaries ship inside its npm package),
 * multiplies heap matrices with no copy and no transpose, whichever operand is transposed.
 *
 * Both pieces are optional and detected at run time: koffi is an optional dependency, and the
 * library is the system's OpenBLAS (Debian: `apt-get install libopenblas0-pthread`). Without
 * either, products stay in XNNPACK (src/backend/wasm-matmul.ts) and `hilo doctor` says why.
 *
 * HILO_BLAS: unset = the first of DEFAULT_LIBRARIES that loads; `off` = never; anything else =
 * that library file (a path or a name the dynamic loader finds) exporting cblas_sgemm.
 */
import { createRequire } from 'node:module';
import { HiloError } from '../errors.ts';

/** Tried in order when HILO_BLAS is unset. */
export const DEFAULT_LIBRARIES = ['libopenblas.so.0', 'libopenblas.so', 'libopenblas.dylib'] as const;

/** Optional parts of one product: `beta` 1 adds to C instead of overwriting it; `threads` overrides threadsFor's choice (benchmarks). */
export interface SgemmOptions {
  beta?: 0 | 1;
  threads?: number;
}

/** C = op(A) op(B) (+ C with beta 1) on row-major matrices; each view's first element is its matrix's. */
export type Sgemm = (
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  a: Float32Array, lda: number, b: Float32Array, ldb: number, c: Float32Array, ldc: number,
  opts?: SgemmOptions,
) => void;

export interface Blas {
  sgemm: Sgemm;
  /** The library's thread count (1 when it cannot be told how many to use). */
  maxThreads: number;
  /** Use at most n threads from now on (null: maxThreads again); data-parallel replicas want 1. */
  limitThreads(n: number | null): void;
  /** The library and its own description, e.g. "libopenblas.so.0 (OpenBLAS 0.3.21 ... Haswell), 2 threads". */
  detail: string;
}

export type BlasResult = { blas: Blas } | { blas: null; reason: string };

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

const require = createRequire(import.meta.url);

/** Time and count of sgemm calls by shape ("NT 512x36x64": transposes, m x n x k), kept while set. */
export type SgemmTally = Map<string, { ms: number; n: number }>;
let tally: SgemmTally | null = null;

/**
 * Time every sgemm of this thread into `t` from now on (null: stop): bench-train's --profile,
 * where the fused kernels' products are inside kernels tf.profile can only time whole.
 */
export function tallySgemm(t: SgemmTally | null): void {
  tally = t;
}

/** Products with a side at most this long run on one thread (see threadsFor). */
export const SINGLE_THREAD_SIDE = 64;

/**
 * Threads for one product. OpenBLAS 0.3.21 splits even skinny products over every thread, and
 * for those waking the second thread costs more than it brings, while wide products do gain
 * from it (scripts/bench-blas.ts; figures in docs/performance.md, "Figures behind the code").
 */
export function threadsFor(m: number, n: number, k: number, max: number): number {
  return Math.min(m, n, k) <= SINGLE_THREAD_SIDE ? 1 : max;
}

/**
 * OpenBLAS's "small matrix" sgemm kernels (built for SkylakeX, Cooperlake and SapphireRapids
 * cores) skip the packing of both operands, but it only takes them for products of at most
 * SMALL_MNK multiply-adds, and not for a row-major A·Bᵀ (its column-major TN, which it permits
 * only when m·n <= 1200). A product a few times over that bound runs faster as up to
 * MAX_SMALL_PARTS products under it: A·B split by rows, Aᵀ·B by the shared dimension (each part
 * adding into C). That is faster for a stories260K replica's MoE products (scripts/bench-blas.ts
 * --small); products that would need more parts are left whole, as splitting them gained little
 * or nothing (figures in docs/performance.md, "Figures behind the code").
 */
export const SMALL_MNK = 1e6;
export const MAX_SMALL_PARTS = 4;
/** OpenBLAS cores (as openblas_get_config names them) that have the small-matrix kernels. */
const SMALL_KERNEL_CORES = /\b(SkylakeX|Cooperlake|SapphireRapids)\b/i;

/**
 * How many parts to split one single-threaded product into so that each takes OpenBLAS's small
 * kernels (1: leave it whole): the fewest under SMALL_MNK, if that is at most MAX_SMALL_PARTS.
 * Not for A·Bᵀ, which never takes them.
 */
export function smallParts(tB: boolean, m: number, n: number, k: number): number {
  if (tB) return 1;
  const parts = Math.ceil((m * n * k) / SMALL_MNK);
  return parts > 1 && parts <= MAX_SMALL_PARTS ? parts : 1; // an empty product (0 parts) stays one call
}

/** OpenBLAS's own calls: its build description and its (process-wide) thread count. */
export interface OpenblasControls {
  config: string;
  getThreads(): number;
  setThreads(n: number): void;
}

/** The OpenBLAS calls of a loaded library, or null when it is another BLAS. */
export function openblasControls(lib: import('koffi').LibraryHandle): OpenblasControls | null {
  try {
    return {
      config: lib.func('const char *openblas_get_config()')() as string,
      getThreads: lib.func('int openblas_get_num_threads()') as () => number,
      setThreads: lib.func('void openblas_set_num_threads(int n)') as (n: number) => void,
    };
  } catch {
    return null; // not OpenBLAS: any CBLAS will do; it just cannot describe itself or be told its threads
  }
}

/** The koffi module, or why it cannot be had. */
function loadKoffi(): { koffi: typeof import('koffi') } | { reason: string } {
  try {
    return { koffi: require('koffi') };
  } catch (e) {
    return { reason: `koffi (an optional dependency) did not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

/**
 * Each library's own thread count, read when this thread first binds it: the count is global
 * to the process, and a thread that caps it (maxThreads) changes what later binds would read.
 */
const libraryThreads = new Map<string, number>();

function bind(koffi: typeof import('koffi'), file: string, maxThreads = Infinity, split?: boolean): Blas {
  const lib = koffi.load(file);
  const gemm = lib.func(
    'void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, ' +
      'void *a, int lda, void *b, int ldb, float beta, void *c, int ldc)',
  );
  let about = '';
  let setThreads: ((n: number) => void) | null = null;
  let threads = 1;
  let small = false;
  const ob = openblasControls(lib);
  if (ob) {
    small = split ?? SMALL_KERNEL_CORES.test(ob.config);
    if (!libraryThreads.has(file)) libraryThreads.set(file, ob.getThreads());
    threads = libraryThreads.get(file)!;
    setThreads = ob.setThreads;
    about = ` (${ob.config}), ${threads} thread${threads === 1 ? '' : 's'}, one for products with a side <= ${SINGLE_THREAD_SIDE}${small ? `, those over ${SMALL_MNK / 1e6}M multiply-adds split for its small kernels` : ''}`;
  }
  let limit = Math.max(1, Math.min(threads, maxThreads));
  // the library's count now: another thread of the process may have changed it since
  let current = setThreads ? -1 : threads;
  const sgemm: Sgemm = (tA, tB, m, n, k, a, lda, b, ldb, c, ldc, opts) => {
    if (setThreads) {
      const want = opts?.threads ?? threadsFor(m, n, k, limit);
      if (want !== current) setThreads((current = want)); // cheap next to any product
    }
    const t0 = tally ? performance.now() : 0;
    const beta = opts?.beta ?? 0;
    const parts = small && current === 1 ? smallParts(tB, m, n, k) : 1;
    if (parts === 1) {
      gemm(ROW_MAJOR, tA ? TRANS : NO_TRANS, tB ? TRANS : NO_TRANS, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
    } else if (!tA) {
      // rows i0..i0+rows of A and C
      const rows = Math.ceil(m / parts);
      for (let i0 = 0; i0 < m; i0 += rows) {
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, Math.min(rows, m - i0), n, k, 1, a.subarray(i0 * lda), lda, b, ldb, beta, c.subarray(i0 * ldc), ldc);
      }
    } else {
      // C = Σ over slices p0..p0+depth of the shared dimension: rows of both A [k, m] and B [k, n]
      const depth = Math.ceil(k / parts);
      for (let p0 = 0; p0 < k; p0 += depth) {
        gemm(ROW_MAJOR, TRANS, NO_TRANS, m, n, Math.min(depth, k - p0), 1, a.subarray(p0 * lda), lda, b.subarray(p0 * ldb), ldb, p0 === 0 ? beta : 1, c, ldc);
      }
    }
    if (tally) {
      const key = `${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} ${m}x${n}x${k}`;
      const e = tally.get(key) ?? { ms: 0, n: 0 };
      tally.set(key, { ms: e.ms + performance.now() - t0, n: e.n + 1 });
    }
  };
  const limitThreads = (n: number | null) => {
    limit = Math.max(1, Math.min(threads, n ?? threads));
    if (setThreads) setThreads((current = limit)); // now, so a worker binding next reads it
  };
  if (setThreads && limit < threads) limitThreads(limit);
  return { sgemm, maxThreads: setThreads ? threads : 1, limitThreads, detail: `${file}${about}` };
}

/**
 * The first library `bindTo` accepts: the one HILO_BLAS names, else the first of
 * DEFAULT_LIBRARIES. `exporting` says what it must provide, for messages. A named library that
 * fails is an error; the default search reports why nothing bound instead of failing.
 */
export function loadNativeLibrary<T>(
  env: NodeJS.ProcessEnv, exporting: string, bindTo: (koffi: typeof import('koffi'), file: string) => T,
): { value: T } | { value: null; reason: string } {
  const wanted = env.HILO_BLAS?.trim();
  if (wanted === 'off') return { value: null, reason: 'HILO_BLAS=off' };
  const k = loadKoffi();
  if (!('koffi' in k)) {
    if (wanted) throw new HiloError(`HILO_BLAS=${wanted}: ${k.reason}; allowed: a library exporting ${exporting}, or off`);
    return { value: null, reason: k.reason };
  }
  if (wanted) {
    try {
      return { value: bindTo(k.koffi, wanted) };
    } catch (e) {
      throw new HiloError(`HILO_BLAS=${wanted}: ${(e as Error).message}; allowed: a library exporting ${exporting} (e.g. libopenblas.so.0), or off`);
    }
  }
  const tried: string[] = [];
  for (const file of DEFAULT_LIBRARIES) {
    try {
      return { value: bindTo(k.koffi, file) };
    } catch (e) {
      tried.push(`${file}: ${(e as Error).message}`);
    }
  }
  return { value: null, reason: `no OpenBLAS found (${tried[0]}); on Debian/Ubuntu: apt-get install libopenblas0-pthread` };
}

/** Load the BLAS HILO_BLAS names (see the file comment and loadNativeLibrary). */
export function loadBlas(env: NodeJS.ProcessEnv = process.env, opts: { maxThreads?: number; split?: boolean } = {}): BlasResult {
  const found = loadNativeLibrary(env, 'cblas_sgemm', (koffi, file) => bind(koffi, file, opts.maxThreads, opts.split));
  return found.value ? { blas: found.value } : { blas: null, reason: found.reason };
}

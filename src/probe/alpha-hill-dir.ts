/**
 * alpha-hill on a model directory at real size: each matrix is read, widened, multiplied into
 * its Gram matrix and decomposed on its own (one tensor in memory per thread), through LAPACK
 * where it loads, in worker threads when the model is big enough to repay starting them.
 *
 * OpenBLAS's eigensolver is mostly sequential (the two-stage reduction's bulge chasing runs on
 * one thread), so whole matrices on separate cores beat one matrix on all of them: OpenBLAS runs
 * on one thread throughout, and its thread count is restored afterwards (it is process-wide:
 * the wasm backend's products read it).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { loadLapack, onOneThread, type Lapack } from '../backend/lapack.ts';
import { HiloError } from '../errors.ts';
import type { ModelConfig } from '../model/types.ts';
import { alphaHillFromFits, alphaHillMatrices, type AlphaHillMatrix, type AlphaHillScores } from './alpha-hill.ts';
import { hillAlpha, type HillFit } from './hill.ts';
import { etaMs, type ProbeProgress } from './progress.ts';
import { BLOCK_DOUBLES, matrixSpectrum, Scratch } from './spectrum.ts';
import { checkpointTensors, readMatrix, type StoredTensor } from './weights.ts';

/** Below this much estimated work (matrixCost units, ~1 s on one core) workers cost more than they save. */
export const WORKER_MIN_COST = 2e10;

export interface DirProbeOptions {
  /**
   * Threads that decompose matrices (default: for models over WORKER_MIN_COST one per core, as
   * many as half the free memory holds; else 1 = this thread).
   */
  workers?: number;
  /** false: the JS eigensolver even where LAPACK loads (benchmarks). */
  native?: boolean;
  onProgress?: (p: ProbeProgress) => void;
}

export interface DirProbeResult extends AlphaHillScores {
  /** How the eigenvalues were computed, e.g. "LAPACK (libopenblas.so.0, dsytrd_sy2sb + dsytrd_sb2st + dsterf), 2 workers". */
  engine: string;
}

/**
 * Work to fit one [rows, cols] matrix, in multiply-adds: the Gram product (small^2 x large / 2
 * with the symmetric product) and the eigensolver (~ 4/3 small^3, at a lower rate).
 */
export function matrixCost(rows: number, cols: number): number {
  const small = Math.min(rows, cols);
  const large = Math.max(rows, cols);
  return (small * small * large) / 2 + 2 * small ** 3;
}

/**
 * Memory one thread holds while fitting the largest matrix: its stored bytes (up to 4 a value
 * read) and float32 copy, the float64 Gram matrix and either the widening block (float64
 * product) or a float32 block Gram (float32 product of half-precision weights; spectrum.ts).
 */
export function bytesPerMatrix(matrices: readonly Pick<AlphaHillMatrix, 'in' | 'out'>[]): number {
  return Math.max(...matrices.map((m) => 8 * m.in * m.out + 12 * Math.min(m.in, m.out) ** 2)) + 8 * BLOCK_DOUBLES;
}

/** One worker per core for big models, as many as half the free memory holds; 1 (this thread) for small ones. */
function defaultWorkers(matrices: readonly AlphaHillMatrix[], total: number): number {
  if (total <= WORKER_MIN_COST) return 1;
  return Math.min(os.availableParallelism(), Math.floor(os.freemem() / 2 / bytesPerMatrix(matrices)));
}

/** A job a worker runs: one stored matrix. */
export interface SpectrumJob extends StoredTensor {
  index: number;
}

export type SpectrumReply = { index: number; fit: HillFit } | { index: number; error: string };

/**
 * The fit of one stored matrix (what each worker runs, and this thread without workers);
 * `scratch` carries the buffers over to the thread's next matrix.
 */
export function fitStored(t: StoredTensor, lapack: Lapack | null, scratch?: Scratch): HillFit {
  const w = readMatrix(t, scratch);
  try {
    return hillAlpha(matrixSpectrum(w, lapack, w.dtype === 'BF16' || w.dtype === 'F16', scratch));
  } catch (e) {
    throw new HiloError(`alpha-hill: ${t.name} in ${t.file}: ${(e as Error).message}`);
  }
}

const WORKER_URL = new URL('./spectrum-boot.mjs', import.meta.url);

/** Run `jobs` over `n` workers, largest first, calling `done(index, fit)` as each returns. */
async function runWorkers(jobs: SpectrumJob[], n: number, native: boolean, done: (index: number, fit: HillFit) => void): Promise<void> {
  const queue = [...jobs];
  const workers = Array.from({ length: n }, () => new Worker(WORKER_URL, { workerData: { native } }));
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      const next = () => {
        const job = queue.shift();
        if (job) w.postMessage(job);
        else resolve();
      };
      w.on('message', (r: SpectrumReply) => {
        if ('error' in r) return reject(new HiloError(r.error));
        done(r.index, r.fit);
        next();
      });
      w.on('error', reject);
      w.on('exit', (code) => (queue.length || code !== 0) && reject(new Error(`alpha-hill worker exited (code ${code})`)));
      next();
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** alpha-hill scores of the model in `dir` (see the file comment). */
export async function alphaHillFromDir(config: ModelConfig, dir: string, opts: DirProbeOptions = {}): Promise<DirProbeResult> {
  const matrices: AlphaHillMatrix[] = alphaHillMatrices(config);
  const locate = checkpointTensors(dir, config);
  const stored = matrices.map((m) => locate(m.module)); // every tensor is found before any work starts
  const costs = matrices.map((m) => matrixCost(m.in, m.out));
  const total = costs.reduce((a, b) => a + b, 0);
  const found = opts.native === false ? { lapack: null, reason: 'native: false' } : loadLapack();
  const lapack = found.lapack;
  const workers = Math.max(1, Math.min(matrices.length, opts.workers ?? defaultWorkers(matrices, total)));

  const fits: HillFit[] = new Array(matrices.length);
  const start = performance.now();
  let done = 0;
  let costDone = 0;
  const record = (i: number, fit: HillFit) => {
    fits[i] = fit;
    done++;
    costDone += costs[i];
    const elapsedMs = performance.now() - start;
    opts.onProgress?.({ done, total: matrices.length, elapsedMs, etaMs: etaMs(elapsedMs, costDone, total) });
  };
  // workers set OpenBLAS's process-wide count to 1 too; onOneThread restores it afterwards
  await onOneThread(lapack, async () => {
    if (workers === 1) {
      const scratch = new Scratch(); // dropped with the run
      stored.forEach((t, i) => record(i, fitStored(t, lapack, scratch)));
    } else {
      const jobs = stored.map((t, index) => ({ ...t, index })).sort((a, b) => costs[b.index] - costs[a.index]);
      await runWorkers(jobs, workers, lapack !== null, record);
    }
  });
  const how = lapack ? `LAPACK (${lapack.detail})` : `the JS eigensolver (${found.reason})`;
  return { ...alphaHillFromFits(config, fits), engine: `${how}, ${workers === 1 ? 'this thread' : `${workers} workers`}` };
}

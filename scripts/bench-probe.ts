/**
 * Time each probe on model folders and print one table: wall time, CPU time (all threads),
 * peak RSS, and how the eigenvalues were computed. Each row runs in its own process, so its
 * peak RSS is its own.
 *
 *   npx tsx scripts/bench-probe.ts /tmp/shapes/llama-3.2-1b [--probes alpha-hill] [--engines lapack,js]
 *       [--workers 1,2] [--breakdown] [--batches 4 --batch-size 8 --seq 128] [--out scripts/bench-results/probe-cpu.json]
 *
 * --probes: alpha-hill (default), grad-sensitivity, activation-rank, depth. The data probes load
 *   the model (tfjs wasm) and run on random token batches of --batches x --batch-size x --seq.
 * --engines: lapack and/or js, for alpha-hill. --workers: worker-thread counts for alpha-hill.
 * --breakdown: also time one matrix of each distinct shape on one thread: read (decoded to
 *   float32), the float64 Gram product (widened blocks) and the float32 one (what bf16/f16
 *   weights take), eigenvalues and Hill fit, apart (wall and CPU seconds: on a shared machine the
 *   CPU time is what the phase costs), and the eigenvalues again on all of OpenBLAS's threads.
 * --gram-check: every matrix's alpha from the float32 Gram product (what bf16/f16 weights take)
 *   against the float64 one, on the values rounded to bf16: the largest relative difference.
 * --bands 32,64,128: for one matrix of each distinct Gram size, the eigensolver's CPU seconds on
 *   one thread with the first stage's band half-width set (lapack.bandEigenvalues) against
 *   dsyevd_2stage's own, --reps times interleaved (the fastest of each kept), and the relative
 *   alpha difference each band width makes.
 * Random-init folders in real shapes: scripts/make-model-shapes.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadLapack } from '../src/backend/lapack.ts';
import type { Batch } from '../src/data/batch.ts';
import { readModelConfig } from '../src/model/load.ts';
import { alphaHillMatrices } from '../src/probe/alpha-hill.ts';
import { alphaHillFromDir, matrixCost } from '../src/probe/alpha-hill-dir.ts';
import { hillAlpha } from '../src/probe/hill.ts';
import { clock } from '../src/probe/progress.ts';
import { roundTo } from '../src/ops/stored.ts';
import { gramSpectrum, lapackGram, lapackGram32 } from '../src/probe/spectrum.ts';
import { checkpointTensors, readMatrix } from '../src/probe/weights.ts';
import type { ProbeKind } from '../src/probe/types.ts';

interface Row {
  model: string;
  probe: ProbeKind;
  engine: 'lapack' | 'js';
  workers: number;
  batches: number;
  batchSize: number;
  seq: number;
}

interface Measured {
  wallS: number;
  cpuS: number;
  peakRssMiB: number;
  matrices: number;
  detail: string;
  load: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    probes: { type: 'string', default: 'alpha-hill' },
    engines: { type: 'string', default: 'lapack' },
    workers: { type: 'string', default: String(os.availableParallelism()) },
    breakdown: { type: 'boolean', default: false },
    'gram-check': { type: 'boolean', default: false },
    bands: { type: 'string' },
    reps: { type: 'string', default: '2' },
    batches: { type: 'string', default: '4' },
    'batch-size': { type: 'string', default: '8' },
    seq: { type: 'string', default: '128' },
    out: { type: 'string' },
    row: { type: 'string' }, // internal: run one row in this process, print its JSON
  },
});

/** Random token batches with every position real and carrying loss. */
function randomBatches(vocab: number, n: number, B: number, T: number): Batch[] {
  let s = 28;
  const next = () => (s = (s * 16807) % 2147483647);
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: B * T }, () => next() % vocab);
    return { inputIds: ids, attentionMask: new Float32Array(B * T).fill(1), labels: ids.slice(), batchSize: B, seqLen: T };
  });
}

async function runRow(row: Row): Promise<Measured> {
  const config = readModelConfig(row.model);
  const load = os.loadavg()[0];
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let detail = '';
  let matrices = 0;
  if (row.probe === 'alpha-hill') {
    const r = await alphaHillFromDir(config, row.model, { workers: row.workers, native: row.engine === 'lapack' });
    detail = r.engine;
    matrices = r.fits.reduce((a, f) => a + Object.keys(f).length, 0);
  } else {
    const { runProbe } = await import('../src/probe/run.ts');
    const batches = row.probe === 'depth' ? undefined : randomBatches(config.vocabSize, row.batches, row.batchSize, row.seq);
    let lm;
    if (batches) {
      const { initBackend } = await import('../src/backend/index.ts');
      const { loadModel } = await import('../src/model/load.ts');
      detail = (await initBackend('wasm')).detail;
      lm = await loadModel(row.model);
    }
    await runProbe(row.probe, { config, dir: row.model, lm }, { batches });
    lm?.dispose();
    if (batches) detail = `${row.batches} x ${row.batchSize} x ${row.seq} tokens; ${detail}`;
  }
  const c = process.cpuUsage(c0);
  return {
    wallS: (performance.now() - t0) / 1000,
    cpuS: (c.user + c.system) / 1e6,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    matrices,
    detail,
    load,
  };
}

/**
 * One matrix of each distinct shape, on this thread: where the time goes (wall and CPU seconds
 * per phase, OpenBLAS on one thread), and the eigensolver again on all of OpenBLAS's threads,
 * which says whether one matrix per core (the workers) or one at a time on every core is faster.
 */
function breakdown(model: string): Array<Record<string, number | string>> {
  const found = loadLapack();
  if (!found.lapack) throw new Error(`--breakdown needs LAPACK: ${found.reason}`);
  const lapack = found.lapack;
  const threads = lapack.threads?.getThreads() ?? 1;
  const config = readModelConfig(model);
  const locate = checkpointTensors(model, config);
  const seen = new Map<string, string>();
  for (const m of alphaHillMatrices(config)) {
    const key = `${Math.min(m.in, m.out)}x${Math.max(m.in, m.out)}`;
    if (!seen.has(key)) seen.set(key, m.module);
  }
  const timed = <T>(f: () => T): [T, number, number] => {
    const t = performance.now();
    const c = process.cpuUsage();
    const out = f();
    const u = process.cpuUsage(c);
    return [out, (performance.now() - t) / 1000, (u.user + u.system) / 1e6];
  };
  return [...seen].map(([shape, module]) => {
    lapack.threads?.setThreads(1);
    const [w, readS, readCpuS] = timed(() => readMatrix(locate(module)));
    const small = Math.min(w.rows, w.cols);
    const [gram, gramS, gramCpuS] = timed(() => lapackGram(w, lapack));
    const [, gram32S, gram32CpuS] = timed(() => lapackGram32(w, lapack));
    const [eig, eigS, eigCpuS] = timed(() => gramSpectrum(gram, small, lapack));
    const [, fitS] = timed(() => hillAlpha(eig));
    lapack.threads?.setThreads(threads);
    const again = lapackGram(w, lapack);
    const [, eigAllS] = timed(() => lapack.eigenvalues(again, small));
    return {
      shape, module, dtype: w.dtype, readS, readCpuS, gramS, gramCpuS, gram32S, gram32CpuS, eigS, eigCpuS, fitS,
      eigAllThreadsS: eigAllS, threads, cost: matrixCost(w.rows, w.cols),
    };
  });
}

/** Largest relative alpha difference, float32 against float64 Gram product, over every matrix of `model` rounded to bf16. */
function gramCheck(model: string): { matrices: number; maxRelAlpha: number; worst: string; tailsDiffer: number; gram64CpuS: number; gram32CpuS: number } {
  const lapack = loadLapack().lapack;
  if (!lapack) throw new Error('--gram-check needs LAPACK');
  lapack.threads?.setThreads(1);
  const config = readModelConfig(model);
  const locate = checkpointTensors(model, config);
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
  const out = { matrices: 0, maxRelAlpha: 0, worst: '', tailsDiffer: 0, gram64CpuS: 0, gram32CpuS: 0 };
  for (const m of alphaHillMatrices(config)) {
    const r = readMatrix(locate(m.module));
    const w = { ...r, data: roundTo(r.data, 'bfloat16') };
    const n = Math.min(w.rows, w.cols);
    let c = cpu();
    const g64 = lapackGram(w, lapack);
    out.gram64CpuS += cpu() - c;
    c = cpu();
    const g32 = lapackGram32(w, lapack);
    out.gram32CpuS += cpu() - c;
    const a = hillAlpha(gramSpectrum(g64, n, lapack));
    const b = hillAlpha(gramSpectrum(g32, n, lapack));
    const d = Math.abs(b.alpha - a.alpha) / Math.abs(a.alpha);
    if (d > out.maxRelAlpha) [out.maxRelAlpha, out.worst] = [d, m.module];
    if (a.tail !== b.tail) out.tailsDiffer++;
    out.matrices++;
  }
  return out;
}

/** The eigensolver per band width against dsyevd_2stage, one matrix per Gram size (see --bands). */
function bandCheck(model: string, bands: number[], reps: number): Array<Record<string, number | string>> {
  const lapack = loadLapack().lapack;
  if (!lapack?.bandEigenvalues) throw new Error('--bands needs LAPACK with dsytrd_sy2sb, dsytrd_sb2st and dsterf');
  const band = lapack.bandEigenvalues;
  const threads = lapack.threads?.getThreads() ?? 1;
  lapack.threads?.setThreads(1);
  const config = readModelConfig(model);
  const locate = checkpointTensors(model, config);
  const bySize = new Map<number, string>();
  for (const m of alphaHillMatrices(config)) if (!bySize.has(Math.min(m.in, m.out))) bySize.set(Math.min(m.in, m.out), m.module);
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
  const out: Array<Record<string, number | string>> = [];
  for (const [n, module] of bySize) {
    const w = readMatrix(locate(module));
    const gram = w.dtype === 'BF16' || w.dtype === 'F16' ? lapackGram32(w, lapack) : lapackGram(w, lapack);
    const solvers: Array<[string, (a: Float64Array) => Float64Array]> = [
      ['dsyevd_2stage', (a) => lapack.syevdEigenvalues(a, n)],
      ...bands.map((kd) => [`band ${kd}`, (a: Float64Array) => band(a, n, kd)] as [string, (a: Float64Array) => Float64Array]),
    ];
    const best = new Map<string, number>();
    const alpha = new Map<string, number>();
    for (let r = 0; r < reps; r++) {
      for (const [name, solve] of solvers) {
        const a = gram.slice();
        const c = cpu();
        const eig = solve(a);
        best.set(name, Math.min(best.get(name) ?? Infinity, cpu() - c));
        alpha.set(name, hillAlpha(eig.map((x) => Math.max(0, x))).alpha);
      }
    }
    const ref = alpha.get('dsyevd_2stage')!;
    for (const [name] of solvers) {
      out.push({ n, module, solver: name, cpuS: best.get(name)!, relAlpha: Math.abs(alpha.get(name)! - ref) / ref });
    }
  }
  lapack.threads?.setThreads(threads);
  return out;
}

const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const pad = (cells: string[], widths: number[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  return [pad(head, widths), ...body.map((r) => pad(r, widths))].join('\n');
}

if (values.row) {
  process.stdout.write(`${JSON.stringify(await runRow(JSON.parse(values.row) as Row))}\n`);
} else {
  if (positionals.length === 0) throw new Error('usage: npx tsx scripts/bench-probe.ts MODEL_DIR... (see the file comment)');
  const rows: Array<Row & Measured> = [];
  const breakdowns: Record<string, Array<Record<string, number | string>>> = {};
  const gramChecks: Record<string, ReturnType<typeof gramCheck>> = {};
  const bandChecks: Record<string, ReturnType<typeof bandCheck>> = {};
  for (const model of positionals.map((p) => path.resolve(p))) {
    if (values['gram-check']) {
      gramChecks[model] = gramCheck(model);
      console.log(`${model}: float32 against float64 Gram product, bf16 values: ${JSON.stringify(gramChecks[model])}`);
    }
    if (values.bands) {
      bandChecks[model] = bandCheck(model, list(values.bands).map(Number), Number(values.reps));
      console.log(`${model}: eigenvalues by band width, one thread, fastest of ${values.reps}`);
      console.log(table(['n', 'module', 'solver', 'CPU s', 'rel alpha'],
        bandChecks[model].map((b) => [String(b.n), String(b.module), String(b.solver), (b.cpuS as number).toFixed(3), (b.relAlpha as number).toExponential(2)])));
    }
    if (values.breakdown) {
      breakdowns[model] = breakdown(model);
      console.log(`${model}: one matrix per shape, one thread`);
      console.log(table(['shape', 'module', 'dtype', 'read s (CPU)', 'f64 Gram s (CPU)', 'f32 Gram s (CPU)', 'eig s (CPU)', 'fit s', `eig s, ${breakdowns[model][0].threads} threads`],
        breakdowns[model].map((b) => {
          const f = (k: string) => (b[k] as number).toFixed(2);
          return [String(b.shape), String(b.module), String(b.dtype), `${f('readS')} (${f('readCpuS')})`, `${f('gramS')} (${f('gramCpuS')})`,
            `${f('gram32S')} (${f('gram32CpuS')})`, `${f('eigS')} (${f('eigCpuS')})`, f('fitS'), f('eigAllThreadsS')];
        })));
    }
    for (const probe of list(values.probes) as ProbeKind[]) {
      const engines = probe === 'alpha-hill' ? (list(values.engines) as Row['engine'][]) : (['lapack'] as const);
      const workerCounts = probe === 'alpha-hill' ? list(values.workers).map(Number) : [1];
      for (const engine of engines) {
        for (const workers of workerCounts) {
          const row: Row = { model, probe, engine, workers, batches: Number(values.batches), batchSize: Number(values['batch-size']), seq: Number(values.seq) };
          const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--row', JSON.stringify(row)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
          if (child.status !== 0) throw new Error(`row ${JSON.stringify(row)} failed (exit ${child.status})`);
          const m = JSON.parse(child.stdout.trim().split('\n').pop()!) as Measured;
          rows.push({ ...row, ...m });
          console.error(`${path.basename(model)} ${probe} ${engine} x${workers}: ${clock(m.wallS * 1000)}`);
        }
      }
    }
  }
  console.log(table(
    ['model', 'probe', 'engine', 'workers', 'matrices', 'wall', 'CPU s', 'peak RSS MiB', 'load'],
    rows.map((r) => [path.basename(r.model), r.probe, r.probe === 'alpha-hill' ? r.engine : '-', String(r.workers), String(r.matrices),
      clock(r.wallS * 1000), r.cpuS.toFixed(1), r.peakRssMiB.toFixed(0), r.load.toFixed(1)]),
  ));
  for (const r of rows) console.log(`${path.basename(r.model)} ${r.probe}: ${r.detail}`);
  if (values.out) {
    const result = {
      bench: 'hilo_probe',
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.availableParallelism(),
      note: 'shared 2-core machine: other jobs ran at the same time (load = 1-minute load average at the start of each row)',
      rows: rows.map(({ batches, batchSize, seq, ...r }) => ({
        ...r, model: path.basename(r.model), ...(r.probe === 'alpha-hill' ? {} : { batches, batchSize, seq }),
      })),
      breakdown: Object.fromEntries(Object.entries(breakdowns).map(([k, v]) => [path.basename(k), v])),
      gramCheck: Object.fromEntries(Object.entries(gramChecks).map(([k, v]) => [path.basename(k), v])),
      bands: Object.fromEntries(Object.entries(bandChecks).map(([k, v]) => [path.basename(k), v])),
    };
    fs.writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eigenBand, loadLapack } from '../../src/backend/lapack.ts';
import { alphaHillMatrices, alphaHillScores } from '../../src/probe/alpha-hill.ts';
import { alphaHillFromDir, bytesPerMatrix, fitStored, matrixCost } from '../../src/probe/alpha-hill-dir.ts';
import { gramEigenvalues, hillAlpha } from '../../src/probe/hill.ts';
import { GRAM32_BLOCK, lapackGram, lapackGram32, lapackGram32Eigenvalues, lapackGramEigenvalues, Scratch } from '../../src/probe/spectrum.ts';
import { checkpointMatrices, checkpointTensors, readMatrix } from '../../src/probe/weights.ts';
import { roundTo } from '../../src/ops/stored.ts';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';
import os from 'node:os';
import { readModelConfig } from '../../src/model/load.ts';
import { fixture, ROOT, STORIES260K } from '../helpers/fixtures.ts';

const MODELS = {
  'hilo-base': path.join(ROOT, 'models/hilo-base'),
  stories260K: STORIES260K,
};
// Written by scripts/eigvalsh-reference.py (numpy's eigvalsh of each Gram matrix).
const numpy = JSON.parse(fs.readFileSync(fixture('probe/eigvalsh.json'), 'utf8')) as {
  cases: Array<{ name: string; rows: number; cols: number; data: number[]; eigenvalues: number[]; fit: { alpha: number; xmin: number; ks: number; tail: number } }>;
};
const found = loadLapack();
const lapack = found.lapack;
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('loadLapack', () => {
  it('HILO_BLAS=off turns it off, saying so', () => {
    expect(loadLapack({ HILO_BLAS: 'off' })).toEqual({ lapack: null, reason: 'HILO_BLAS=off' });
  });

  it('a library without LAPACK is a reason to take the JS path, not an error', () => {
    const r = loadLapack({ HILO_BLAS: 'libc.so.6' });
    expect(r.lapack).toBeNull();
    expect(r.lapack === null && r.reason).toMatch(/^HILO_BLAS=libc\.so\.6: .*cblas_dsyrk/);
  });
});

describe('Gram spectra against numpy eigvalsh', () => {
  const engines = [
    ['JS', gramEigenvalues],
    ...(lapack ? [['LAPACK', (w: { rows: number; cols: number; data: number[] }) => lapackGramEigenvalues(w, lapack)] as const] : []),
    // blocks of 7 doubles: several Gram products per matrix, the last one short
    ...(lapack ? [['LAPACK in blocks', (w: { rows: number; cols: number; data: number[] }) => lapackGramEigenvalues(w, lapack, 7 * Math.max(w.rows, w.cols))] as const] : []),
  ] as const;
  it.each(engines.flatMap(([engine, f]) => numpy.cases.map((c) => [engine, c.name, f, c] as const)))('%s: %s', (_e, _n, eig, c) => {
    const got = eig({ rows: c.rows, cols: c.cols, data: c.data });
    const top = c.eigenvalues[c.eigenvalues.length - 1];
    expect(got).toHaveLength(c.eigenvalues.length);
    got.forEach((x, i) => expect(Math.abs(x - c.eigenvalues[i])).toBeLessThan(1e-12 * top));
    const fit = hillAlpha(got);
    expect(fit.tail).toBe(c.fit.tail);
    expect(rel(fit.alpha, c.fit.alpha)).toBeLessThan(1e-9);
    expect(rel(fit.xmin, c.fit.xmin)).toBeLessThan(1e-9);
  });

  it.skipIf(!lapack?.bandEigenvalues)('the stages one by one: at band 32 (dsyevd_2stage\'s own) the same bits, at other widths within round-off', () => {
    for (const c of numpy.cases) {
      const n = Math.min(c.rows, c.cols);
      const gram = lapackGram({ rows: c.rows, cols: c.cols, data: c.data }, lapack!);
      const own = lapack!.syevdEigenvalues(gram.slice(), n);
      expect(lapack!.bandEigenvalues!(gram.slice(), n, 32), c.name).toEqual(own);
      const top = c.eigenvalues[n - 1];
      for (const kd of [3, 8, 64]) {
        const got = lapack!.bandEigenvalues!(gram.slice(), n, kd);
        got.forEach((x, i) => expect(Math.abs(x - c.eigenvalues[i]), `${c.name} band ${kd}`).toBeLessThan(1e-12 * top));
        expect(lapack!.bandEigenvalues!(gram.slice(), n, kd), `${c.name} band ${kd}, kept workspace`).toEqual(got);
      }
    }
  });

  it.skipIf(!lapack?.bandEigenvalues)('eigenvalues() takes the stages at eigenBand(n); a Gram the drivers would scale goes to the driver', () => {
    expect([eigenBand(2048), eigenBand(4096)]).toEqual([32, 64]);
    const c = numpy.cases[0];
    const n = Math.min(c.rows, c.cols);
    const gram = lapackGram({ rows: c.rows, cols: c.cols, data: c.data }, lapack!);
    expect(lapack!.eigenvalues(gram.slice(), n)).toEqual(lapack!.bandEigenvalues!(gram.slice(), n, eigenBand(n)));
    for (const scale of [1e150, 1e-150]) {
      const scaled = gram.map((x) => x * scale);
      const got = lapack!.eigenvalues(scaled.slice(), n);
      expect(got).toEqual(lapack!.syevdEigenvalues(scaled.slice(), n));
      got.forEach((x, i) => expect(Math.abs(x / scale - c.eigenvalues[i])).toBeLessThan(1e-12 * c.eigenvalues[n - 1]));
    }
    expect(lapack!.detail).toMatch(/dsytrd_sy2sb \+ dsytrd_sb2st \+ dsterf$/);
  });

  it.skipIf(!lapack)('the LAPACK spectrum is ascending and clamped at 0 (a rank-deficient Gram)', () => {
    const c = numpy.cases.find((x) => x.name === 'square-rank12')!;
    const got = lapackGramEigenvalues({ rows: c.rows, cols: c.cols, data: c.data }, lapack!);
    expect(Math.min(...got)).toBeGreaterThanOrEqual(0);
    for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThanOrEqual(got[i - 1]);
  });
});

describe.skipIf(!lapack)('alpha-hill through LAPACK gives today\'s JS scores', () => {
  it.each(Object.entries(MODELS))('%s: every matrix and layer within 1e-6 relative, same tails', (_name, dir) => {
    const config = readModelConfig(dir);
    const matrices = checkpointMatrices(dir, config);
    const js = alphaHillScores(config, matrices);
    const native = alphaHillScores(config, matrices, { lapack });
    let n = 0;
    js.fits.forEach((mods, l) => {
      for (const [p, f] of Object.entries(mods)) {
        const g = native.fits[l][p];
        expect(g.tail, `${l} ${p}`).toBe(f.tail);
        expect(rel(g.alpha, f.alpha), `${l} ${p}`).toBeLessThan(1e-6);
        expect(rel(g.xmin, f.xmin), `${l} ${p}`).toBeLessThan(1e-6);
        expect(rel(g.ks, f.ks), `${l} ${p}`).toBeLessThan(1e-6);
        n++;
      }
    });
    expect(n).toBe(7 * config.numLayers);
    js.layers.forEach((a, l) => expect(rel(native.layers[l], a)).toBeLessThan(1e-6));
  });
});

describe.skipIf(!lapack)('the float32 Gram product of half-precision weights', () => {
  // as the probe runs it: OpenBLAS on one thread (waking a second costs more on a busy machine)
  const threads = lapack?.threads?.getThreads();
  beforeAll(() => lapack?.threads?.setThreads(1));
  afterAll(() => threads && lapack?.threads?.setThreads(threads));

  /** Every alpha-hill matrix of `dir`, its values rounded to bfloat16. */
  const bf16Matrices = (dir: string) => {
    const config = readModelConfig(dir);
    const locate = checkpointTensors(dir, config);
    return alphaHillMatrices(config).map((m) => {
      const w = readMatrix(locate(m.module));
      return { module: m.module, rows: w.rows, cols: w.cols, data: roundTo(w.data, 'bfloat16') };
    });
  };

  it.each(Object.entries(MODELS))('%s in bfloat16: every alpha within 1e-6 relative of the float64 product, same tails', (_name, dir) => {
    let worst = 0;
    for (const w of bf16Matrices(dir)) {
      const f64 = hillAlpha(lapackGramEigenvalues(w, lapack!));
      const f32 = hillAlpha(lapackGram32Eigenvalues(w, lapack!));
      expect(f32.tail, w.module).toBe(f64.tail);
      worst = Math.max(worst, rel(f32.alpha, f64.alpha));
    }
    expect(worst).toBeLessThan(1e-6);
    expect(worst).toBeGreaterThan(0); // the two products differ: the float32 one ran
  });

  it('several blocks either way round: the Gram within float32 accumulation error of the float64 one', () => {
    let s = 11;
    const next = () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5);
    const wide = { rows: 96, cols: 2 * GRAM32_BLOCK + 77, data: roundTo(Float32Array.from({ length: 96 * (2 * GRAM32_BLOCK + 77) }, next), 'bfloat16') };
    const tall = { rows: wide.cols, cols: wide.rows, data: wide.data }; // another matrix, same sizes transposed
    for (const w of [wide, tall]) {
      const want = lapackGram(w, lapack!);
      for (const block of [GRAM32_BLOCK, 100]) {
        const got = lapackGram32(w, lapack!, block);
        const n = Math.min(w.rows, w.cols);
        let top = 0;
        for (let i = 0; i < n; i++) top = Math.max(top, want[i * n + i]);
        for (let i = 0; i < n; i++) for (let j = i; j < n; j++) expect(Math.abs(got[i * n + j] - want[i * n + j])).toBeLessThan(1e-6 * top);
        const a = hillAlpha(lapackGram32Eigenvalues(w, lapack!, block)).alpha;
        expect(rel(a, hillAlpha(lapackGramEigenvalues(w, lapack!)).alpha)).toBeLessThan(1e-6);
      }
    }
  });

  it('one scratch carried across matrices of different sizes gives each matrix its fresh-buffer Gram, bit for bit', () => {
    let s = 5;
    const next = () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5);
    const make = (rows: number, cols: number) => ({ rows, cols, data: roundTo(Float32Array.from({ length: rows * cols }, next), 'bfloat16') });
    const scratch = new Scratch();
    for (const w of [make(300, 90), make(40, 50), make(70, 1100), make(90, 300)]) { // large, smaller (a view), wider
      const n = Math.min(w.rows, w.cols);
      const upper = (g: Float64Array) => Array.from({ length: n * n }, (_, k) => (k % n >= Math.floor(k / n) ? g[k] : 0));
      expect(upper(lapackGram32(w, lapack!, 64, scratch))).toEqual(upper(lapackGram32(w, lapack!, 64)));
      expect(upper(lapackGram(w, lapack!, 500, scratch))).toEqual(upper(lapackGram(w, lapack!, 500)));
    }
  });

  it('a bfloat16 checkpoint folder takes it; a float32 one keeps the float64 product', async () => {
    const src = STORIES260K;
    const config = readModelConfig(src);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-bf16-'));
    try {
      fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
      const matrices = bf16Matrices(src);
      writeSafetensors(path.join(dir, 'model.safetensors'), Object.fromEntries(matrices.map((w) => [`${w.module}.weight`, { shape: [w.rows, w.cols], data: w.data, dtype: 'BF16' as const }])));
      // bf16 weights are read straight into a float32 buffer and widened in place: the values
      // readSafetensors decodes, with or without a scratch (a larger buffer's start)
      const locate = checkpointTensors(dir, config);
      const scratch = new Scratch();
      scratch.f32('weight', 4 * config.hiddenSize * config.hiddenSize).fill(7);
      for (const m of alphaHillMatrices(config).slice(0, 9)) {
        const t = locate(m.module);
        const want = readSafetensors(t.file, [t.name]).tensors.get(t.name)!.data;
        const fresh = readMatrix(t);
        expect(fresh.dtype).toBe('BF16');
        expect(fresh.data).toEqual(want);
        expect(readMatrix(t, scratch).data).toEqual(want);
        expect(Array.from(want).some((x) => x < 0)).toBe(true);
        expect(fitStored(t, lapack, scratch)).toEqual(fitStored(t, lapack));
      }
      const r = await alphaHillFromDir(config, dir, { workers: 1 });
      // BLAS's thread count changes the summation order: "the same" is to 1e-12, far below the
      // float32 product's differences
      let differs = 0;
      alphaHillMatrices(config).forEach((m, i) => {
        const got = r.fits[m.layer][m.path].alpha;
        expect(rel(got, hillAlpha(lapackGram32Eigenvalues(matrices[i], lapack!)).alpha), m.module).toBeLessThan(1e-12);
        if (rel(got, hillAlpha(lapackGramEigenvalues(matrices[i], lapack!)).alpha) > 1e-12) differs++;
      });
      expect(differs).toBeGreaterThan(0);
      // the float32 fixture folder: the float64 product's fits
      const f = await alphaHillFromDir(config, src, { workers: 1 });
      const matrixOf = checkpointMatrices(src, config);
      alphaHillMatrices(config).forEach((m) => {
        expect(rel(f.fits[m.layer][m.path].alpha, hillAlpha(lapackGramEigenvalues(matrixOf(m.module), lapack!)).alpha), m.module).toBeLessThan(1e-12);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('alpha-hill on a directory', () => {
  const dir = MODELS.stories260K;
  const config = readModelConfig(dir);
  const reference = alphaHillScores(config, checkpointMatrices(dir, config)); // JS, this thread

  it('in worker threads, with progress after every matrix, the same scores', async () => {
    const seen: Array<[number, number]> = [];
    const r = await alphaHillFromDir(config, dir, { workers: 2, onProgress: (p) => seen.push([p.done, p.total]) });
    expect(r.engine).toMatch(lapack ? /^LAPACK \(.*\), 2 workers$/ : /^the JS eigensolver .*, 2 workers$/);
    expect(seen).toEqual(Array.from({ length: 35 }, (_, i) => [i + 1, 35]));
    r.layers.forEach((a, l) => expect(rel(a, reference.layers[l])).toBeLessThan(1e-6));
    expect(Object.keys(r.modules[4])).toEqual(Object.keys(reference.modules[4]));
  });

  it('2 workers give exactly the fits of this thread (both OpenBLAS on one thread)', async () => {
    const one = await alphaHillFromDir(config, dir, { workers: 1 });
    const two = await alphaHillFromDir(config, dir, { workers: 2 });
    expect(two.engine).toMatch(/2 workers$/);
    expect(two.fits).toEqual(one.fits);
    expect(two.layers).toEqual(one.layers);
  });

  it('the JS path in workers is the JS path', async () => {
    const r = await alphaHillFromDir(config, dir, { workers: 2, native: false });
    expect(r.engine).toBe('the JS eigensolver (native: false), 2 workers');
    expect(r.fits).toEqual(reference.fits);
  });

  it('small models stay on this thread', async () => {
    const r = await alphaHillFromDir(config, dir, {});
    expect(r.engine).toMatch(/this thread$/);
    r.layers.forEach((a, l) => expect(rel(a, reference.layers[l])).toBeLessThan(1e-6));
  });

  it('a missing tensor is named before any work starts', async () => {
    await expect(alphaHillFromDir({ ...config, numLayers: 6 }, dir, { workers: 2 })).rejects.toThrow(
      `${dir}: no tensor "model.layers.5.self_attn.q_proj.weight" for module model.layers.5.self_attn.q_proj`,
    );
  });
});

describe('matrixCost', () => {
  it.each([
    [2048, 2048, 2048 ** 3 / 2 + 2 * 2048 ** 3],
    [8192, 2048, (2048 * 2048 * 8192) / 2 + 2 * 2048 ** 3],
    [2048, 8192, (2048 * 2048 * 8192) / 2 + 2 * 2048 ** 3],
    [4096, 4096, 8 * (2048 ** 3 / 2 + 2 * 2048 ** 3)],
  ])('[%i, %i] -> %d', (r, c, want) => expect(matrixCost(r, c)).toBe(want));
});

describe('bytesPerMatrix', () => {
  it('the largest matrix: stored + float32 (8 bytes a value at most), its float64 and float32 block Grams, the widening block', () => {
    const block = 8 * 2 ** 21;
    expect(bytesPerMatrix([{ in: 4096, out: 11008 }, { in: 4096, out: 4096 }])).toBe(8 * 4096 * 11008 + 12 * 4096 ** 2 + block);
    expect(bytesPerMatrix([{ in: 64, out: 32 }])).toBe(8 * 64 * 32 + 12 * 32 ** 2 + block);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { alphaHillScores } from '../../src/probe/alpha-hill.ts';
import { gramEigenvalues, hillAlpha } from '../../src/probe/hill.ts';
import { checkpointMatrices } from '../../src/probe/weights.ts';
import { readModelConfig } from '../../src/model/load.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
// Written by scripts/alpha-hill-reference.py (numpy float64 SVD, independent of this code).
const ref = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../fixtures/probe/alpha-hill-stories260K.json'), 'utf8')) as {
  layers: number[];
  matrices: Record<string, { alpha: number; xmin: number; ks: number; tail: number }>;
};
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('alpha-hill on stories260K matches the numpy float64 reference', () => {
  const config = readModelConfig(MODEL);
  const scores = alphaHillScores(config, checkpointMatrices(MODEL, config));

  it('per matrix: alpha, x_min and KS distance to 1e-3 relative, same tail', () => {
    let n = 0;
    scores.fits.forEach((mods, l) => {
      for (const [p, fit] of Object.entries(mods)) {
        const want = ref.matrices[`model.layers.${l}.${p}`];
        expect(want, p).toBeDefined();
        expect(fit.tail, p).toBe(want.tail);
        expect(rel(fit.alpha, want.alpha), p).toBeLessThan(1e-3);
        expect(rel(fit.xmin, want.xmin), p).toBeLessThan(1e-3);
        expect(rel(fit.ks, want.ks), p).toBeLessThan(1e-3);
        n++;
      }
    });
    expect(n).toBe(35);
    expect(Object.keys(ref.matrices)).toHaveLength(35);
  });

  it('per layer: mean alpha to 1e-3 relative', () => {
    expect(scores.layers).toHaveLength(5);
    scores.layers.forEach((a, l) => expect(rel(a, ref.layers[l])).toBeLessThan(1e-3));
    expect(scores.modules[2]['mlp.up_proj']).toBe(scores.fits[2]['mlp.up_proj'].alpha);
  });
});

describe('Hill estimator pieces', () => {
  it('eigenvalues of W^T W are the squared singular values, from either Gram side', () => {
    // W = [[3, 0], [0, 4], [0, 0]]: singular values 3, 4
    const tall = { rows: 3, cols: 2, data: [3, 0, 0, 4, 0, 0] };
    const wide = { rows: 2, cols: 3, data: [3, 0, 0, 0, 4, 0] };
    expect(Array.from(gramEigenvalues(tall))).toEqual([9, 16]);
    expect(Array.from(gramEigenvalues(wide))).toEqual([9, 16]);
  });

  it('recovers the exponent of an exact power-law sample', () => {
    // quantiles of a Pareto with density exponent 3 (CDF 1 - x^-2): lambda_k = (1 - k/n)^(-1/2)
    const n = 2000;
    const eigs = Array.from({ length: n }, (_, k) => (1 - k / n) ** -0.5);
    const fit = hillAlpha(eigs);
    expect(fit.alpha).toBeGreaterThan(2.9);
    expect(fit.alpha).toBeLessThan(3.1);
    expect(fit.ks).toBeLessThan(0.01);
  });

  it('hand case: two eigenvalues e^0, e^1 -> alpha = 1 + 2/1 = 3 with x_min = 1', () => {
    const fit = hillAlpha([1, Math.E]);
    expect(fit.alpha).toBeCloseTo(3, 12);
    expect(fit.xmin).toBe(1);
    // D = max(|1 - 1 - 0|, |1 - e^-2 - 1/2|)
    expect(fit.ks).toBeCloseTo(Math.abs(0.5 - Math.exp(-2)), 12);
  });

  it('the pruned search picks what scoring every candidate in full picks', () => {
    // the file comment's procedure, verbatim: every candidate, every k, first minimum
    const full = (eigs: number[]) => {
      const nz = eigs.filter((x) => x > 1e-5);
      const logs = nz.map(Math.log);
      const suffix = logs.map((_, i) => logs.slice(i).reduceRight((a, b) => a + b, 0)); // summed as hill.ts does, last first
      let best: { alpha: number; ks: number; tail: number } | null = null;
      for (let i = 0; i < nz.length - 1; i++) {
        const n = nz.length - i;
        const s = suffix[i] - n * logs[i];
        if (!(s > 0)) continue;
        const alpha = 1 + n / s;
        let d = 0;
        for (let k = 0; k < n; k++) d = Math.max(d, Math.abs(1 - (nz[i + k] / nz[i]) ** (1 - alpha) - k / n));
        if (!best || d < best.ks) best = { alpha, ks: d, tail: n };
      }
      return best!;
    };
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const spectra = [
      Array.from({ length: 300 }, () => (2 * rand()) ** 2).sort((a, b) => a - b), // Marchenko-Pastur-like bulk
      Array.from({ length: 300 }, () => (2 * rand()) ** 2 + (rand() < 0.05 ? 1 / (rand() + 1e-3) : 0)).sort((a, b) => a - b), // with a tail
      Array.from({ length: 200 }, () => rand() ** -0.6).sort((a, b) => a - b), // power law
      [1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8], // repeated values: ties in D
    ];
    for (const eigs of spectra) {
      const want = full(eigs);
      const got = hillAlpha(eigs);
      expect([got.alpha, got.ks, got.tail]).toEqual([want.alpha, want.ks, want.tail]);
    }
  });

  it('refuses spectra it cannot fit', () => {
    expect(() => hillAlpha([0, 1e-9, 2])).toThrow(/at least 2 eigenvalues above 1e-5; got 1/);
    expect(() => hillAlpha([2, 2, 2])).toThrow(/flat/);
  });
});

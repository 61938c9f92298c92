/**
 * The alpha-hill probe (AlphaLoRA): per adaptable weight matrix of a decoder layer, the HT-SR
 * power-law exponent alpha of its eigenvalue spectrum (hill.ts); the layer score is the mean
 * over the layer's matrices. Higher alpha = less heavy-tailed = "less trained" = more experts.
 * All of a layer's linear projections count (q, k, v, o, gate, up, down; GPT-2's fused c_attn is
 * one matrix), whether or not the recipe adapts them, as AlphaLoRA does.
 */
import type { Lapack } from '../backend/lapack.ts';
import { layerPrefix, moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { hillAlpha, type HillFit, type WeightMatrix } from './hill.ts';
import { matrixSpectrum } from './spectrum.ts';

export interface AlphaHillScores {
  layers: number[];
  /** alpha per in-layer module path, per layer. */
  modules: Array<Record<string, number>>;
  /** The fit behind each alpha (x_min, KS distance, tail size), same indexing as modules. */
  fits: Array<Record<string, HillFit>>;
}

/** One matrix the probe fits: its layer, in-layer path and HF module path. */
export interface AlphaHillMatrix {
  layer: number;
  path: string;
  module: string;
  /** Weight shape [in, out] (orientation does not matter for the spectrum). */
  in: number;
  out: number;
}

/** Every matrix alpha-hill fits, layer by layer, in module order. */
export function alphaHillMatrices(config: ModelConfig): AlphaHillMatrix[] {
  return moduleShapes(config).flatMap((mods, l) =>
    Object.entries(mods).map(([path, s]) => ({ layer: l, path, module: `${layerPrefix(config, l)}.${path}`, in: s.in, out: s.out })));
}

/** Layer scores from one fit per matrix of alphaHillMatrices(config), in that order. */
export function alphaHillFromFits(config: ModelConfig, fits: readonly HillFit[]): AlphaHillScores {
  const matrices = alphaHillMatrices(config);
  if (fits.length !== matrices.length) throw new Error(`alpha-hill: ${fits.length} fits for ${matrices.length} matrices`);
  const out: AlphaHillScores = { layers: [], modules: [], fits: [] };
  matrices.forEach((m, i) => {
    if (m.layer === out.modules.length) {
      out.modules.push({});
      out.fits.push({});
    }
    out.modules[m.layer][m.path] = fits[i].alpha;
    out.fits[m.layer][m.path] = fits[i];
  });
  for (const alphas of out.modules) {
    const values = Object.values(alphas);
    out.layers.push(values.reduce((a, b) => a + b, 0) / values.length);
  }
  return out;
}

/**
 * `matrixOf(hfPath)` gives the weight of module `model.layers.3.mlp.up_proj` (any orientation).
 * Eigenvalues through `lapack` when given, else the JS eigensolver; `onMatrix` after each fit.
 */
export function alphaHillScores(
  config: ModelConfig,
  matrixOf: (modulePath: string) => WeightMatrix,
  opts: { lapack?: Lapack | null; onMatrix?: (done: number) => void } = {},
): AlphaHillScores {
  const fits = alphaHillMatrices(config).map((m, i) => {
    const fit = hillAlpha(matrixSpectrum(matrixOf(m.module), opts.lapack ?? null));
    opts.onMatrix?.(i + 1);
    return fit;
  });
  return alphaHillFromFits(config, fits);
}

/**
 * The alpha-hill probe (AlphaLoRA): per adaptable weight matrix of a decoder layer, the HT-SR
 * power-law exponent alpha of its eigenvalue spectrum (hill.ts); the layer score is the mean
 * over the layer's matrices. Higher alpha = less heavy-tailed = "less trained" = more experts.
 * All of a layer's linear projections count (q, k, v, o, gate, up, down; GPT-2's fused c_attn is
 * one matrix), whether or not the recipe adapts them, as AlphaLoRA does.
 */
import { layerPrefix, moduleShapes } from '../model/shapes.ts';
import type { ModelConfig } from '../model/types.ts';
import { gramEigenvalues, hillAlpha, type HillFit, type WeightMatrix } from './hill.ts';

export interface AlphaHillScores {
  layers: number[];
  /** alpha per in-layer module path, per layer. */
  modules: Array<Record<string, number>>;
  /** The fit behind each alpha (x_min, KS distance, tail size), same indexing as modules. */
  fits: Array<Record<string, HillFit>>;
}

/** `matrixOf(hfPath)` gives the weight of module `model.layers.3.mlp.up_proj` (any orientation). */
export function alphaHillScores(config: ModelConfig, matrixOf: (modulePath: string) => WeightMatrix): AlphaHillScores {
  const out: AlphaHillScores = { layers: [], modules: [], fits: [] };
  moduleShapes(config).forEach((mods, l) => {
    const alphas: Record<string, number> = {};
    const fits: Record<string, HillFit> = {};
    for (const path of Object.keys(mods)) {
      const fit = hillAlpha(gramEigenvalues(matrixOf(`${layerPrefix(config, l)}.${path}`)));
      fits[path] = fit;
      alphas[path] = fit.alpha;
    }
    const values = Object.values(alphas);
    out.layers.push(values.reduce((a, b) => a + b, 0) / values.length);
    out.modules.push(alphas);
    out.fits.push(fits);
  });
  return out;
}

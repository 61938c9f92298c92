/**
 * The grad-sensitivity probe: AdaLoRA's importance I(w) = |w * dL/dw|, summed over the weights
 * of each adaptable linear of a layer, averaged over the calibration batches:
 *   score_l = (1 / #batches) * sum_b sum_{W in layer l} sum_ij |W_ij * dL_b/dW_ij|
 * (biases, norms and embeddings do not count). Per-module scores are the same sums per matrix.
 *
 * Memory: gradients are taken one layer at a time, with respect to that layer's kernels only
 * (made trainable for the duration, then frozen again), so at most one layer's gradients are
 * alive; the price is one backward pass per layer per batch.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import { HiloError } from '../errors.ts';
import { layerPrefix, moduleShapes } from '../model/families.ts';
import type { CausalLM } from '../model/types.ts';
import { batchLoss } from './calibration.ts';

export interface LayerScores {
  layers: number[];
  modules: Array<Record<string, number>>;
}

export function gradSensitivityScores(model: CausalLM, batches: readonly Batch[]): LayerScores {
  if (batches.length === 0) throw new HiloError('grad-sensitivity: no calibration batches; recipe.adapter.calibration.batches must be >= 1');
  const out: LayerScores = { layers: [], modules: [] };
  moduleShapes(model.config).forEach((mods, l) => {
    const paths = Object.keys(mods);
    const kernels = paths.map((p) => {
      const m = model.baseModules.get(`${layerPrefix(model.config, l)}.${p}`);
      if (!m) throw new Error(`internal: model has no base module ${layerPrefix(model.config, l)}.${p}`);
      if (!m.kernel) {
        throw new HiloError(`grad-sensitivity: ${m.name} is held outside the tensor engine (a large model), where its weight gradient is not computed; use the alpha-hill or depth probe for this model`);
      }
      return m.kernel;
    });
    const wasTrainable = kernels.map((k) => k.trainable);
    const sums = new Float64Array(paths.length);
    try {
      kernels.forEach((k) => (k.trainable = true));
      for (const batch of batches) {
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), kernels);
        kernels.forEach((k, i) => {
          const s = tf.tidy(() => tf.sum(tf.abs(tf.mul(k, grads[k.name])))); // sum |w * g| over [in, out]
          sums[i] += s.dataSync()[0];
          s.dispose();
        });
        value.dispose();
        tf.dispose(Object.values(grads));
      }
    } finally {
      kernels.forEach((k, i) => (k.trainable = wasTrainable[i]));
    }
    const perModule = Object.fromEntries(paths.map((p, i) => [p, sums[i] / batches.length]));
    out.modules.push(perModule);
    out.layers.push(Object.values(perModule).reduce((a, b) => a + b, 0));
  });
  return out;
}

/**
 * The grad-sensitivity probe: AdaLoRA's importance I(w) = |w * dL/dw|, summed over the weights
 * of each adaptable linear of a layer, averaged over the calibration passes:
 *   score_l = (1 / #passes) * sum_p sum_{W in layer l} sum_ij |W_ij * dL_p/dW_ij|
 * (biases, norms and embeddings do not count). Per-module scores are the same sums per matrix.
 * A pass is one calibration batch, or a micro-batch of one when the batch holds more tokens than
 * a pass may (calibration.ts's microBatches; probe settings record the cap).
 *
 * One backward pass per calibration pass gives every module's weight gradient: each linear's
 * output is tapped (an identity whose gradient records dy = dL/dy), and dL/dW = x^T dy is formed
 * from the tapped input x a block of rows at a time and folded into sum |W * dL/dW| at once, so
 * no weight gradient is ever held whole. This works for weights held outside the tensor engine
 * (src/ops/stored.ts, read in their own dtype) as for engine variables. The pass runs with
 * gradient checkpointing (src/model/checkpoint-layer.ts): only each layer's input rows are kept
 * and a layer is run again in the backward, where its taps fire, so a pass's memory is one
 * layer's activations, not every layer's (without it, a pass of 1024 tokens through SmolLM2-135M
 * overflows the wasm heap); the price is one more forward.
 * gradSensitivityReference is the definition the taps are tested against: tfjs's variable
 * gradients, one layer's kernels at a time (one backward per layer per batch; engine weights only).
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import { HiloError } from '../errors.ts';
import { layerPrefix, moduleShapes } from '../model/families.ts';
import type { CausalLM, ForwardContext, FrozenLinear, LinearModule } from '../model/types.ts';
import { decodeRows, type StoredMatrix } from '../ops/stored.ts';
import { batchLoss } from './calibration.ts';
import { microBatches, PASS_TOKENS } from './passes.ts';

export interface LayerScores {
  layers: number[];
  modules: Array<Record<string, number>>;
}

export interface GradSensitivityOptions {
  /** Most tokens (batch x sequence) one forward+backward pass takes; larger batches are split. */
  maxTokensPerPass?: number;
}

/** Values of dL/dW formed at a time (a block of its rows) while a stored weight's sum is taken. */
const GRAD_BLOCK_VALUES = 1 << 22;

/**
 * sum_ij |W_ij (x^T dy)_ij| for a weight held outside the engine: dL/dW in blocks of the stored
 * matrix's rows (output rows for HF's [out, in], input rows for GPT-2's [in, out]), each against
 * the same rows of W decoded from their stored dtype; summed in float64.
 */
function storedAbsSum(s: StoredMatrix, x: tf.Tensor2D, dy: tf.Tensor2D): number {
  const per = Math.max(1, Math.floor(GRAD_BLOCK_VALUES / s.cols));
  const w = new Float32Array(Math.min(per, s.rows) * s.cols);
  const N = x.shape[0];
  let total = 0;
  for (let r0 = 0; r0 < s.rows; r0 += per) {
    const r = Math.min(per, s.rows - r0);
    const g = tf.tidy(() => (s.layout === 'out-in'
      ? tf.matMul(dy.slice([0, r0], [N, r]), x, true, false) // [r, in]: rows r0.. of (x^T dy)^T
      : tf.matMul(x.slice([0, r0], [N, r]), dy, true, false))); // [r, out]: rows r0.. of x^T dy
    const gv = g.dataSync() as Float32Array;
    g.dispose();
    decodeRows(s, r0, r0 + r, w);
    for (let i = 0; i < r * s.cols; i++) total += Math.abs(w[i] * gv[i]);
  }
  return total;
}

/** sum_ij |W_ij (x^T dy)_ij| for module `m` (x [N, in] its input, dy [N, out] the loss's gradient at its output). */
export function weightGradAbsSum(m: FrozenLinear, x: tf.Tensor2D, dy: tf.Tensor2D): number {
  if (!m.kernel) return storedAbsSum(m.stored!, x, dy);
  const s = tf.tidy(() => tf.sum(tf.abs(tf.mul(m.kernel!, tf.matMul(x, dy, true, false))))); // [in, out]
  const v = s.dataSync()[0];
  s.dispose();
  return v;
}

/** y, with a gradient that hands (x, dL/dy) to `onGrad` and passes dL/dy on; `d` (a zero) is what the backward runs to. */
function tapped(x: tf.Tensor2D, y: tf.Tensor2D, d: tf.Variable, onGrad: (x: tf.Tensor2D, dy: tf.Tensor2D) => void): tf.Tensor2D {
  const op = tf.customGrad((...args) => {
    const [xs, ys, ds, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Scalar, tf.GradSaveFunc];
    save([xs]);
    return {
      value: tf.add(ys, ds), // ds is 0: y itself
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor2D;
        onGrad(saved[0] as tf.Tensor2D, g);
        return [tf.zerosLike(saved[0]), g, tf.sum(g)]; // x's own gradient flows through the linear, not the tap
      },
    };
  });
  return op(x, y, d) as tf.Tensor2D;
}

/** Every adaptable module of `model`: layer, in-layer path, HF path and its frozen base. */
function adaptable(model: CausalLM): Array<{ l: number; path: string; name: string; base: FrozenLinear }> {
  return moduleShapes(model.config).flatMap((mods, l) => Object.keys(mods).map((path) => {
    const name = `${layerPrefix(model.config, l)}.${path}`;
    const base = model.baseModules.get(name);
    if (!base) throw new Error(`internal: model has no base module ${name}`);
    return { l, path, name, base };
  }));
}

function scoresOf(model: CausalLM, mods: ReturnType<typeof adaptable>, sums: Float64Array, passes: number): LayerScores {
  const out: LayerScores = { layers: [], modules: moduleShapes(model.config).map(() => ({})) };
  mods.forEach((m, i) => (out.modules[m.l][m.path] = sums[i] / passes));
  for (const perModule of out.modules) out.layers.push(Object.values(perModule).reduce((a, b) => a + b, 0));
  return out;
}

/** Scores through output taps: one backward per calibration pass, engine or stored weights alike. */
export function gradSensitivityScores(model: CausalLM, batches: readonly Batch[], opts: GradSensitivityOptions = {}): LayerScores {
  if (batches.length === 0) throw new HiloError('grad-sensitivity: no calibration batches; recipe.adapter.calibration.batches must be >= 1');
  const passes = microBatches(batches, opts.maxTokensPerPass ?? PASS_TOKENS);
  const mods = adaptable(model);
  const sums = new Float64Array(mods.length);
  const d = tf.tidy(() => tf.variable(tf.scalar(0), true));
  const originals = new Map<string, LinearModule>();
  try {
    mods.forEach(({ l, name, base }, i) => {
      const inner = model.modules.get(name)!;
      originals.set(name, inner);
      const tap: LinearModule & { variables?: () => tf.Variable[] } = {
        inFeatures: inner.inFeatures,
        outFeatures: inner.outFeatures,
        forward: (x, ctx) => tapped(x, inner.forward(x, ctx), d, (xs, dy) => (sums[i] += weightGradAbsSum(base, xs, dy))),
      };
      // a checkpointed layer is an op of its input and the trainables its modules list: listing d
      // (once a layer) puts every layer on the path from d to the loss, so the backward runs them
      if (mods.findIndex((m) => m.l === l) === i) tap.variables = () => [d];
      model.modules.set(name, tap);
    });
    for (const batch of passes) {
      const ctx: ForwardContext = { training: true, auxLosses: [], checkpointLayers: true };
      try {
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch, ctx), [d]);
        value.dispose();
        tf.dispose(Object.values(grads));
      } finally {
        tf.dispose(ctx.auxLosses); // each checkpointed layer's (zero) router loss
      }
    }
  } finally {
    for (const [name, m] of originals) model.modules.set(name, m);
    d.dispose();
  }
  return scoresOf(model, mods, sums, passes.length);
}

/**
 * The definition, through tfjs's variable gradients: one layer's kernels made trainable at a time
 * (one backward per layer per pass; at most one layer's gradients alive). Engine weights only.
 */
export function gradSensitivityReference(model: CausalLM, batches: readonly Batch[], opts: GradSensitivityOptions = {}): LayerScores {
  if (batches.length === 0) throw new HiloError('grad-sensitivity: no calibration batches; recipe.adapter.calibration.batches must be >= 1');
  const passes = microBatches(batches, opts.maxTokensPerPass ?? PASS_TOKENS);
  const mods = adaptable(model);
  const sums = new Float64Array(mods.length);
  for (let l = 0; l < model.config.numLayers; l++) {
    const idx = mods.flatMap((m, i) => (m.l === l ? [i] : []));
    const kernels = idx.map((i) => {
      const k = mods[i].base.kernel;
      if (!k) throw new HiloError(`grad-sensitivity reference: ${mods[i].name} is held outside the tensor engine`);
      return k;
    });
    const wasTrainable = kernels.map((k) => k.trainable);
    try {
      kernels.forEach((k) => (k.trainable = true));
      for (const batch of passes) {
        const { value, grads } = tf.variableGrads(() => batchLoss(model, batch), kernels);
        kernels.forEach((k, j) => {
          const s = tf.tidy(() => tf.sum(tf.abs(tf.mul(k, grads[k.name])))); // sum |w * g| over [in, out]
          sums[idx[j]] += s.dataSync()[0];
          s.dispose();
        });
        value.dispose();
        tf.dispose(Object.values(grads));
      }
    } finally {
      kernels.forEach((k, j) => (k.trainable = wasTrainable[j]));
    }
  }
  return scoresOf(model, mods, sums, passes.length);
}

/**
 * The activation-rank probe: effective rank (Roy & Vetterli 2007) of the inputs each layer's
 * adapters see, on the calibration batches. For layer l, X stacks the input rows of the layer's
 * first adapted module (q_proj / c_attn by default: the normed hidden state) over every real
 * (unpadded) token; with singular values sigma of X and p = sigma / sum(sigma),
 *   erank = exp(-sum p ln p)   (between 1 and the width; not mean-centred).
 * X is never stored whole: each batch's rows are folded into the Gram X^T X, accumulated in float64
 * (a float32 Gram loses the small singular values the entropy depends on), whose eigenvalues
 * give sigma^2; both through LAPACK where it loads (src/backend/lapack.ts), else in JS.
 * The inputs are recorded by temporarily wrapping the model.modules entries (restored after).
 *
 * At real size: each pass holds at most a capped number of tokens (calibration.ts's microBatches;
 * splitting a batch changes nothing here, the Gram is a sum over rows), and the layers' float64
 * Grams (d^2 x 8 bytes each: 134 MB at d = 4096) are built a group of layers at a time within
 * GRAM_BYTES, one more forward over the calibration data per group.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { loadLapack, type Lapack } from '../backend/lapack.ts';
import type { Batch } from '../data/batch.ts';
import { HiloError } from '../errors.ts';
import { layerPrefix, moduleShapes } from '../model/families.ts';
import type { CausalLM, ForwardContext, LinearModule } from '../model/types.ts';
import { layersPerForward, microBatches, PASS_TOKENS } from './passes.ts';

/** Thrown by the group's last recorder to end a forward early (the later layers and the head are not needed). */
const STOP = new Error('activation-rank: forward stopped after the last recorded layer');

export interface ActivationRankOptions {
  /** Most tokens one forward pass takes; larger batches are split (default PASS_TOKENS). */
  maxTokensPerPass?: number;
  /** Bytes of float64 Gram matrices alive at once (default GRAM_BYTES; at least one layer's). */
  gramBytes?: number;
}

/** exp(entropy of sigma / sum sigma) from the eigenvalues of a Gram matrix (= sigma^2). */
export function effectiveRankFromGram(eigenvalues: ArrayLike<number>): number {
  const sigma = Array.from(eigenvalues, (x) => Math.sqrt(Math.max(0, x)));
  const total = sigma.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return 0;
  let h = 0;
  for (const s of sigma) if (s > 0) h -= (s / total) * Math.log(s / total);
  return Math.exp(h);
}

/**
 * gram += sum over rows r with mask[r] = 1 of x_r^T x_r, for x [N, d] row-major, into the upper
 * triangle; through BLAS's dsyrk when `lapack` is given (a 4096-wide layer input is ~8M
 * multiply-adds a token), else in JS.
 */
function addRowsToGram(gram: Float64Array, x: ArrayLike<number>, mask: ArrayLike<number>, d: number, lapack: Lapack | null): void {
  if (lapack) {
    let real = 0;
    for (let r = 0; r < mask.length; r++) if (mask[r] !== 0) real++;
    const rows = new Float64Array(real * d); // [real, d], widened
    let at = 0;
    for (let r = 0; r < mask.length; r++) {
      if (mask[r] === 0) continue;
      for (let i = 0; i < d; i++) rows[at + i] = x[r * d + i];
      at += d;
    }
    lapack.gram(true, d, real, rows, d, gram, 1);
    return;
  }
  for (let r = 0; r < mask.length; r++) {
    if (mask[r] === 0) continue;
    const base = r * d;
    for (let i = 0; i < d; i++) {
      const xi = x[base + i];
      for (let j = i; j < d; j++) gram[i * d + j] += xi * x[base + j];
    }
  }
}

/** Eigenvalues of the symmetric d x d matrix whose upper triangle `gram` holds (row-major, float64). */
function symmetricEigenvalues(gram: Float64Array, d: number, lapack: Lapack | null): ArrayLike<number> {
  if (lapack) return lapack.eigenvalues(gram, d);
  const m = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = i; j < d; j++) {
    m.set(i, j, gram[i * d + j]);
    m.set(j, i, gram[i * d + j]);
  }
  return new EigenvalueDecomposition(m, { assumeSymmetric: true }).realEigenvalues;
}

/**
 * `inputModule` is the in-layer path whose inputs are recorded (default: the layer's first
 * adaptable module). Returns the effective rank per layer.
 */
export function activationRankScores(
  model: CausalLM, batches: readonly Batch[], inputModule?: string, lapack: Lapack | null = loadLapack().lapack,
  opts: ActivationRankOptions = {},
): { layers: number[]; inputModule: string } {
  if (batches.length === 0) throw new HiloError('activation-rank: no calibration batches; recipe.adapter.calibration.batches must be >= 1');
  const shapes = moduleShapes(model.config);
  const path = inputModule ?? Object.keys(shapes[0])[0];
  const L = model.config.numLayers;
  const d = shapes[0][path].in;
  const passes = microBatches(batches, opts.maxTokensPerPass ?? PASS_TOKENS);
  const group = layersPerForward(d, L, opts.gramBytes);
  const ranks: number[] = [];
  for (let first = 0; first < L; first += group) {
    const last = Math.min(L, first + group);
    const grams = Array.from({ length: last - first }, () => new Float64Array(d * d));
    const pending: Array<{ l: number; x: tf.Tensor2D }> = [];
    const originals = new Map<string, LinearModule>();
    for (let l = first; l < last; l++) {
      const name = `${layerPrefix(model.config, l)}.${path}`;
      const inner = model.modules.get(name)!;
      originals.set(name, inner);
      const recorder: LinearModule = {
        inFeatures: inner.inFeatures,
        outFeatures: inner.outFeatures,
        forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D {
          pending.push({ l, x: tf.keep(tf.clone(x)) }); // [N, in], read after the forward
          if (l === last - 1) throw STOP; // nothing past the group's last input is needed
          return inner.forward(x, ctx);
        },
      };
      model.modules.set(name, recorder);
    }
    try {
      for (const b of passes) {
        try {
          tf.tidy(() => {
            model.forward(tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'), {
              attentionMask: tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen]),
            });
          });
        } catch (e) {
          if (e !== STOP) throw e; // tidy has freed the forward's tensors either way
        }
        for (const { l, x } of pending.splice(0)) {
          addRowsToGram(grams[l - first], x.dataSync(), b.attentionMask, d, lapack);
          x.dispose();
        }
      }
    } finally {
      for (const [name, m] of originals) model.modules.set(name, m);
      tf.dispose(pending.map((p) => p.x));
    }
    for (const g of grams) ranks.push(effectiveRankFromGram(symmetricEigenvalues(g, d, lapack)));
  }
  return { layers: ranks, inputModule: path };
}

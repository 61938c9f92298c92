/**
 * Causal-LM cross-entropy without a one-hot over the vocabulary: logsumexp(row) minus the
 * label's logit, gathered from the flattened logits. Labels of -100 contribute nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { hasSimdKernel, SOFTMAX_XENT, SOFTMAX_XENT_GRAD } from '../backend/wasm-simd.ts';

export const IGNORE_INDEX = -100;

/**
 * HF-shifted loss: position t predicts labels[t+1]. `labels` is [B*T] row-major (b, t).
 * Returns the mean over counted tokens and the count.
 */
export function shiftedLabels(labels: Int32Array, batch: number, seqLen: number): Int32Array {
  const out = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seqLen; t++) out[b * seqLen + t] = labels[b * seqLen + t + 1];
  }
  return out;
}

/**
 * Per-token negative log-likelihood [N] for logits [N, V] and targets (already shifted) with
 * IGNORE_INDEX for positions that do not count (their value is 0). The gradient is the fused
 * softmax-minus-one-hot, so no Gather gradient (a scatter wasm lacks) is ever needed.
 */
export function tokenNll(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  if (logits.dtype === 'float32' && hasSimdKernel(tf, SOFTMAX_XENT)) return fusedTokenNll(logits, targets);
  const [n, v] = logits.shape;
  const flatIdx = new Int32Array(n);
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const ok = targets[i] !== IGNORE_INDEX;
    flatIdx[i] = i * v + (ok ? targets[i] : 0); // row i's label in the flattened [N·V] logits
    weight[i] = ok ? 1 : 0;
  }
  const nll = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const w = tf.tensor1d(weight);
    // One softmax serves both passes (the backward needs the probabilities, not a second exp
    // over [N, V]); logsumexp comes from it exactly: the row's largest logit m has probability
    // exp(0)/Σ = 1/Σ, so lse = m + log Σ = m - log(max p), and max p >= 1/V never underflows.
    const probs = tf.softmax(l); // [N, V]
    const lse = tf.sub(tf.max(l, 1), tf.log(tf.max(probs, 1))); // [N]
    const picked = tf.gather(l.reshape([n * v]), tf.tensor1d(flatIdx, 'int32')); // [N]: each row's label logit
    save([probs, w]);
    return {
      value: lse.sub(picked).mul(w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [probs, wS] = saved;
        const g = dy.mul(wS); // [N]: each row's weight in the loss
        // minus g at each row's label, scattered: tfjs-wasm's OneHot is slow (and wrong for
        // float32 output), and a broadcast Equal over [N, V] took half a LoRA step there
        const atLabel = tf.scatterND(tf.tensor2d(flatIdx, [n, 1], 'int32'), g, [n * v]).reshape([n, v]); // [N, V]
        return probs.mul(g.reshape([n, 1])).sub(atLabel);
      },
    };
  });
  return tf.tidy(() => nll(logits) as tf.Tensor1D);
}

/**
 * tokenNll as one kernel each way (wasm: src/backend/wasm-simd.ts): the forward reads the logits
 * twice (row max, then Σ exp) and writes [N] (and, for a backward, the exps); the backward writes
 * dy·(softmax − onehot) in one pass. The tensor form's softmax, maxima, scatter, multiply and
 * subtract each streamed [N, V].
 */
function fusedTokenNll(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const counted = Int32Array.from(targets, (t) => (t === IGNORE_INDEX ? -1 : t));
  const nll = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const l = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const y = tf.tensor1d(counted, 'int32');
    // Under a gradient tape the forward keeps its exps [N, V] for the backward, which then
    // takes no exp of its own: ~2 of ~3 ns an element (the tiny Llama's [512, 4096] a replica).
    const keep = tf.engine().state.gradientDepth > 0;
    const [value, lse, e, inv] = tf.engine().runKernel(SOFTMAX_XENT, { logits: l, targets: y }, { keep: keep ? 1 : 0 }) as tf.Tensor[];
    save(keep ? [e, inv, y] : [l, lse, y]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads: tf.NamedTensorMap = keep ? { dy, e: saved[0], inv: saved[1], targets: saved[2] } : { dy, logits: saved[0], lse: saved[1], targets: saved[2] };
        return tf.engine().runKernel(SOFTMAX_XENT_GRAD, grads) as tf.Tensor;
      },
    };
  });
  return tf.tidy(() => nll(logits) as tf.Tensor1D);
}

/** Mean NLL over counted tokens (0 when none count). */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): { loss: tf.Scalar; count: number } {
  let count = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) count++;
  const loss = tf.tidy(() => tokenNll(logits, targets).sum().div(Math.max(1, count))) as tf.Scalar;
  return { loss, count };
}

/**
 * Mean cross-entropy over candidate scores [B, C] (log-likelihoods) with the right candidate's
 * index per row: softmax over the candidates only, as a verbalizer-style classification loss.
 */
export function choiceCrossEntropy(scores: tf.Tensor2D, answers: Int32Array): tf.Scalar {
  const [b, c] = scores.shape;
  const onehot = new Float32Array(b * c);
  answers.forEach((a, i) => (onehot[i * c + a] = 1));
  return tf.tidy(() => tf.logSoftmax(scores).mul(tf.tensor2d(onehot, [b, c])).sum().neg().div(b)) as tf.Scalar;
}

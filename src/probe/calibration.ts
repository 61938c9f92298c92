/**
 * What the data-driven probes share: the calibration loss of one batch, micro-batches that bound
 * the tokens of one pass, and a digest of the batches, so a saved probe.json is reused only for
 * the same tokens.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { CausalLM } from '../model/types.ts';
import { HiloError } from '../errors.ts';
import { IGNORE_INDEX, shiftedLabels } from '../train/loss.ts';

/**
 * Default cap on the tokens (batch x sequence) of one probe pass: a backward through a model holds
 * every layer's activations for the pass's tokens, so the cap, not the recipe's batch size, bounds
 * a data probe's memory on a large model.
 */
export const PASS_TOKENS = 1024;

/** The cap on a probe pass's tokens: HILO_PROBE_PASS_TOKENS, else PASS_TOKENS. */
export function passTokens(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.HILO_PROBE_PASS_TOKENS?.trim();
  if (!raw) return PASS_TOKENS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HiloError(`HILO_PROBE_PASS_TOKENS=${raw}: expected a whole number of tokens >= 1 (default ${PASS_TOKENS})`);
  return n;
}

/** Whether `maxTokens` splits any of `batches` into micro-batches. */
export function splitsBatches(batches: readonly Batch[], maxTokens: number): boolean {
  return batches.some((b) => b.batchSize * b.seqLen > maxTokens);
}

/**
 * Mean next-token cross-entropy of `batch` (labels -100 ignored), as training computes it; the
 * logits are made a chunk of rows at a time (CausalLM.tokenNll), never [B·T, vocab] at once.
 */
export function batchLoss(model: CausalLM, batch: Batch): tf.Scalar {
  const { batchSize: B, seqLen: T } = batch;
  const targets = shiftedLabels(batch.labels, B, T);
  let count = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) count++;
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, [B, T], 'int32');
    const mask = tf.tensor2d(batch.attentionMask, [B, T], 'float32');
    return model.tokenNll(ids, targets, { attentionMask: mask }).sum().div(Math.max(1, count)) as tf.Scalar;
  });
}

/**
 * `batches` as passes of at most `maxTokens` tokens: a larger batch is split into micro-batches of
 * whole sequences (views, not copies). A sequence longer than the cap is an error.
 */
export function microBatches(batches: readonly Batch[], maxTokens: number): Batch[] {
  const out: Batch[] = [];
  for (const b of batches) {
    if (b.batchSize * b.seqLen <= maxTokens) {
      out.push(b);
      continue;
    }
    if (b.seqLen > maxTokens) {
      throw new HiloError(`probe: calibration sequences of ${b.seqLen} tokens exceed the ${maxTokens} tokens a probe pass may hold; lower recipe.data.max_length or raise HILO_PROBE_PASS_TOKENS`);
    }
    const per = Math.floor(maxTokens / b.seqLen);
    for (let r0 = 0; r0 < b.batchSize; r0 += per) {
      const r = Math.min(per, b.batchSize - r0);
      const [from, to] = [r0 * b.seqLen, (r0 + r) * b.seqLen];
      out.push({
        batchSize: r, seqLen: b.seqLen,
        inputIds: b.inputIds.subarray(from, to), attentionMask: b.attentionMask.subarray(from, to), labels: b.labels.subarray(from, to),
      });
    }
  }
  return out;
}

/** Settings entry describing the calibration data: counts plus a sha256 of every id, mask and label. */
export function calibrationDigest(batches: readonly Batch[]): { batches: number; sequences: number; tokens: number; sha256: string } {
  const h = createHash('sha256');
  let sequences = 0;
  let tokens = 0;
  for (const b of batches) {
    h.update(`${b.batchSize}x${b.seqLen};`);
    h.update(new Uint8Array(b.inputIds.buffer, b.inputIds.byteOffset, b.inputIds.byteLength));
    h.update(new Uint8Array(b.attentionMask.buffer, b.attentionMask.byteOffset, b.attentionMask.byteLength));
    h.update(new Uint8Array(b.labels.buffer, b.labels.byteOffset, b.labels.byteLength));
    sequences += b.batchSize;
    for (const m of b.attentionMask) tokens += m;
  }
  return { batches: batches.length, sequences, tokens, sha256: h.digest('hex') };
}

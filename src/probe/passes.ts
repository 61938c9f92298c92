/**
 * How the data probes split their work at real size (pure, no tfjs: `hilo plan` states the cost
 * from it): passes of at most a capped number of tokens, and the float64 Gram matrices of
 * activation-rank a group of layers per forward.
 */
import type { Batch } from '../data/batch.ts';
import { HiloError } from '../errors.ts';

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

/** Default memory for the layers' Gram matrices alive at once (a group of layers per forward). */
export const GRAM_BYTES = 512 * 2 ** 20;

/** Layers whose Grams one forward builds: as many d x d float64 matrices as `gramBytes` holds, at least 1. */
export function layersPerForward(d: number, layers: number, gramBytes = GRAM_BYTES): number {
  return Math.max(1, Math.min(layers, Math.floor(gramBytes / (8 * d * d))));
}

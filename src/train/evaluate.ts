/**
 * Evaluation of a (possibly adapted) model on encoded examples: mean next-token loss and
 * perplexity, accuracy by comparing candidate log-likelihoods (classification, multiple choice),
 * and per-router expert usage. No gradients; every tensor freed before returning.
 */
import * as tf from '@tensorflow/tfjs';
import { evalBatches, type Batch } from '../data/batch.ts';
import type { EncodedExample, ScoringItem } from '../data/encode.ts';
import { flattenCandidates, pickAnswers } from '../data/score.ts';
import type { CausalLM, ForwardContext } from '../model/types.ts';
import { EVAL_CHUNK_TOKENS, evalChunkRows } from '../allocate/memory.ts';
import { batchTokenNll } from './forward.ts';
import { sliceRows } from './shard.ts';
import { IGNORE_INDEX, shiftedLabels } from './loss.ts';

export interface EvalMetrics {
  loss?: number;
  perplexity?: number;
  accuracy?: number;
  /** Cross-entropy over each item's candidates at its answer (what `data.loss: choices` trains). */
  choice_loss?: number;
  examples?: number;
  /** Router name -> fraction of selections per expert, from the first eval batch. */
  expertUsage?: Record<string, number[]>;
}

/** Summed NLL of the labelled tokens per sequence [B] and the token count per sequence, for one batch. */
export async function sequenceNll(model: CausalLM, batch: Batch, ctx?: ForwardContext): Promise<{ nll: Float32Array; tokens: Int32Array }> {
  return { nll: await rowNll(model, batch, ctx), tokens: labelledTokens(batch) };
}

/**
 * Summed NLL of each sequence's labelled tokens [B] (what a data-parallel replica scores), a
 * chunk of at most `chunkTokens` tokens' rows per forward (EVAL_CHUNK_TOKENS: an evaluation
 * batch larger than a training shard would otherwise grow the wasm heap past the step's peak).
 * `ctx` goes with the first chunk only (expert usage is a sample of the first batch anyway).
 */
export async function rowNll(model: CausalLM, batch: Batch, ctx?: ForwardContext, chunkTokens = EVAL_CHUNK_TOKENS): Promise<Float32Array> {
  const rows = evalChunkRows(batch.seqLen, chunkTokens);
  if (batch.batchSize <= rows) return chunkNll(model, batch, ctx);
  const out = new Float32Array(batch.batchSize);
  for (let r0 = 0; r0 < batch.batchSize; r0 += rows) {
    out.set(await chunkNll(model, sliceRows(batch, r0, Math.min(batch.batchSize, r0 + rows)), r0 === 0 ? ctx : undefined), r0);
  }
  return out;
}

async function chunkNll(model: CausalLM, batch: Batch, ctx?: ForwardContext): Promise<Float32Array> {
  const nll = tf.tidy(() => batchTokenNll(model, batch, ctx).sum(1)); // [B]
  const out = (await nll.data()) as Float32Array; // awaited: GPU backends refuse synchronous reads
  nll.dispose();
  return out;
}

/** Labelled next-token positions per sequence [B]. */
export function labelledTokens(batch: Batch): Int32Array {
  const { batchSize: B, seqLen: T } = batch;
  const targets = shiftedLabels(batch.labels, B, T);
  const tokens = new Int32Array(B);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (targets[b * T + t] !== IGNORE_INDEX) tokens[b]++;
  return tokens;
}

/**
 * How a batch gets scored: sequenceNll on this thread by default, or split over data-parallel
 * replicas (Replicas.score). `ctx` (expert usage) goes with the part this thread scores.
 */
export type SequenceScorer = (batch: Batch, ctx?: ForwardContext) => Promise<{ nll: Float32Array; tokens: Int32Array }>;

function evalContext(withStats: boolean): ForwardContext {
  return { training: false, auxLosses: [], routerStats: withStats ? new Map() : undefined };
}

async function readUsage(ctx: ForwardContext): Promise<Record<string, number[]>> {
  const usage: Record<string, number[]> = {};
  for (const [name, t] of ctx.routerStats ?? []) {
    usage[name] = Array.from(await t.data());
    t.dispose();
  }
  return usage;
}

/**
 * Mean loss over all labelled tokens of `examples`, and perplexity; expert usage from the first
 * batch (from this thread's part of it, when replicas score).
 */
export async function evaluateLoss(
  model: CausalLM, examples: readonly EncodedExample[], batchSize: number, padId: number,
  score: SequenceScorer = (b, ctx) => sequenceNll(model, b, ctx),
): Promise<EvalMetrics> {
  let total = 0;
  let count = 0;
  let expertUsage: Record<string, number[]> | undefined;
  for (const batch of evalBatches(examples, batchSize, padId)) {
    const ctx = evalContext(expertUsage === undefined);
    const { nll, tokens } = await score(batch, ctx);
    if (expertUsage === undefined) expertUsage = await readUsage(ctx);
    for (let b = 0; b < nll.length; b++) {
      total += nll[b];
      count += tokens[b];
    }
  }
  const loss = count ? total / count : NaN;
  return { loss, perplexity: Math.exp(loss), examples: examples.length, expertUsage };
}

/** Accuracy: an item is right when its answer's candidate has the highest summed log-likelihood. */
export async function evaluateAccuracy(
  model: CausalLM, items: readonly ScoringItem[], batchSize: number, padId: number,
  score: SequenceScorer = (b, ctx) => sequenceNll(model, b, ctx),
): Promise<EvalMetrics> {
  const rows = flattenCandidates(items);
  const scores = new Float64Array(rows.sequences.length);
  let k = 0;
  for (const batch of evalBatches(rows.sequences, batchSize, padId)) {
    const { nll } = await score(batch, evalContext(false));
    for (const v of nll) scores[k++] = -v;
  }
  const { accuracy, choiceLoss } = pickAnswers(items, rows, scores);
  return { accuracy, choice_loss: choiceLoss, examples: items.length };
}

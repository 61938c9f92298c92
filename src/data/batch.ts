/**
 * Encoded examples -> padded batches, in an order fixed by the seed.
 *
 * Epoch e visits the examples in the permutation seeded by mixSeed(seed, EPOCH, e); batch i of
 * that epoch holds permutation entries [i*B, (i+1)*B). A position {epoch, index} therefore
 * names a batch completely, and a run resumed at the position it saved sees exactly the batches
 * an uninterrupted run would have seen. Batches are right-padded to their longest sequence
 * (optionally up to a multiple, so accelerators see fewer distinct shapes).
 */
import { HiloError } from '../errors.ts';
import type { EncodedExample, ScoringItem } from './encode.ts';
import { IGNORE_INDEX } from './encode.ts';
import { mixSeed, SEED_TAG, seededPermutation } from '../rng.ts';

export interface Batch {
  /** [B*T] row-major (b, t). */
  inputIds: Int32Array;
  /** [B*T] 1 for real tokens, 0 for padding. */
  attentionMask: Float32Array;
  /** [B*T] aligned with inputIds (HF convention): the token where it carries loss, else -100. */
  labels: Int32Array;
  batchSize: number;
  seqLen: number;
}

/** Where a batch stream stands: the next batch to produce is batch `index` of epoch `epoch`. */
export interface BatchPosition {
  epoch: number;
  index: number;
}

export interface BatchOptions {
  batchSize: number;
  seed: number;
  /** Id written into padded positions (masked out, never trained on). */
  padId: number;
  /** Drop an epoch's last, smaller batch. Default false. */
  dropLast?: boolean;
  /** Round seqLen up to a multiple of this (default 1). */
  padMultiple?: number;
}

/** Right-pad sequences into one batch. */
export function padBatch(seqs: readonly EncodedExample[], padId: number, padMultiple = 1): Batch {
  if (seqs.length === 0) throw new HiloError('padBatch: no sequences');
  const longest = Math.max(...seqs.map((s) => s.inputIds.length));
  const seqLen = Math.ceil(longest / padMultiple) * padMultiple;
  const n = seqs.length * seqLen;
  const inputIds = new Int32Array(n).fill(padId);
  const attentionMask = new Float32Array(n);
  const labels = new Int32Array(n).fill(IGNORE_INDEX);
  seqs.forEach((s, b) => {
    inputIds.set(s.inputIds, b * seqLen);
    labels.set(s.labels, b * seqLen);
    attentionMask.fill(1, b * seqLen, b * seqLen + s.inputIds.length);
  });
  return { inputIds, attentionMask, labels, batchSize: seqs.length, seqLen };
}

/** Batches per epoch for n examples. */
export function batchesPerEpoch(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The example order of one epoch. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return seededPermutation(n, mixSeed(seed, SEED_TAG.epoch, epoch));
}

/**
 * An endless, resumable stream of example indices in batches of `batchSize`, epoch after epoch.
 * Each item carries the position AFTER it: save that with a checkpoint, pass it back as `start`.
 */
export function* batchIndices(
  n: number, opts: Pick<BatchOptions, 'batchSize' | 'seed' | 'dropLast'>, start: BatchPosition = { epoch: 0, index: 0 },
): Generator<{ rows: number[]; position: BatchPosition; epoch: number }> {
  const perEpoch = batchesPerEpoch(n, opts.batchSize, opts.dropLast);
  if (perEpoch === 0) {
    throw new HiloError(`train.batch_size: got ${opts.batchSize}; allowed: at most the ${n} training sequences when dropping the last batch`);
  }
  let { epoch, index } = start;
  let order = epochOrder(n, opts.seed, epoch);
  for (;;) {
    if (index >= perEpoch) {
      epoch += 1;
      index = 0;
      order = epochOrder(n, opts.seed, epoch);
    }
    const rows = order.slice(index * opts.batchSize, (index + 1) * opts.batchSize);
    const at = epoch;
    index += 1;
    yield { rows, position: { epoch, index }, epoch: at };
  }
}

/** Training batches of encoded examples (see batchIndices for order and resumption). */
export function* makeBatches(
  examples: readonly EncodedExample[], opts: BatchOptions, start: BatchPosition = { epoch: 0, index: 0 },
): Generator<{ batch: Batch; position: BatchPosition; epoch: number }> {
  for (const { rows, position, epoch } of batchIndices(examples.length, opts, start)) {
    yield { batch: padBatch(rows.map((i) => examples[i]), opts.padId, opts.padMultiple), position, epoch };
  }
}

/**
 * Training batches of scoring items (classification / multiple choice with the `choices` loss):
 * every candidate of each item, item-major, so row b*C + c is candidate c of item b.
 */
export function* makeChoiceBatches(
  items: readonly ScoringItem[], opts: BatchOptions, start: BatchPosition = { epoch: 0, index: 0 },
): Generator<{ batch: Batch; answers: Int32Array; choices: number; position: BatchPosition; epoch: number }> {
  const choices = items[0]?.candidates.length ?? 0;
  const uneven = items.findIndex((it) => it.candidates.length !== choices);
  if (uneven >= 0) {
    throw new HiloError(`recipe.data.loss: got "choices", but training example ${uneven} has ${items[uneven].candidates.length} choices and example 0 has ${choices}; allowed: "tokens" for data whose examples differ in their number of choices`);
  }
  for (const { rows, position, epoch } of batchIndices(items.length, opts, start)) {
    const batch = padBatch(rows.flatMap((i) => items[i].candidates), opts.padId, opts.padMultiple);
    yield { batch, answers: Int32Array.from(rows, (i) => items[i].answer), choices, position, epoch };
  }
}

/** Evaluation batches in the data's own order, once through. */
export function* evalBatches(examples: readonly EncodedExample[], batchSize: number, padId: number, padMultiple = 1): Generator<Batch> {
  for (let s = 0; s < examples.length; s += batchSize) yield padBatch(examples.slice(s, s + batchSize), padId, padMultiple);
}

/**
 * Shifted targets for a next-token loss: targets[b,t] = labels[b,t+1] where that carries loss
 * (weight 1), else target 0 with weight 0. Loss = -sum(weight * logp[target]) / sum(weight).
 */
export function nextTokenTargets(batch: Batch): { targets: Int32Array; weights: Float32Array } {
  const { batchSize: B, seqLen: T, labels } = batch;
  const targets = new Int32Array(B * T);
  const weights = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b * T + t + 1];
      if (y !== IGNORE_INDEX) {
        targets[b * T + t] = y;
        weights[b * T + t] = 1;
      }
    }
  }
  return { targets, weights };
}

/** The id to pad with: the tokenizer's pad, else its EOS, else 0 (padding is masked anyway). */
export function padIdOf(tok: { padId: number | null; eosId: number | null }): number {
  return tok.padId ?? tok.eosId ?? 0;
}

/**
 * FNV-1a over every sequence's ids and labels: stored with a checkpoint, it shows whether a
 * resumed run sees the same encoded data (same task, caps, template, tokenizer, max_length).
 */
export function dataFingerprint(examples: readonly EncodedExample[]): string {
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    h ^= v & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= v >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (const e of examples) {
    mix(e.inputIds.length);
    for (const id of e.inputIds) mix(id);
    for (const l of e.labels) mix(l);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

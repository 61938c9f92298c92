/**
 * One micro-batch split into shards for data-parallel replicas (src/train/replicas.ts), as
 * plain data. Each shard carries the weight its loss gets in the micro-batch's loss, so the
 * replicas' gradients simply add up:
 *
 *   loss = Σ_s w_s · L(shard s),   L = the single-replica loss (mean CE + router losses)
 *
 * tokens: w_s = labelled tokens of s / labelled tokens of the micro-batch, so the CE part is the
 * whole micro-batch's mean exactly; choices: w_s = items of s / items. Router losses become the
 * same weighted mean of each shard's own (what torch DDP does with a per-rank aux loss).
 */
import type { Batch } from '../data/batch.ts';
import { countTargets } from './forward.ts';

/** One micro-batch of the training stream: labelled tokens, or candidate sets (data.loss "choices"). */
export type MicroBatch =
  | { kind: 'tokens'; batch: Batch }
  /** rows b*choices .. b*choices+choices-1 are the candidates of item b; answers[b] the right one */
  | { kind: 'choices'; batch: Batch; answers: Int32Array; choices: number };

export interface Shard {
  micro: MicroBatch;
  /** The shard's share of the micro-batch's loss; the shards' weights sum to 1. */
  weight: number;
}

/** [start, end) of part p when n things are split into `parts` as evenly as can be (larger parts first). */
export function evenSplit(n: number, parts: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let p = 0; p < parts; p++) {
    const size = Math.floor(n / parts) + (p < n % parts ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

/**
 * Rows [r0, r1) of a right-padded batch, cut to their own longest sequence: columns that are
 * padding in every row of the shard change nothing a real token sees (attention is causal and
 * padding carries no label), so a shard need not compute them.
 */
export function sliceRows(batch: Batch, r0: number, r1: number): Batch {
  const T = batch.seqLen;
  let longest = 1;
  for (let r = r0; r < r1; r++) {
    for (let t = T - 1; t >= longest; t--) {
      if (batch.attentionMask[r * T + t] !== 0) {
        longest = t + 1;
        break;
      }
    }
  }
  const rows = r1 - r0;
  const take = <A extends Int32Array | Float32Array>(src: A, make: (n: number) => A): A => {
    const out = make(rows * longest);
    for (let r = 0; r < rows; r++) out.set(src.subarray((r0 + r) * T, (r0 + r) * T + longest), r * longest);
    return out;
  };
  return {
    inputIds: take(batch.inputIds, (n) => new Int32Array(n)),
    attentionMask: take(batch.attentionMask, (n) => new Float32Array(n)),
    labels: take(batch.labels, (n) => new Int32Array(n)),
    batchSize: rows,
    seqLen: longest,
  };
}

/** Items (choices) or rows (tokens) a micro-batch can be split by: a shard needs at least one. */
export function shardableUnits(micro: MicroBatch): number {
  return micro.kind === 'choices' ? micro.batch.batchSize / micro.choices : micro.batch.batchSize;
}

/**
 * Split `micro` into at most `parts` shards (fewer when it has fewer rows or items), with their
 * loss weights. A micro-batch with no labelled token at all is weighted by rows instead.
 */
export function shardMicroBatch(micro: MicroBatch, parts: number): Shard[] {
  const units = shardableUnits(micro);
  const ranges = evenSplit(units, Math.max(1, Math.min(parts, units)));
  if (micro.kind === 'choices') {
    const C = micro.choices;
    return ranges.map(([i0, i1]) => ({
      micro: { kind: 'choices', batch: sliceRows(micro.batch, i0 * C, i1 * C), answers: micro.answers.slice(i0, i1), choices: C },
      weight: (i1 - i0) / units,
    }));
  }
  const batches = ranges.map(([r0, r1]) => sliceRows(micro.batch, r0, r1));
  const counts = batches.map(countTargets);
  const total = counts.reduce((a, b) => a + b, 0);
  return batches.map((batch, s) => ({
    micro: { kind: 'tokens', batch },
    weight: total > 0 ? counts[s] / total : batch.batchSize / units,
  }));
}

/**
 * Splitting a micro-batch for data-parallel replicas: even row ranges, shards cut to their own
 * longest sequence, and loss weights that make the shards' weighted losses add up to the
 * micro-batch's (labelled tokens for the token loss, items for the choices loss).
 */
import { describe, expect, it } from 'vitest';
import { padBatch } from '../../src/data/batch.ts';
import { IGNORE_INDEX } from '../../src/data/encode.ts';
import { evenSplit, shardMicroBatch, sliceRows, type MicroBatch } from '../../src/train/shard.ts';

/** A sequence of `len` tokens (ids 10, 11, ...) whose last `labelled` positions carry loss. */
function seq(len: number, labelled: number) {
  const inputIds = Array.from({ length: len }, (_, i) => 10 + i);
  return { inputIds, labels: inputIds.map((id, i) => (i >= len - labelled ? id : IGNORE_INDEX)) };
}

describe('evenSplit', () => {
  it.each([
    [8, 2, [[0, 4], [4, 8]]],
    [5, 2, [[0, 3], [3, 5]]],
    [7, 3, [[0, 3], [3, 5], [5, 7]]],
    [2, 1, [[0, 2]]],
  ])('%i things in %i parts', (n, parts, want) => {
    expect(evenSplit(n, parts)).toEqual(want);
  });
});

describe('sliceRows', () => {
  it('takes the rows and cuts the columns that are padding in all of them', () => {
    const batch = padBatch([seq(2, 1), seq(4, 2), seq(1, 0)], 0); // seqLen 4
    const a = sliceRows(batch, 0, 1);
    expect([a.batchSize, a.seqLen]).toEqual([1, 2]);
    expect([...a.inputIds]).toEqual([10, 11]);
    expect([...a.labels]).toEqual([IGNORE_INDEX, 11]);
    const b = sliceRows(batch, 1, 3);
    expect([b.batchSize, b.seqLen]).toEqual([2, 4]);
    expect([...b.inputIds]).toEqual([10, 11, 12, 13, 10, 0, 0, 0]);
    expect([...b.attentionMask]).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    expect([...b.labels]).toEqual([IGNORE_INDEX, IGNORE_INDEX, 12, 13, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
  });
});

describe('shardMicroBatch', () => {
  it('weights token shards by their labelled next tokens, so the weights sum to 1', () => {
    // countTargets counts positions t whose label t+1 carries loss: a labelled first token never counts
    const micro: MicroBatch = { kind: 'tokens', batch: padBatch([seq(5, 3), seq(3, 1), seq(4, 0), seq(6, 2)], 0) };
    const shards = shardMicroBatch(micro, 2);
    expect(shards.map((s) => s.micro.batch.batchSize)).toEqual([2, 2]);
    expect(shards.map((s) => s.micro.batch.seqLen)).toEqual([5, 6]);
    expect(shards.map((s) => s.weight)).toEqual([4 / 6, 2 / 6]);
  });

  it('weights shards by rows when no token of the micro-batch is labelled', () => {
    const micro: MicroBatch = { kind: 'tokens', batch: padBatch([seq(3, 0), seq(3, 0), seq(3, 0)], 0) };
    expect(shardMicroBatch(micro, 2).map((s) => s.weight)).toEqual([2 / 3, 1 / 3]);
  });

  it('splits candidate sets on item boundaries and weights them by items', () => {
    const batch = padBatch([seq(3, 1), seq(3, 1), seq(2, 1), seq(4, 1), seq(3, 1), seq(5, 1)], 0); // 3 items x 2 choices
    const shards = shardMicroBatch({ kind: 'choices', batch, answers: Int32Array.from([1, 0, 1]), choices: 2 }, 2);
    expect(shards.map((s) => s.weight)).toEqual([2 / 3, 1 / 3]);
    const [a, b] = shards.map((s) => s.micro);
    if (a.kind !== 'choices' || b.kind !== 'choices') throw new Error('choices shards expected');
    expect([a.batch.batchSize, [...a.answers], a.choices]).toEqual([4, [1, 0], 2]);
    expect([b.batch.batchSize, [...b.answers], b.batch.seqLen]).toEqual([2, [1], 5]);
  });

  it('makes no more shards than rows', () => {
    const micro: MicroBatch = { kind: 'tokens', batch: padBatch([seq(3, 2)], 0) };
    expect(shardMicroBatch(micro, 4).map((s) => [s.micro.batch.batchSize, s.weight])).toEqual([[1, 1]]);
  });
});

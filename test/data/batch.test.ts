import { describe, expect, it } from 'vitest';
import { batchesPerEpoch, dataFingerprint, epochOrder, evalBatches, makeBatches, nextTokenTargets, padBatch, padIdOf, type Batch, type BatchPosition } from '../../src/data/batch.ts';
import { IGNORE_INDEX, type EncodedExample } from '../../src/data/encode.ts';

const X = IGNORE_INDEX;
/** Example k: k+1 tokens [100k+1 ...], loss on its last token. */
const examples: EncodedExample[] = Array.from({ length: 10 }, (_, k) => {
  const inputIds = Array.from({ length: (k % 4) + 2 }, (_, t) => 100 * k + t + 1);
  return { inputIds, labels: inputIds.map((id, t) => (t === inputIds.length - 1 ? id : X)) };
});
const firstIds = (b: Batch) => Array.from({ length: b.batchSize }, (_, i) => (b.inputIds[i * b.seqLen] - 1) / 100);
const take = <T>(g: Generator<T>, n: number) => Array.from({ length: n }, () => g.next().value as T);

describe('padBatch', () => {
  it('right-pads to the longest with masks and -100 labels', () => {
    const b = padBatch([{ inputIds: [5, 6, 7], labels: [X, 6, 7] }, { inputIds: [8], labels: [X] }], 0);
    expect(b.seqLen).toBe(3);
    expect(Array.from(b.inputIds)).toEqual([5, 6, 7, 8, 0, 0]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(b.labels)).toEqual([X, 6, 7, X, X, X]);
    expect(b.inputIds).toBeInstanceOf(Int32Array);
    expect(padBatch([{ inputIds: [5, 6, 7], labels: [X, 6, 7] }], 9, 8).seqLen).toBe(8);
  });

  it('nextTokenTargets shifts labels left with weights', () => {
    const b = padBatch([{ inputIds: [5, 6, 7], labels: [X, 6, 7] }, { inputIds: [8, 9], labels: [X, X] }], 0);
    const { targets, weights } = nextTokenTargets(b);
    expect(Array.from(targets)).toEqual([6, 7, 0, 0, 0, 0]);
    expect(Array.from(weights)).toEqual([1, 1, 0, 0, 0, 0]);
  });

  it('pads with pad, else EOS, else 0', () => {
    expect(padIdOf({ padId: 3, eosId: 2 })).toBe(3);
    expect(padIdOf({ padId: null, eosId: 2 })).toBe(2);
    expect(padIdOf({ padId: null, eosId: null })).toBe(0);
  });
});

describe('makeBatches', () => {
  const opts = { batchSize: 4, seed: 42, padId: 0 };

  it('each epoch visits every example once in a seeded order', () => {
    const g = makeBatches(examples, opts);
    const epoch0 = take(g, 3);
    expect(epoch0.map((x) => x.batch.batchSize)).toEqual([4, 4, 2]);
    expect(epoch0.flatMap((x) => firstIds(x.batch)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(epoch0.flatMap((x) => firstIds(x.batch))).toEqual(epochOrder(10, 42, 0));
    expect(epoch0.map((x) => x.position)).toEqual([{ epoch: 0, index: 1 }, { epoch: 0, index: 2 }, { epoch: 0, index: 3 }]);
    const next = g.next().value!;
    expect(next.epoch).toBe(1);
    expect(firstIds(next.batch)).toEqual(epochOrder(10, 42, 1).slice(0, 4));
    expect(epochOrder(10, 42, 1)).not.toEqual(epochOrder(10, 42, 0));
  });

  it('is deterministic given the seed and differs across seeds', () => {
    const a = take(makeBatches(examples, opts), 7).map((x) => Array.from(x.batch.inputIds));
    const b = take(makeBatches(examples, opts), 7).map((x) => Array.from(x.batch.inputIds));
    const c = take(makeBatches(examples, { ...opts, seed: 43 }), 7).map((x) => Array.from(x.batch.inputIds));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('a stream resumed from a saved position yields exactly the remaining batches', () => {
    const full = take(makeBatches(examples, opts), 8);
    for (const k of [1, 3, 5]) {
      const saved: BatchPosition = JSON.parse(JSON.stringify(full[k - 1].position));
      const resumed = take(makeBatches(examples, opts, saved), 8 - k);
      expect(resumed.map((x) => x.batch)).toEqual(full.slice(k).map((x) => x.batch));
      expect(resumed.map((x) => x.position)).toEqual(full.slice(k).map((x) => x.position));
    }
  });

  it('dropLast skips the short batch', () => {
    expect(batchesPerEpoch(10, 4, true)).toBe(2);
    const g = makeBatches(examples, { ...opts, dropLast: true });
    expect(take(g, 3).map((x) => [x.epoch, x.batch.batchSize])).toEqual([[0, 4], [0, 4], [1, 4]]);
    expect(() => makeBatches(examples, { ...opts, batchSize: 11, dropLast: true }).next()).toThrow(/batch_size/);
  });

  it('batches are padded to their own longest example', () => {
    for (const { batch } of take(makeBatches(examples, opts), 3)) {
      const lengths = Array.from({ length: batch.batchSize }, (_, i) => batch.attentionMask.slice(i * batch.seqLen, (i + 1) * batch.seqLen).reduce((s, v) => s + v, 0));
      expect(batch.seqLen).toBe(Math.max(...lengths));
    }
  });
});

describe('evalBatches', () => {
  it('goes through once in order', () => {
    const bs = [...evalBatches(examples, 4, 0)];
    expect(bs.map((b) => b.batchSize)).toEqual([4, 4, 2]);
    expect(bs.flatMap(firstIds)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('dataFingerprint', () => {
  it('changes with any id or label and is stable otherwise', () => {
    const f = dataFingerprint(examples);
    expect(dataFingerprint(examples.map((e) => ({ ...e })))).toBe(f);
    expect(f).toMatch(/^[0-9a-f]{8}$/);
    const changedLabel = examples.map((e, k) => (k === 3 ? { ...e, labels: e.labels.map(() => X) } : e));
    expect(dataFingerprint(changedLabel)).not.toBe(f);
    expect(dataFingerprint(examples.slice(1))).not.toBe(f);
  });
});

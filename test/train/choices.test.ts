/** The verbalizer-style "choices" loss and its batches. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { makeChoiceBatches } from '../../src/data/batch.ts';
import type { ScoringItem } from '../../src/data/encode.ts';
import { choiceCrossEntropy } from '../../src/train/loss.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('choiceCrossEntropy', () => {
  it('is the mean negative log-softmax of the right candidate', () => {
    const scores = tf.tensor2d([[-3, -1], [-0.5, -2], [-1, -1]]);
    const loss = choiceCrossEntropy(scores, Int32Array.from([1, 0, 1]));
    const nls = (row: number[], a: number) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[a];
    const want = (nls([-3, -1], 1) + nls([-0.5, -2], 0) + nls([-1, -1], 1)) / 3;
    expect(loss.dataSync()[0]).toBeCloseTo(want, 6);
    tf.dispose([scores, loss]);
  });
});

describe('makeChoiceBatches', () => {
  const item = (i: number): ScoringItem => ({
    answer: i % 2,
    candidates: [0, 1].map((c) => ({ inputIds: [1, 10 + i, 20 + c], labels: [-100, -100, 20 + c] })),
  });
  const items = Array.from({ length: 6 }, (_, i) => item(i));

  it('puts every candidate of each item in the batch, item-major, with the answers', () => {
    const { batch, answers, choices } = makeChoiceBatches(items, { batchSize: 2, seed: 0, padId: 0 }).next().value!;
    expect(choices).toBe(2);
    expect(batch.batchSize).toBe(4);
    for (let b = 0; b < 2; b++) {
      const first = batch.inputIds[2 * b * 3 + 1];
      expect(batch.inputIds[(2 * b + 1) * 3 + 1]).toBe(first); // both candidates of one item share the prompt
      expect(answers[b]).toBe((first - 10) % 2);
    }
  });

  it('resumes at a saved position with the same batches', () => {
    const all = makeChoiceBatches(items, { batchSize: 2, seed: 5, padId: 0 });
    const seen = Array.from({ length: 5 }, () => all.next().value!);
    const resumed = makeChoiceBatches(items, { batchSize: 2, seed: 5, padId: 0 }, seen[1].position).next().value!;
    expect(Array.from(resumed.batch.inputIds)).toEqual(Array.from(seen[2].batch.inputIds));
  });

  it('refuses items with different numbers of choices', () => {
    const odd = [...items, { answer: 0, candidates: [item(0).candidates[0]] }];
    expect(() => makeChoiceBatches(odd, { batchSize: 2, seed: 0, padId: 0 }).next()).toThrow(/recipe\.data\.loss.*"tokens"/);
  });
});

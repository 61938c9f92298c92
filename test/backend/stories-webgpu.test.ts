/**
 * stories260K (a real pretrained Llama) on webgpu gives wasm's logits within 1e-4, through the
 * int32 paths too: token-id embedding gather, explicit position ids for a left-padded row, and
 * greedy decoding that reproduces llama2.c's run.c continuation token for token.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend, shutdownBackend } from '../../src/backend/index.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/load.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const stories = STORIES260K;
const reference = JSON.parse(fs.readFileSync(path.join(stories, 'reference.json'), 'utf8')) as {
  prompts: Array<{ prompt_ids: number[]; generated_ids: number[]; last_prompt_position_logits: number[] }>;
};
const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING stories260K on webgpu: ${noAdapter}\n`);

const PAD = 3;
/** A right-padded batch of two prompts, and prompt 0 left-padded with explicit position ids. */
async function logits(): Promise<{ batch: Float32Array; left: Float32Array }> {
  const model = await loadModel(stories);
  try {
    const [a, b] = [reference.prompts[0].prompt_ids, reference.prompts[1].prompt_ids];
    const { batch, left } = tf.tidy(() => {
      const ids = tf.tensor2d([[...a, ...new Array(b.length - a.length).fill(0)], b], undefined, 'int32');
      const mask = tf.tensor2d([[...a.map(() => 1), ...new Array(b.length - a.length).fill(0)], b.map(() => 1)]);
      const leftIds = tf.tensor2d([[...new Array(PAD).fill(0), ...a]], undefined, 'int32');
      const leftMask = tf.tensor2d([[...new Array(PAD).fill(0), ...a.map(() => 1)]]);
      const positions = tf.tensor2d([[...new Array(PAD).fill(0), ...a.map((_, t) => t)]], undefined, 'int32');
      return {
        batch: model.forward(ids as tf.Tensor2D, { attentionMask: mask as tf.Tensor2D }), // [2, T, V]
        left: model.forward(leftIds as tf.Tensor2D, { attentionMask: leftMask as tf.Tensor2D, positionIds: positions as tf.Tensor2D }),
      };
    });
    const out = { batch: (await batch.data()) as Float32Array, left: (await left.data()) as Float32Array };
    tf.dispose([batch, left]);
    return out;
  } finally {
    model.dispose();
  }
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe.skipIf(!!noAdapter)('stories260K on webgpu', () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  it('gives wasm logits within 1e-4 (padded batch, left padding with position ids) and greedy run.c tokens', async () => {
    await initBackend('wasm');
    const want = await logits();
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false); // every op on the GPU
    const before = tf.memory().numTensors;
    const got = await logits();
    expect(tf.memory().numTensors).toBe(before);
    expect(got.batch.length).toBe(want.batch.length);
    expect(maxAbsDiff(got.batch, want.batch)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got.left, want.left)).toBeLessThan(1e-4);
    // and against run.c itself: the last position of prompt 0, unpadded in the left-padded row
    const V = 512;
    const last = got.left.subarray(got.left.length - V);
    expect(maxAbsDiff(last, reference.prompts[0].last_prompt_position_logits)).toBeLessThan(1e-4);

    const model = await loadModel(stories);
    try {
      const p = reference.prompts[0];
      const result = await generate(model, p.prompt_ids, { maxNewTokens: 12, temperature: 0, stopIds: [] });
      expect(result.ids).toEqual(p.generated_ids.slice(0, 12));
    } finally {
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

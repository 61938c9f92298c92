/**
 * A training run keeps no tensor alive beyond its variables: the count after the loop equals the
 * count before it (a router loss, gradient or optimizer moment that escaped would show here).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '../../src/recipe/load.ts';
import { train } from '../../src/train/loop.ts';
import { prepareRun } from '../../src/train/run.ts';
import { sentimentLines } from '../helpers/sentences.ts';
import { STORIES260K } from '../helpers/fixtures.ts';


describe('the training loop', () => {
  it('leaves the tensor count unchanged across steps (MoE with router losses, accumulation, eval)', { timeout: 200_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-leak-'));
    const rows = sentimentLines('amazon').slice(0, 40);
    fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.join('\n'));
    const recipe = parseRecipe({
      model: { path: STORIES260K },
      backend: 'wasm', output_dir: path.join(dir, 'run'),
      data: { train_path: 'train.jsonl', format: 'classification', label_words: { negative: ' bad', positive: ' good' }, max_length: 32, eval_fraction: 0.2 },
      adapter: { method: 'moe-uniform', experts: { per_layer: 3 }, rank: { r: 2 }, top_k: 2, z_loss_coef: 0.001 },
      train: { batch_size: 4, gradient_accumulation_steps: 2, max_steps: 4, eval_steps: 2, save_steps: 0, logging_steps: 1 },
    }, { baseDir: dir, name: 'leak' });
    const run = await prepareRun(recipe, { log: () => {}, sink: false });
    const before = tf.memory().numTensors;
    await train(run);
    expect(tf.memory().numTensors).toBe(before);
    run.dispose();
  });
});

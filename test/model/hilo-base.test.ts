/**
 * The embedded base model (models/hilo-base) as hilo loads it gives the logits PyTorch computed
 * when it was pretrained (scripts/pretrain-base.py wrote test/fixtures/base/reference.json).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { loadModel } from '../../src/model/load.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, 'models/hilo-base');
const ref = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/base/reference.json'), 'utf8'));

beforeAll(async () => {
  await initBackend('wasm');
});

describe('models/hilo-base', () => {
  it('reproduces the PyTorch logits of its pretraining script to 1e-4', async () => {
    const model = await loadModel(DIR);
    const ids: number[][] = ref.ids;
    const logits = tf.tidy(() => model.forward(tf.tensor2d(ids, [ids.length, ids[0].length], 'int32')));
    const [B, T, V] = logits.shape;
    const data = logits.dataSync();
    let maxDiff = 0;
    for (let b = 0; b < B; b++) {
      for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(data[(b * T + T - 1) * V + v] - ref.last_logits[b][v]));
      for (let v = 0; v < 16; v++) maxDiff = Math.max(maxDiff, Math.abs(data[b * T * V + v] - ref.first_logits_top[b][v]));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    logits.dispose();
    model.dispose();
  });

  it('ships a tokenizer that round-trips text and starts with its BOS', () => {
    const tok = loadTokenizer(DIR);
    const text = 'Call me Ishmael. The movie was great — 10/10!';
    const ids = tok.encode(text, true);
    expect(ids[0]).toBe(1);
    expect(tok.decode(ids, true)).toBe(text);
    expect(tok.vocabSize).toBe(4096);
  });
});

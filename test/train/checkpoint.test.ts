import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { latestCheckpoint, listCheckpoints, restoreCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

function setup(seed: number) {
  const vars = new Map([
    ['a.lora_A.weight', tf.variable(tf.randomNormal([3, 5], 0, 1, 'float32', seed))],
    ['a.lora_B.weight', tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', seed + 1))],
  ]);
  return { vars, opt: new AdamW(vars, { weightDecay: 0.01 }) };
}

describe('checkpoints', () => {
  it('restore weights and optimizer moments bit for bit, and ignore half-written folders', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-ckpt-'));
    const a = setup(1);
    const g = new Map([...a.vars].map(([k, v]) => [k, tf.onesLike(v)]));
    a.opt.apply(g, 0.1);
    a.opt.apply(g, 0.1);
    const state = { step: 2, data: { epoch: 0, index: 16 }, seed: 7, tokensSeen: 100, elapsedSeconds: 1, lastLoss: 1.5 };
    await saveCheckpoint(runDir, { trainables: a.vars, optimizer: a.opt, state, recipe: { x: 1 }, plan: { y: 2 } });
    // a run killed while writing step 3 leaves only a temp folder
    fs.mkdirSync(path.join(runDir, '.checkpoint-3.tmp-1'));
    fs.mkdirSync(path.join(runDir, 'checkpoint-4'));
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([2]);

    const b = setup(99);
    const before = tf.memory().numTensors;
    const restored = restoreCheckpoint(latestCheckpoint(runDir)!, b.vars, b.opt);
    expect(tf.memory().numTensors).toBe(before);
    expect(restored).toEqual(state);
    for (const [k, v] of a.vars) expect(Array.from(b.vars.get(k)!.dataSync())).toEqual(Array.from(v.dataSync()));
    const sa = await a.opt.getState();
    const sb = await b.opt.getState();
    expect(sb.step).toBe(2);
    for (const k of a.vars.keys()) expect(Array.from(sb.v.get(k)!)).toEqual(Array.from(sa.v.get(k)!));
    // the same next step from both gives identical bits
    a.opt.apply(g, 0.1);
    b.opt.apply(g, 0.1);
    for (const [k, v] of a.vars) expect(Array.from(b.vars.get(k)!.dataSync())).toEqual(Array.from(v.dataSync()));
    tf.dispose([...g.values()]);
    for (const s of [a, b]) {
      s.opt.dispose();
      tf.dispose([...s.vars.values()]);
    }
  });

  it('keeps only the newest checkpoints when asked', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-ckpt-'));
    const a = setup(3);
    for (const step of [1, 2, 3]) {
      const state = { step, data: null, seed: 0, tokensSeen: 0, elapsedSeconds: 0, lastLoss: null };
      await saveCheckpoint(runDir, { trainables: a.vars, optimizer: a.opt, state, recipe: {}, plan: {} }, 2);
    }
    expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([2, 3]);
    a.opt.dispose();
    tf.dispose([...a.vars.values()]);
  });
});

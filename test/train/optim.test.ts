import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { clipByGlobalNorm } from '../../src/train/clip.ts';
import { crossEntropy, shiftedLabels, tokenNll } from '../../src/train/loss.ts';
import { lrAt, resolveWarmup, type SchedulerType } from '../../src/train/schedule.ts';

// Values from PyTorch: scripts/make-train-fixtures.py
const ref = JSON.parse(readFileSync(new URL('../fixtures/train/reference.json', import.meta.url), 'utf8'));

beforeAll(async () => {
  await initBackend('wasm');
});

describe('lrAt matches transformers schedules (via torch LambdaLR)', () => {
  for (const type of ['cosine', 'linear', 'constant'] as SchedulerType[]) {
    it(type, () => {
      const { base, warmup, total, lrs } = ref.schedules;
      const ours = lrs[type].map((_: number, step: number) => lrAt({ type, baseLr: base, warmupSteps: warmup, totalSteps: total }, step));
      ours.forEach((v: number, i: number) => expect(v).toBeCloseTo(lrs[type][i], 12));
    });
  }
  it('reads warmup below 1 as a fraction of the steps', () => {
    expect(resolveWarmup(0.1, 200)).toBe(20);
    expect(resolveWarmup(7, 200)).toBe(7);
  });
});

describe('AdamW matches torch.optim.AdamW', () => {
  for (const key of ['adamw_wd0.0', 'adamw_wd0.1']) {
    it(key, async () => {
      const r = ref[key];
      const p = tf.variable(tf.tensor(r.p0, [3, 4]), true);
      const opt = new AdamW(new Map([['p', p]]), { weightDecay: Number(key.slice(8)) });
      const before = tf.memory().numTensors;
      r.grads.forEach((g: number[], i: number) => {
        const grad = tf.tensor(g, [3, 4]);
        opt.apply(new Map([['p', grad]]), r.lr);
        grad.dispose();
        const got = Array.from(p.dataSync());
        got.forEach((v, j) => expect(v).toBeCloseTo(r.traj[i][j], 5));
      });
      expect(tf.memory().numTensors).toBe(before);
      // state round trip
      const state = await opt.getState();
      const opt2 = new AdamW(new Map([['p', p]]));
      opt2.setState(state);
      expect(Array.from((await opt2.getState()).m.get('p')!)).toEqual(Array.from(state.m.get('p')!));
      opt.dispose();
      opt2.dispose();
      p.dispose();
    });
  }
});

describe('clipByGlobalNorm matches clip_grad_norm_', () => {
  it('scales every gradient by max_norm / norm', async () => {
    const c = ref.clip;
    const grads = new Map<string, tf.Tensor>(c.grads.map((g: number[], i: number) => [`g${i}`, tf.tensor(g, c.shapes[i])]));
    const norm = await clipByGlobalNorm(grads, c.max_norm);
    expect(norm).toBeCloseTo(c.norm, 4);
    [...grads.values()].forEach((g, i) => {
      Array.from(g.dataSync()).forEach((v, j) => expect(v).toBeCloseTo(c.clipped[i][j], 5));
      g.dispose();
    });
  });
});

describe('crossEntropy matches F.cross_entropy(ignore_index=-100) with the HF shift', () => {
  it('on a [2,5,7] batch', () => {
    const c = ref.cross_entropy;
    const [b, t, v] = c.shape;
    const before = tf.memory().numTensors;
    const logits = tf.tensor2d(c.logits, [b * t, v]);
    const { loss, count } = crossEntropy(logits, shiftedLabels(Int32Array.from(c.labels), b, t));
    expect(count).toBe(5);
    expect(loss.dataSync()[0]).toBeCloseTo(c.loss, 5);
    tf.dispose([logits, loss]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('tokenNll gradient', () => {
  it('equals softmax minus one-hot on counted rows and zero on ignored rows', () => {
    const logits = tf.tensor2d([[1, 2, 0.5], [0.3, -1, 2], [0, 0, 0]]);
    const targets = Int32Array.from([1, -100, 2]);
    const g = tf.grad((x: tf.Tensor) => tokenNll(x as tf.Tensor2D, targets).sum())(logits);
    const p = (row: number[]) => { const e = row.map(Math.exp); const s = e.reduce((a, b) => a + b); return e.map((v) => v / s); };
    const want = [...p([1, 2, 0.5]).map((v, j) => v - (j === 1 ? 1 : 0)), 0, 0, 0, ...p([0, 0, 0]).map((v, j) => v - (j === 2 ? 1 : 0))];
    Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    tf.dispose([logits, g]);
  });

  it('stays exact for confident wrong predictions, where the label probability underflows', () => {
    // label 1's probability is e^-100 / (1 + ...) = 0 in float32; the loss is still 100
    const nll = tf.tidy(() => Array.from(tokenNll(tf.tensor2d([[50, -50, 0], [0, 0, 80]]), Int32Array.from([1, 2])).dataSync()));
    expect(nll[0]).toBeCloseTo(100, 4);
    expect(nll[1]).toBeCloseTo(-Math.log(1 / (1 + 2 * Math.exp(-80))), 6);
  });
});

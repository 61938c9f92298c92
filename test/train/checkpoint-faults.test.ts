/**
 * Checkpoint faults that need injection: a disk that fills up while a checkpoint is written
 * (a failing fs.writeFileSync) and every way a checkpoint folder can be broken. Each is a
 * sentence naming the file (and tensor), and what was there before is left as it was.
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { listCheckpoints, restoreCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';

beforeAll(async () => {
  await initBackend('wasm');
});
afterEach(() => {
  vi.restoreAllMocks();
});

function setup(seed: number) {
  const vars = new Map([
    ['a.lora_A.weight', tf.variable(tf.randomNormal([3, 5], 0, 1, 'float32', seed))],
    ['a.lora_B.weight', tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', seed + 1))],
  ]);
  return { vars, opt: new AdamW(vars, { weightDecay: 0 }) };
}

const state = (step: number) => ({ step, data: null, seed: 0, tokensSeen: 0, elapsedSeconds: 0, lastLoss: 1 });

/** Every file of a folder with its bytes. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
}

/** A run folder with one complete checkpoint at step 1. */
async function runWithCheckpoint() {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-ckpt-fault-'));
  const a = setup(1);
  a.opt.apply(new Map([...a.vars].map(([k, v]) => [k, tf.onesLike(v)])), 0.1);
  const first = await saveCheckpoint(runDir, { trainables: a.vars, optimizer: a.opt, state: state(1), recipe: {}, plan: {} });
  return { runDir, a, first };
}

describe('a full disk during a checkpoint', () => {
  it.each(['trainable.safetensors', 'optimizer.safetensors', 'trainer_state.json'])(
    'writing %s: names the file and ENOSPC, removes the temporary folder, keeps the previous checkpoint',
    async (victim) => {
      const { runDir, a, first } = await runWithCheckpoint();
      const before = snapshot(first);
      const full = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
      const write = fs.writeFileSync;
      vi.spyOn(fs, 'writeFileSync').mockImplementation((file, ...rest) => {
        if (String(file).includes(`${victim}.tmp-`)) throw full();
        return write(file, ...rest);
      });
      // safetensors files are written a tensor at a time into an open temp file
      const open = fs.openSync;
      vi.spyOn(fs, 'openSync').mockImplementation((file, ...rest) => {
        if (String(file).includes(`${victim}.tmp-`)) throw full();
        return open(file, ...rest);
      });
      const save = saveCheckpoint(runDir, { trainables: a.vars, optimizer: a.opt, state: state(2), recipe: {}, plan: {} });
      await expect(save).rejects.toThrow(
        `checkpoint at step 2 not saved (its temporary folder is removed): cannot write ${path.join(runDir, 'checkpoint-2', victim)}: no space left on the device: the disk is full (ENOSPC); ` +
          `free some space or choose an output_dir on another disk. The previous checkpoint, ${first}, is intact.`,
      );
      expect(fs.readdirSync(runDir)).toEqual(['checkpoint-1']);
      expect(snapshot(first)).toEqual(before);
      expect(listCheckpoints(runDir).map((c) => c.step)).toEqual([1]);
      a.opt.dispose();
      tf.dispose([...a.vars.values()]);
    },
  );
});

/** Each way to break checkpoint-1, and the message that names it. */
const BROKEN: Array<[string, (dir: string) => void, RegExp]> = [
  ['a missing optimizer file', (d) => fs.rmSync(path.join(d, 'optimizer.safetensors')),
    /checkpoint .*checkpoint-1: optimizer.safetensors is missing \(a half-written or foreign folder\)/],
  ['trainer_state.json that is not JSON', (d) => fs.writeFileSync(path.join(d, 'trainer_state.json'), '{"step": 1,'),
    /checkpoint .*checkpoint-1: trainer_state.json is not valid JSON \(.*\); use another checkpoint-N folder/],
  ['trainer_state.json without a step', (d) => fs.writeFileSync(path.join(d, 'trainer_state.json'), '{"seed": 0}'),
    /checkpoint .*checkpoint-1: trainer_state.json has no step count \("step": got undefined\)/],
  ['an optimizer file lacking one moment', (d) => rewrite(path.join(d, 'optimizer.safetensors'), (t) => t.delete('v/a.lora_B.weight')),
    /checkpoint .*checkpoint-1\/optimizer.safetensors: no tensor "v\/a.lora_B.weight"; the file is incomplete or was written by a run with another plan/],
  ['a weights file lacking one variable', (d) => rewrite(path.join(d, 'trainable.safetensors'), (t) => t.delete('a.lora_A.weight')),
    /checkpoint .*checkpoint-1\/trainable.safetensors: no tensor "a.lora_A.weight"/],
  ['a moment of the wrong shape', (d) => rewrite(path.join(d, 'optimizer.safetensors'), (t) => t.set('m/a.lora_A.weight', { dtype: 'F32', shape: [5, 3], data: new Float32Array(15) })),
    /checkpoint .*optimizer.safetensors: tensor "m\/a.lora_A.weight" is F32 \[5,3\] but the run expects F32 \[3,5\]/],
  ['a truncated weights file', (d) => fs.truncateSync(path.join(d, 'trainable.safetensors'), 40),
    /trainable.safetensors/],
];

function rewrite(file: string, edit: (t: Map<string, { dtype: string; shape: number[]; data: Float32Array | Int32Array }>) => void): void {
  const { tensors, metadata } = readSafetensors(file);
  edit(tensors);
  writeSafetensors(file, new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }])), metadata ?? {});
}

describe('restoring a broken checkpoint', () => {
  it.each(BROKEN)('%s: a HiloError naming it, and the run\'s variables and optimizer untouched', async (_name, breakIt, message) => {
    const { a, first } = await runWithCheckpoint();
    breakIt(first);
    const b = setup(7);
    const weights = [...b.vars.values()].map((v) => Array.from(v.dataSync()));
    const moments = await b.opt.getState();
    expect(() => restoreCheckpoint(first, b.vars, b.opt)).toThrow(message);
    try {
      restoreCheckpoint(first, b.vars, b.opt);
    } catch (e) {
      expect((e as Error).name).toBe('HiloError');
    }
    expect([...b.vars.values()].map((v) => Array.from(v.dataSync()))).toEqual(weights);
    expect(await b.opt.getState()).toEqual(moments);
    for (const s of [a, b]) {
      s.opt.dispose();
      tf.dispose([...s.vars.values()]);
    }
  });
});

/**
 * Checkpoints: everything needed to continue a run bit for bit. A checkpoint is a folder
 * `checkpoint-{step}` written under a temporary name and renamed into place, so a run killed
 * mid-save leaves either the previous checkpoints or a complete new one, never half of one.
 *
 *   checkpoint-{step}/
 *     trainable.safetensors    every trained variable, by name (adapter or full-model weights)
 *     optimizer.safetensors    AdamW moments `m/<name>`, `v/<name>`
 *     trainer_state.json       step, epoch, data position, seeds, counters (written last)
 *     recipe.json, plan.json   the resolved recipe and adapter plan the run used
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { readSafetensors, writeFileAtomic, writeSafetensors, type StTensorInput } from '../model/safetensors.ts';
import type { AdamW } from './adamw.ts';

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the batch stream continues (opaque to this module). */
  data: unknown;
  seed: number;
  tokensSeen: number;
  elapsedSeconds: number;
  lastLoss: number | null;
}

export interface CheckpointContents {
  trainables: Map<string, tf.Variable>;
  optimizer: AdamW;
  state: TrainerState;
  recipe: unknown;
  plan: unknown;
}

const STATE_FILE = 'trainer_state.json';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

async function variablesToTensors(vars: Map<string, tf.Variable>): Promise<Map<string, StTensorInput>> {
  return new Map(await Promise.all([...vars].map(async ([name, v]) => [name, { shape: v.shape, data: (await v.data()) as Float32Array }] as const)));
}

/** Write checkpoint-{step} atomically; keep only the newest `keep` checkpoints (0 = all). */
export async function saveCheckpoint(runDir: string, c: CheckpointContents, keep = 0): Promise<string> {
  const finalDir = path.join(runDir, `checkpoint-${c.state.step}`);
  const tmpDir = path.join(runDir, `.checkpoint-${c.state.step}.tmp-${process.pid}`);
  fs.rmSync(tmpDir, { recursive: true, force: true });
  fs.mkdirSync(tmpDir, { recursive: true });
  writeSafetensors(path.join(tmpDir, 'trainable.safetensors'), await variablesToTensors(c.trainables));
  const opt = await c.optimizer.getState();
  const moments = new Map<string, StTensorInput>();
  for (const [name, v] of c.trainables) {
    moments.set(`m/${name}`, { shape: v.shape, data: opt.m.get(name)! });
    moments.set(`v/${name}`, { shape: v.shape, data: opt.v.get(name)! });
  }
  writeSafetensors(path.join(tmpDir, 'optimizer.safetensors'), moments, { adam_step: String(opt.step) });
  writeFileAtomic(path.join(tmpDir, 'recipe.json'), JSON.stringify(c.recipe, null, 2));
  writeFileAtomic(path.join(tmpDir, 'plan.json'), JSON.stringify(c.plan, null, 2));
  writeFileAtomic(path.join(tmpDir, STATE_FILE), JSON.stringify(c.state, null, 2));
  fs.rmSync(finalDir, { recursive: true, force: true });
  fs.renameSync(tmpDir, finalDir);
  if (keep > 0) {
    for (const old of listCheckpoints(runDir).slice(0, -keep)) fs.rmSync(old.dir, { recursive: true, force: true });
  }
  return finalDir;
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): Array<{ step: number; dir: string }> {
  if (!fs.existsSync(runDir)) return [];
  return fs
    .readdirSync(runDir)
    .map((name) => ({ m: CHECKPOINT_RE.exec(name), name }))
    .filter(({ m, name }) => m && fs.existsSync(path.join(runDir, name, STATE_FILE)))
    .map(({ m, name }) => ({ step: Number(m![1]), dir: path.join(runDir, name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(runDir: string): string | null {
  const all = listCheckpoints(runDir);
  return all.length ? all[all.length - 1].dir : null;
}

/** Is `dir` a complete checkpoint? Names what is missing otherwise. */
export function assertCheckpoint(dir: string): void {
  if (!fs.existsSync(dir)) throw new HiloError(`checkpoint ${dir}: does not exist`);
  for (const f of ['trainable.safetensors', 'optimizer.safetensors', 'plan.json', 'recipe.json', STATE_FILE]) {
    if (!fs.existsSync(path.join(dir, f))) {
      throw new HiloError(`checkpoint ${dir}: ${f} is missing (a half-written or foreign folder); use a complete checkpoint-N folder`);
    }
  }
}

export function readTrainerState(dir: string): TrainerState {
  assertCheckpoint(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8'));
}

/** Restore variables and optimizer moments in place; returns the trainer state. */
export function restoreCheckpoint(dir: string, trainables: Map<string, tf.Variable>, optimizer: AdamW): TrainerState {
  const state = readTrainerState(dir);
  const weights = readSafetensors(path.join(dir, 'trainable.safetensors')).tensors;
  for (const [name, v] of trainables) {
    const t = weights.get(name);
    if (!t) throw new HiloError(`checkpoint ${dir}: no weights for ${name}; was it written by a run with the same plan?`);
    if (t.shape.join(',') !== v.shape.join(',')) {
      throw new HiloError(`checkpoint ${dir}: ${name} has shape [${t.shape}] but the run expects [${v.shape}]`);
    }
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape, 'float32')));
  }
  const opt = readSafetensors(path.join(dir, 'optimizer.safetensors'));
  const m = new Map<string, Float32Array>();
  const vv = new Map<string, Float32Array>();
  for (const name of trainables.keys()) {
    m.set(name, opt.tensors.get(`m/${name}`)!.data as Float32Array);
    vv.set(name, opt.tensors.get(`v/${name}`)!.data as Float32Array);
  }
  optimizer.setState({ step: Number(opt.metadata?.adam_step ?? state.step), m, v: vv });
  return state;
}

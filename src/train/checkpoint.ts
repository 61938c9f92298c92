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
import { fileError, HiloError } from '../errors.ts';
import { readSafetensors, SafetensorsFileWriter, type StTensor } from '../model/safetensors.ts';
import { writeFileAtomic } from '../files.ts';
import type { AdamW } from './adamw.ts';
import type { RunHealth } from './divergence.ts';

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the batch stream continues (opaque to this module). */
  data: unknown;
  seed: number;
  tokensSeen: number;
  elapsedSeconds: number;
  lastLoss: number | null;
  /** What divergence.ts judges later steps against (absent in checkpoints of older runs). */
  health?: RunHealth;
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

/**
 * Write checkpoint-{step} atomically; keep only the newest `keep` checkpoints (0 = all). A write
 * that fails (a full disk) removes the half-written temporary folder, leaves the checkpoints
 * already there as they were, and is reported naming the file.
 */
export async function saveCheckpoint(runDir: string, c: CheckpointContents, keep = 0): Promise<string> {
  const finalDir = path.join(runDir, `checkpoint-${c.state.step}`);
  const tmpDir = path.join(runDir, `.checkpoint-${c.state.step}.tmp-${process.pid}`);
  let writing = tmpDir;
  try {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    fs.mkdirSync(tmpDir, { recursive: true });
    // a variable (and its moments) at a time: read out whole, a real-size run's trainables and
    // AdamW state were the largest allocation of the run, at its end
    const vars = [...c.trainables];
    const weights = new SafetensorsFileWriter((writing = path.join(tmpDir, 'trainable.safetensors')), vars.map(([name, v]) => ({ name, shape: v.shape, dtype: 'F32' })));
    try {
      for (const [name, v] of vars) weights.write(name, { shape: v.shape, data: (await v.data()) as Float32Array });
      weights.close();
    } catch (e) {
      weights.abort();
      throw e;
    }
    const moments = new SafetensorsFileWriter((writing = path.join(tmpDir, 'optimizer.safetensors')),
      vars.flatMap(([name, v]) => [{ name: `m/${name}`, shape: v.shape, dtype: 'F32' as const }, { name: `v/${name}`, shape: v.shape, dtype: 'F32' as const }]),
      { adam_step: String(c.optimizer.steps) });
    try {
      for (const [name, v] of vars) {
        const { m, v: second } = await c.optimizer.moments(name);
        moments.write(`m/${name}`, { shape: v.shape, data: m });
        moments.write(`v/${name}`, { shape: v.shape, data: second });
      }
      moments.close();
    } catch (e) {
      moments.abort();
      throw e;
    }
    writeFileAtomic((writing = path.join(tmpDir, 'recipe.json')), JSON.stringify(c.recipe, null, 2));
    writeFileAtomic((writing = path.join(tmpDir, 'plan.json')), JSON.stringify(c.plan, null, 2));
    writeFileAtomic((writing = path.join(tmpDir, STATE_FILE)), JSON.stringify(c.state, null, 2));
    writing = finalDir;
    fs.rmSync(finalDir, { recursive: true, force: true });
    fs.renameSync(tmpDir, finalDir);
  } catch (e) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    // named by where it was going: the temporary folder is gone
    const sentence = fileError(e, writing.startsWith(tmpDir) ? path.join(finalDir, path.relative(tmpDir, writing)) : writing);
    if (!sentence) throw e;
    const before = latestCheckpoint(runDir);
    throw new HiloError(`checkpoint at step ${c.state.step} not saved (its temporary folder is removed): ${sentence.message}. ` +
      (before ? `The previous checkpoint, ${before}, is intact.` : 'There is no earlier checkpoint.'));
  }
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
  const file = path.join(dir, STATE_FILE);
  let state: unknown;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`checkpoint ${dir}: ${STATE_FILE} is not valid JSON (${(e as Error).message}); use another checkpoint-N folder`);
  }
  const step = (state as TrainerState | null)?.step;
  if (!Number.isInteger(step) || step! < 0) {
    throw new HiloError(`checkpoint ${dir}: ${STATE_FILE} has no step count ("step": got ${JSON.stringify(step)}); use another checkpoint-N folder`);
  }
  return state as TrainerState;
}

/** A float32 tensor `name` of `file` with `shape`, or an error naming the file, the tensor and what is wrong. */
function checkpointTensor(tensors: Map<string, StTensor>, file: string, name: string, shape: number[]): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new HiloError(`checkpoint ${file}: no tensor "${name}"; the file is incomplete or was written by a run with another plan`);
  if (t.shape.join(',') !== shape.join(',') || !(t.data instanceof Float32Array)) {
    throw new HiloError(`checkpoint ${file}: tensor "${name}" is ${t.dtype} [${t.shape}] but the run expects F32 [${shape}]`);
  }
  return t.data;
}

/** Restore variables and optimizer moments in place; returns the trainer state. */
export function restoreCheckpoint(dir: string, trainables: Map<string, tf.Variable>, optimizer: AdamW): TrainerState {
  const state = readTrainerState(dir);
  // every tensor is checked before any variable changes, so a bad checkpoint leaves the run as it was
  const weightsFile = path.join(dir, 'trainable.safetensors');
  const weights = readSafetensors(weightsFile).tensors;
  const values = new Map([...trainables].map(([name, v]) => [name, checkpointTensor(weights, weightsFile, name, v.shape)]));
  const optFile = path.join(dir, 'optimizer.safetensors');
  const opt = readSafetensors(optFile);
  const m = new Map<string, Float32Array>();
  const vv = new Map<string, Float32Array>();
  for (const [name, v] of trainables) {
    m.set(name, checkpointTensor(opt.tensors, optFile, `m/${name}`, v.shape));
    vv.set(name, checkpointTensor(opt.tensors, optFile, `v/${name}`, v.shape));
  }
  const adamStep = Number(opt.metadata?.adam_step ?? state.step);
  if (!Number.isInteger(adamStep) || adamStep < 0) {
    throw new HiloError(`checkpoint ${optFile}: metadata adam_step is ${JSON.stringify(opt.metadata?.adam_step)}, not a step count`);
  }
  for (const [name, v] of trainables) tf.tidy(() => v.assign(tf.tensor(values.get(name)!, v.shape, 'float32')));
  optimizer.setState({ step: adamStep, m, v: vv });
  return state;
}

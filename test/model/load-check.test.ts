/**
 * The loader runs its caller's check (model/load.ts LoadCheck) before a weight is read, and every
 * command that loads a model passes the memory check (src/allocate/memory-for-recipe.ts
 * checkModelLoad), which the model stage takes rather than imports (docs/architecture.md).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { HiloError } from '../../src/errors.ts';
import { loadModel, type LoadCheck } from '../../src/model/load.ts';
import { ROOT, STORIES260K } from '../helpers/fixtures.ts';

describe('loadModel(dir, { check })', () => {
  it('calls the check with the config, folder, backend and storage, and a refusal leaves no tensor', async () => {
    await tf.setBackend('cpu');
    const seen: Array<Parameters<LoadCheck>> = [];
    const refuse: LoadCheck = (...args) => {
      seen.push(args);
      throw new HiloError('refused');
    };
    const before = tf.memory().numTensors;
    await expect(loadModel(STORIES260K, { check: refuse, dtype: 'bfloat16' })).rejects.toThrow('refused');
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toHaveLength(1);
    const [config, dir, backend, storage] = seen[0];
    expect([config.numLayers, config.hiddenSize, dir, backend]).toEqual([5, 64, STORIES260K, 'cpu']);
    expect(storage.dtype).toBe('bfloat16');
  });

  it('loads after a check that passes', async () => {
    let calls = 0;
    const model = await loadModel(STORIES260K, { check: () => { calls += 1; } });
    expect(calls).toBe(1);
    expect(model.config.numLayers).toBe(5);
    model.dispose();
  });
});

/** Files under src/ that load a model without the memory check, each with its reason. */
const UNCHECKED: Record<string, string> = {
  'train/run.ts': 'checkRunMemory estimates the whole run (a superset of the load) before it loads',
  'train/replica-worker.ts': 'a replica of a model the main thread checked and holds',
  'model/load.ts': 'the loader itself',
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

describe('every command that loads a model passes the memory check', () => {
  const src = path.join(ROOT, 'src');
  const calls = sources(src).flatMap((file) => {
    const rel = path.relative(src, file);
    return [...fs.readFileSync(file, 'utf8').matchAll(/\bloadModel\(([^)]*)\)/g)].map((m) => ({ rel, args: m[1] }));
  });

  it('finds the loads (generate/score, export, probes, training)', () => {
    expect(new Set(calls.map((c) => c.rel))).toEqual(new Set(['cli/model-input.ts', 'export/run-export.ts', 'export/source.ts', 'probe/for-recipe.ts', 'train/run.ts', 'train/replica-worker.ts', 'model/load.ts']));
  });

  it('each passes a check, or is listed with its reason', () => {
    const bare = calls.filter((c) => !/\bcheck\b/.test(c.args) && !(c.rel in UNCHECKED)).map((c) => `${c.rel}: loadModel(${c.args})`);
    expect(bare).toEqual([]);
  });
});

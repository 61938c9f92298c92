/**
 * A run that cannot fit stops before its model is loaded, with the estimate, what is available
 * and what to change; `hilo plan` prints the estimate; a failed wasm allocation is a HiloError,
 * not a write to address 0 that surfaces later as a raw `Aborted()`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frozenStorageFor } from '../../src/allocate/memory-for-recipe.ts';
import { guardWasmHeap } from '../../src/backend/wasm-heap.ts';
import { HiloError } from '../../src/errors.ts';
import { REAL_SHAPES } from '../../src/model/real-shapes.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { LLAMA_FAMILY } from '../../src/model/family-llama.ts';
import { layoutSafetensors } from '../../src/model/safetensors.ts';
import { TOKENIZER_FILES } from '../../src/model/save.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { prepareRun } from '../../src/train/run.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASE = path.join(ROOT, 'models/hilo-base');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-memory-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A Llama-3.2-1B-shaped folder (2.5 GB of bf16 on paper, sparse on disk): checked, never loaded. */
function bigModelFolder(): string {
  const dir = path.join(tmp, 'llama-3.2-1b');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...REAL_SHAPES['llama-3.2-1b'], bos_token_id: 1, eos_token_id: 2 }));
  // the real header over a sparse data section: every check reads headers only, nothing reads data
  const specs = LLAMA_FAMILY.weightSpecs(normaliseConfig(REAL_SHAPES['llama-3.2-1b']));
  const { header, size } = layoutSafetensors(specs.map((s) => ({ name: s.name, shape: s.shape, dtype: 'BF16' as const })));
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(file, header);
  fs.truncateSync(file, size);
  for (const f of TOKENIZER_FILES) if (fs.existsSync(path.join(BASE, f))) fs.copyFileSync(path.join(BASE, f), path.join(dir, f));
  return dir;
}

function recipeFile(model: string): string {
  const file = path.join(tmp, 'recipe.yaml');
  fs.writeFileSync(file, [
    `model: {path: ${model}}`, 'backend: wasm', `output_dir: ${path.join(tmp, 'run')}`,
    'data: {task: moby-lm, max_length: 128, max_train_examples: 16, max_eval_examples: 4}',
    'adapter: {method: moe-uniform, target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj], experts: {per_layer: 4}, rank: {r: 8}, top_k: 2}',
    'train: {batch_size: 8, max_steps: 2}', '',
  ].join('\n'));
  return file;
}

describe('the memory check before loading', () => {
  // Weights in the heap as float32 (a cap above the model): where a backend has no frozen-linear
  // kernel for weights held outside it, a 1B model's weights alone pass a wasm heap's 4 GiB.
  const cap = process.env.HILO_HEAP_WEIGHTS;
  beforeAll(() => { process.env.HILO_HEAP_WEIGHTS = String(64 * 1024); });
  afterAll(() => { if (cap === undefined) delete process.env.HILO_HEAP_WEIGHTS; else process.env.HILO_HEAP_WEIGHTS = cap; });

  it('refuses a model whose float32 weights exceed a wasm heap, before any tensor exists', { timeout: 120_000 }, async () => {
    const recipe = loadRecipe(recipeFile(bigModelFolder()), []);
    const { initBackend } = await import('../../src/backend/index.ts');
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    const err = await prepareRun(recipe, { log: () => {} }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(HiloError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^training would not fit in memory: one replica's wasm heap would need \d+\.\d\d GiB \(.*frozen weights 5\.\d\d GiB.*\), above tfjs-backend-wasm's 4\.00 GiB per heap/);
    expect(msg).toMatch(/Nothing was loaded\./);
    expect(msg).toMatch(/\n {2}peak +\d+\.\d\d GiB .*available \d+\.\d\d GiB/);
    expect(msg).toMatch(/What would fit.*:\n {2}- no batch, length or replica count fits: the model's weights alone take 5\.\d\d GiB of a wasm heap's 4\.00 GiB/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses to load that model for any command (generate, score, export, probes)', async () => {
    const { loadModel } = await import('../../src/model/load.ts');
    const { checkModelLoad } = await import('../../src/allocate/memory-for-recipe.ts');
    const before = tf.memory().numTensors;
    // the check those commands pass the loader (test/model/load-check.test.ts: each of them does)
    await expect(loadModel(bigModelFolder(), { check: checkModelLoad })).rejects.toThrow(/llama-3\.2-1b: the model cannot be loaded: one replica's wasm heap would need 5\.\d\d GiB .*Nothing was loaded\./s);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('`hilo plan` prints the estimate beside the plan', { timeout: 120_000 }, () => {
    const out = path.join(tmp, 'plan-run');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/hilo.js'), 'plan', path.join(ROOT, 'recipes/moby/lora.yaml'), `output_dir=${out}`], { encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/memory estimate \(wasm \(auto on a CPU machine\), 128 tokens x 8 rows, \d replicas?\):\n {2}frozen weights +\d+ MiB/);
    expect(r.stdout).toMatch(/\n {2}wasm heap +\d+ MiB {2}the main replica's heap; limit 4\.00 GiB per heap\nfits\n$/);
  });
});

describe('frozenStorageFor: the estimate follows the loader\'s storage', () => {
  it.each([
    [{ dtype: 'auto', outside: false }, 'bfloat16', { dtype: 'float32', place: 'heap' }],
    [{ dtype: 'auto', outside: true }, 'bfloat16', { dtype: 'bfloat16', place: 'host' }],
    [{ dtype: 'float16', outside: true }, 'bfloat16', { dtype: 'float16', place: 'host' }],
    [{ dtype: 'bfloat16', outside: false }, 'float32', { dtype: 'float32', place: 'heap' }],
  ] as const)('%o of a %s checkpoint: %o', (storage, stored, want) => {
    expect(frozenStorageFor(storage, stored)).toEqual(want);
  });
});

describe('guardWasmHeap', () => {
  it('turns malloc returning 0 (heap full) into a HiloError and passes real pointers through', () => {
    const heap = new Uint8Array(64);
    const module = { _malloc: (n: number) => (n > 32 ? 0 : -8), _free: () => {}, HEAPU8: heap };
    const fakeTf = { backend: () => ({ wasm: module }) } as unknown as typeof tf;
    guardWasmHeap(fakeTf);
    expect(module._malloc(16)).toBe(-8); // above 2 GiB pointers come back negative; tfjs applies >>> 0
    expect(() => module._malloc(4 * 2 ** 20)).toThrow(/^out of wasm heap: a 0\.00 GiB tensor does not fit in a heap grown to 0\.00 GiB/);
    expect(() => module._malloc(4 * 2 ** 20)).toThrow(HiloError);
  });
});

/**
 * The frozen linear op on webgpu (src/backend/webgpu-frozen.ts) against the reference, forward and
 * gradient, for each stored dtype and layout: with the weight held whole, and split in row blocks
 * by HILO_WEBGPU_BLOCK_BYTES set to a third of it, so every product runs several blocks (the output
 * columns concatenated, or the input columns summed) as a weight above the GPU's binding limit
 * does. Skipped, loudly, without a WebGPU adapter (scripts/setup-webgpu.sh installs lavapipe).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, shutdownBackend } from '../../src/backend/index.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import { BLOCK_BYTES_ENV, blockBytes, blockRows, blocksOnDevice, releaseOnDevice } from '../../src/backend/webgpu-frozen.ts';
import { frozenLinear, frozenLinearOp, referenceFrozenLinear, type FrozenLinearImpl } from '../../src/ops/frozen-linear.ts';
import { encodeShared, STORED_DTYPES, type StoredDtype, type StoredMatrix } from '../../src/ops/stored.ts';
import { injectAdapters } from '../../src/adapters/inject.ts';
import type { AdapterPlan } from '../../src/adapters/plan.ts';
import { loadModel } from '../../src/model/load.ts';
import type { WeightStorage } from '../../src/model/causal-lm.ts';
import { microBatchGradients } from '../../src/train/step.ts';
import { values } from '../backend/matmul-helpers.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING webgpu frozen-linear tests: ${noAdapter}\n`);

function matrix(rows: number, cols: number, dtype: StoredDtype, layout: StoredMatrix['layout'], seed = 1): StoredMatrix {
  return { dtype, rows, cols, layout, bytes: encodeShared(values(rows * cols, seed), dtype) };
}

/** [N, in, out]: a projection, an LM-head-like wide output, odd sizes (1 row, prime sides, off the 32 tile). */
const SHAPES: Array<[number, number, number]> = [[70, 64, 172], [33, 48, 1000], [1, 7, 5], [13, 31, 17]];
const CASES = STORED_DTYPES.flatMap((dtype) => (['out-in', 'in-out'] as const).flatMap((layout) => SHAPES.map((s) => [dtype, layout, ...s] as const)));

async function products(impl: FrozenLinearImpl, w: StoredMatrix, x: tf.Tensor2D, dy: tf.Tensor2D): Promise<[Float32Array, Float32Array]> {
  const [y, dx] = tf.tidy(() => {
    const f = (xs: tf.Tensor) => frozenLinear(xs as tf.Tensor2D, w, null, impl);
    return [f(x), tf.grad(f)(x, dy)];
  });
  const out: [Float32Array, Float32Array] = [(await y.data()) as Float32Array, (await dx.data()) as Float32Array];
  tf.dispose([y, dx]);
  return out;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function check([dtype, layout, N, inF, outF]: readonly [StoredDtype, StoredMatrix['layout'], number, number, number]): Promise<number> {
  const w = layout === 'out-in' ? matrix(outF, inF, dtype, layout) : matrix(inF, outF, dtype, layout);
  const x = tf.tensor2d(values(N * inF, 7), [N, inF]);
  const dy = tf.tensor2d(values(N * outF, 9), [N, outF]);
  const impl = frozenLinearOp.registered('webgpu')!;
  const before = tf.memory().numTensors;
  const [y, dx] = await products(impl, w, x, dy);
  const [yRef, dxRef] = await products(referenceFrozenLinear, w, x, dy);
  expect(tf.memory().numTensors).toBe(before); // the device copies of w are not tensors
  expect(y.length).toBe(N * outF);
  const tol = (k: number) => 1e-5 * Math.sqrt(k) * 4;
  expect(maxDiff(y, yRef)).toBeLessThan(tol(inF));
  expect(maxDiff(dx, dxRef)).toBeLessThan(tol(outF));
  expect(maxDiff(yRef, new Float32Array(yRef.length))).toBeGreaterThan(0.1); // a zero result would not pass unseen
  const blocks = blocksOnDevice(w);
  releaseOnDevice(w);
  expect(blocksOnDevice(w)).toBe(0);
  tf.dispose([x, dy]);
  return blocks;
}

describe('webgpu frozen-linear block sizes', () => {
  it('take the device limit, or less by HILO_WEBGPU_BLOCK_BYTES, and name a row above it', () => {
    expect(blockBytes({}, 2 ** 27)).toBe(2 ** 27);
    expect(blockBytes({ [BLOCK_BYTES_ENV]: '4096' }, 2 ** 27)).toBe(4096);
    expect(blockBytes({ [BLOCK_BYTES_ENV]: '2147483648' }, 2 ** 27)).toBe(2 ** 27);
    expect(() => blockBytes({ [BLOCK_BYTES_ENV]: '4k' }, 2 ** 27)).toThrow(/HILO_WEBGPU_BLOCK_BYTES=4k: expected a whole number of bytes/);
    // the Qwen2.5-0.5B embedding, 151936 x 896, in lavapipe's 128 MiB bindings
    const embedding = { dtype: 'float32', rows: 151936, cols: 896, layout: 'out-in', bytes: new SharedArrayBuffer(0) } as const;
    expect(blockRows(embedding, 2 ** 27)).toBe(37449);
    expect(Math.ceil(151936 / blockRows(embedding, 2 ** 27))).toBe(5);
    expect(blockRows({ ...embedding, dtype: 'bfloat16' }, 2 ** 27)).toBe(74898);
    expect(() => blockRows(embedding, 3000)).toThrow(/one row is 3.5 KiB, above the largest block the GPU binds \(2.9 KiB\)/);
  });
});

describe.skipIf(!!noAdapter)(`frozenLinear on webgpu against the reference (skipped when no adapter: ${noAdapter || 'adapter found'})`, () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });
  afterEach(() => {
    delete process.env[BLOCK_BYTES_ENV];
  });
  afterAll(async () => {
    await shutdownBackend();
  });

  it('is registered for webgpu', () => {
    expect(frozenLinearOp.registered('webgpu')).toBeDefined();
  });

  it.each(CASES)('%s %s N=%i in=%i out=%i, whole: forward and dx', async (...c) => {
    expect(await check(c)).toBe(1);
  });

  it.each(CASES.filter((c) => c[3] * c[4] > 400))('%s %s N=%i in=%i out=%i, in 3 blocks: forward and dx', async (...c) => {
    const [dtype, layout, , inF, outF] = c;
    const [rows, cols] = layout === 'out-in' ? [outF, inF] : [inF, outF];
    // a third of the rows a block, the last one short, and 2-byte blocks of an odd value count
    process.env[BLOCK_BYTES_ENV] = String(Math.ceil(rows / 3) * cols * (dtype === 'float32' ? 4 : 2) + 2);
    expect(await check(c)).toBe(3);
  });

  it('stories260K held outside the engine in bf16, in 8 KiB blocks, trains as the same model on the engine', async () => {
    const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const run = async (storage: WeightStorage) => {
      const model = await loadModel(STORIES260K, { storage });
      const c = model.config;
      const mods = Object.fromEntries(targets.map((t) => [`${/gate|up|down/.test(t) ? 'mlp' : 'self_attn'}.${t}`, { experts: 4, rank: 4, topK: 2 }]));
      const plan: AdapterPlan = {
        method: 'moe-uniform', targetModules: targets, strategy: 'topk', topP: 0.8, alpha: 8, scaling: 'alpha/r', fixedScale: 1,
        dropout: 0, layers: Array.from({ length: c.numLayers }, () => ({ ...mods })),
      };
      const adapters = injectAdapters(model, plan, { seed: 3, balanceCoef: 0.01 });
      const ids = Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 37 + 5) % c.vocabSize);
      const batch = { inputIds: ids, attentionMask: new Float32Array(ids.length).fill(1), labels: ids, batchSize: 2, seqLen: 24 };
      const r = await microBatchGradients(model, [...adapters.variables.values()], { kind: 'tokens', batch }, { seedParts: [0] });
      const grads = new Map<string, Float32Array>(); // by the adapters' own names: tfjs numbers its variables per process
      for (const [key, v] of adapters.variables) grads.set(key, (await r.grads[v.name].data()) as Float32Array);
      tf.dispose(Object.values(r.grads));
      const heldOutside = model.stored.size;
      adapters.dispose();
      model.dispose();
      return { loss: r.loss, grads, heldOutside };
    };
    const engine = await run({ dtype: 'bfloat16', outside: false });
    process.env[BLOCK_BYTES_ENV] = '8192'; // the [512, 64] embedding and tied head in 8 blocks, the MLP's [172, 64] in 3
    const outside = await run({ dtype: 'bfloat16', outside: true });
    expect(engine.heldOutside).toBe(0);
    expect(outside.heldOutside).toBeGreaterThan(7 * 5); // every projection, the embedding (and head)
    expect(Math.abs(outside.loss - engine.loss)).toBeLessThan(1e-4);
    expect(outside.grads.size).toBe(engine.grads.size);
    let worst = 0;
    for (const [n, g] of engine.grads) worst = Math.max(worst, maxDiff(outside.grads.get(n)!, g) / (maxDiff(g, new Float32Array(g.length)) + 1e-12));
    expect(worst).toBeLessThan(1e-3); // relative to each gradient's largest value
  });
});

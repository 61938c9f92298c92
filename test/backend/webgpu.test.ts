/**
 * WebGPU must compute what wasm computes, for the ops the models and adapters use, int32
 * paths included; must refuse tensors above the adapter's binding limit instead of returning
 * zeros; must surface Dawn validation errors; and a process using it must exit.
 * Without a WebGPU adapter these tests are skipped, loudly (scripts/setup-webgpu.sh installs one).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as TF from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend, shutdownBackend } from '../../src/backend/index.ts';
import { DEFAULT_SUBMIT_BATCH, MAX_SUBMIT_BATCH, noAdapterReason, openAdapter, submitBatchSize } from '../../src/backend/webgpu.ts';
import { HiloError } from '../../src/errors.ts';
import { AdamW, adamwUpdate } from '../../src/train/adamw.ts';
import { clipByGlobalNorm, globalNormOf } from '../../src/train/clip.ts';
import { layerNorm, rmsNorm } from '../../src/model/ops.ts';
import { IGNORE_INDEX, tokenNll } from '../../src/ops/cross-entropy.ts';

const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING webgpu tests: ${noAdapter}\n`);

function values(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}
const rand = (shape: number[], seed: number, scale = 1) => tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed, scale), shape);
/**
 * int32 values above 2^24, so a detour through float32 would show. Made from a JS array:
 * webgpu's int32 Add itself computes in f32 (exact only below 2^24, enough for token ids).
 */
const bigInts = (shape: number[]) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Int32Array.from({ length: n }, (_, i) => 2 ** 24 + 1 + i), shape, 'int32');
};
const INT_RESULTS = ['transposeInt2d', 'transposeInt3d', 'transposeInt4d', 'transposePositions', 'argMax'];

/** The ops the model and adapters use, on whatever backend is active; shapes off the tile sizes. */
async function opSuite(): Promise<Record<string, number[]>> {
  const out = tf.tidy(() => {
    const x = rand([33, 40], 1);
    const w = rand([40, 27], 2);
    const q = rand([4, 17, 8], 3);
    const k = rand([4, 19, 8], 4);
    const logits = rand([6, 50], 5, 4);
    const table = rand([50, 16], 6);
    const ids = tf.tensor2d([[1, 4, 9, 49, 0, 3, 3], [7, 7, 2, 10, 11, 48, 5], [0, 1, 2, 3, 4, 5, 6]], undefined, 'int32');
    const positions = tf.tile(tf.range(0, 7, 1, 'int32').expandDims(0), [3, 1]); // [B, T] position ids
    const x4 = rand([2, 5, 3, 4], 7);
    // LoRA-like: softmax(x W + 2 x A B) against targets, gradients for A and B only
    const A = rand([40, 4], 8, 0.5);
    const B = rand([4, 27], 9, 0.5);
    const target = rand([33, 27], 10);
    const lora = (a: tf.Tensor, b: tf.Tensor) => tf.softmax(x.matMul(w).add(x.matMul(a).matMul(b).mul(2))).mul(target).sum();
    const [gA, gB] = tf.grads(lora)([A, B]);
    const embedLoss = (t: tf.Tensor) => tf.gather(t, ids).square().sum();
    const [gTable] = tf.grads(embedLoss)([table]);
    return {
      matMul: x.matMul(w),
      matMulTransposeB: x.matMul(rand([27, 40], 11), false, true),
      batchedMatMul: q.matMul(k, false, true), // [4,17,19]
      batchedMatMulTransposeA: tf.matMul(q, rand([4, 17, 5], 12), true, false),
      softmax: tf.softmax(logits),
      exp: tf.exp(logits),
      gather: tf.gather(table, ids),
      gatherPositions: tf.gather(rand([7, 3], 13), positions),
      transposeFloat4d: tf.transpose(x4, [0, 2, 1, 3]),
      transposeInt2d: tf.transpose(bigInts([9, 70])),
      transposeInt3d: tf.transpose(bigInts([3, 20, 30]), [0, 2, 1]),
      transposeInt4d: tf.transpose(bigInts([2, 5, 3, 4]), [0, 2, 1, 3]),
      transposePositions: tf.transpose(positions),
      sum: tf.sum(logits, -1),
      mean: tf.mean(logits, 0),
      max: tf.max(logits, -1),
      logSumExp: tf.logSumExp(logits, -1),
      argMax: tf.argMax(logits, -1),
      loraLoss: lora(A, B),
      loraGradA: gA,
      loraGradB: gB,
      embeddingGrad: gTable,
    } as Record<string, tf.Tensor>;
  });
  const result: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(out)) result[name] = Array.from(await t.data());
  tf.dispose(Object.values(out));
  return result;
}

describe('webgpu without an adapter', () => {
  it("points at a container's mounted NVIDIA driver manifest, which the Vulkan loader does not search", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-icd-'));
    const [std, mounted] = [path.join(root, 'icd.d'), path.join(root, 'nvidia', 'icd.d')];
    fs.mkdirSync(std, { recursive: true });
    fs.mkdirSync(mounted, { recursive: true });
    const manifest = path.join(mounted, 'nvidia_icd.json');
    fs.writeFileSync(manifest, '{}');
    expect(noAdapterReason([std], [mounted], {})).toContain(`no Vulkan driver (ICD) is installed). The driver's manifest is at ${manifest}, where the Vulkan loader does not look: set VK_DRIVER_FILES=${manifest}`);
    // already pointed at it: no advice to do it again
    expect(noAdapterReason([std], [mounted], { VK_DRIVER_FILES: manifest })).not.toContain('set VK_DRIVER_FILES');
    // a driver in the standard folder that gives no adapter is named as such
    fs.writeFileSync(path.join(std, 'lvp_icd.json'), '{}');
    const both = noAdapterReason([std], [mounted], {});
    expect(both).toContain(`Vulkan drivers present: ${path.join(std, 'lvp_icd.json')}, but none gave an adapter`);
    expect(both).not.toContain('set VK_DRIVER_FILES');
  });
});

describe('webgpu submit batch (HILO_WEBGPU_SUBMIT_BATCH)', () => {
  it('defaults, takes a whole number in range, and names the variable, the value and the range otherwise', () => {
    expect(submitBatchSize({})).toBe(DEFAULT_SUBMIT_BATCH);
    expect(submitBatchSize({ HILO_WEBGPU_SUBMIT_BATCH: '' })).toBe(DEFAULT_SUBMIT_BATCH);
    expect(submitBatchSize({ HILO_WEBGPU_SUBMIT_BATCH: '15' })).toBe(15);
    for (const bad of ['0', '-3', '2.5', 'lots', String(MAX_SUBMIT_BATCH + 1)]) {
      expect(() => submitBatchSize({ HILO_WEBGPU_SUBMIT_BATCH: bad })).toThrow(HiloError);
      expect(() => submitBatchSize({ HILO_WEBGPU_SUBMIT_BATCH: bad })).toThrow(
        new RegExp(`HILO_WEBGPU_SUBMIT_BATCH=${bad.replace('.', '\\.')}: must be a whole number from 1 to ${MAX_SUBMIT_BATCH}`),
      );
    }
  });
});

/** The kernels f runs and the GPU programs they dispatch (Reshape and Identity dispatch none; a fused kernel may dispatch several). */
async function programsOf(f: () => tf.Tensor | tf.Tensor[]): Promise<{ kernels: string[]; programs: number }> {
  const gpu = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const run = gpu.runWebGPUProgram;
  let programs = 0;
  gpu.runWebGPUProgram = function (this: unknown, ...a: unknown[]) {
    programs++;
    return run.apply(this, a);
  };
  try {
    const info = await tf.profile(async () => {
      const out = f();
      await Promise.all([out].flat().map((t) => t.data()));
      tf.dispose(out);
    });
    return { kernels: info.kernels.map((k) => k.name), programs };
  } finally {
    delete (gpu as { runWebGPUProgram?: unknown }).runWebGPUProgram;
  }
}

describe.skipIf(!!noAdapter)(`webgpu (skipped when no adapter: ${noAdapter || 'adapter found'})`, () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  it('computes the same numbers as wasm for the ops the model uses, int32 included', async () => {
    await initBackend('wasm');
    const want = await opSuite();
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false); // every op on the GPU, not tfjs's CPU shortcut
    const before = tf.memory().numTensors;
    const got = await opSuite();
    expect(tf.memory().numTensors).toBe(before);
    for (const [name, w] of Object.entries(want)) {
      expect(got[name].length, name).toBe(w.length);
      if (INT_RESULTS.includes(name)) {
        expect(got[name], name).toEqual(w);
        continue;
      }
      const worst = Math.max(...w.map((v, i) => Math.abs(got[name][i] - v) / Math.max(1, Math.abs(v))));
      expect(worst, name).toBeLessThan(1e-4);
    }
    // the int32 transposes are exact (and not zeros: tfjs 4.22's own kernel fails Dawn's WGSL check)
    expect(got.transposeInt3d.slice(0, 3)).toEqual([2 ** 24 + 1, 2 ** 24 + 31, 2 ** 24 + 61]);
  });

  it('uploads host values into pooled buffers (no GPU buffer made per tensor) and submits in batches', async () => {
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    expect(tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')).toBe(DEFAULT_SUBMIT_BATCH);
    const n = 2048;
    const floats = values(n, 11, 3);
    const ints = Int32Array.from({ length: n }, (_, i) => 2 ** 24 + 1 + i);
    const bools = Array.from({ length: n }, (_, i) => i % 3 === 0);
    const round = async (shift: number) => {
      const out = tf.tidy(() => [
        tf.tensor(floats).add(tf.scalar(shift)),
        tf.tensor(ints, [32, 64], 'int32').transpose(), // exact for int32 (hilo's transpose kernel)
        tf.where(tf.tensor(bools, [n], 'bool'), tf.fill([n], 1 + shift), tf.fill([n], -1)),
      ]);
      const got = await Promise.all(out.map((t) => t.data()));
      tf.dispose(out);
      return got;
    };
    await round(0); // fills the buffer pool for these sizes
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    const create = device.createBuffer;
    let created = 0;
    device.createBuffer = function (this: GPUDevice, d: GPUBufferDescriptor) {
      created++;
      return create.call(this, d);
    };
    let got: TF.TypedArray[];
    try {
      got = await round(0.5);
    } finally {
      device.createBuffer = create;
    }
    expect(created).toBe(0); // tfjs's own upload made a mapped buffer or a staging buffer per tensor
    expect(Array.from(got[0])).toEqual(Array.from(floats, (v) => Math.fround(v + 0.5)));
    expect(Array.from(got[1])).toEqual(Array.from({ length: n }, (_, i) => ints[(i % 32) * 64 + Math.floor(i / 32)]));
    expect(Array.from(got[2])).toEqual(bools.map((b) => (b ? 1.5 : -1)));
  });

  it('updates AdamW with one fused kernel per parameter, as torch.optim.AdamW and the host form do', async () => {
    await initBackend('webgpu');
    const ref = JSON.parse(fs.readFileSync(new URL('../fixtures/train/reference.json', import.meta.url), 'utf8'))['adamw_wd0.1'];
    // torch's trajectory for a [3, 4] parameter (scripts/make-train-fixtures.py)
    const p = tf.variable(tf.tensor(ref.p0, [3, 4]), true);
    // and a parameter spanning several workgroups, against adamwUpdate in double-precision JS
    const shape = [37, 29];
    const n = shape[0] * shape[1];
    const q0 = values(n, 21);
    const q = tf.variable(tf.tensor(q0, shape), true);
    const want = Float32Array.from(q0);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const opt = new AdamW(new Map([['p', p], ['q', q]]), { weightDecay: 0.1 });
    expect(opt.placement).toBe('device');
    const before = tf.memory().numTensors;
    for (let i = 0; i < ref.grads.length; i++) {
      const scale = i === 1 ? 0.5 : 1; // a clip coefficient on one step; p's gradient is doubled to match, so torch's trajectory still holds
      const gp = tf.tensor(ref.grads[i].map((x: number) => x / scale), [3, 4]);
      const gq = values(n, 100 + i, 0.5);
      const gqt = tf.tensor(gq, shape);
      const run = () => opt.apply(new Map([['p', gp], ['q', gqt]]), ref.lr, scale);
      if (i === 0) {
        const info = await tf.profile(run);
        expect(info.kernels.map((k) => k.name)).toEqual(['HiloAdamW', 'HiloAdamW']); // ~14 kernels a parameter without it
      } else run();
      tf.dispose([gp, gqt]);
      adamwUpdate(want, gq, m, v, { lr: ref.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: i + 1, gradScale: scale });
      const got = await p.data();
      got.forEach((x, j) => expect(x).toBeCloseTo(ref.traj[i][j], 5));
      const gotQ = await q.data();
      const worst = Math.max(...Array.from(gotQ, (x, j) => Math.abs(x - want[j])));
      expect(worst).toBeLessThan(1e-5);
    }
    expect(tf.memory().numTensors).toBe(before);
    const state = await opt.getState();
    expect(Math.max(...Array.from(state.v.get('q')!, (x, j) => Math.abs(x - v[j])))).toBeLessThan(1e-6);
    opt.dispose();
    tf.dispose([p, q]);
  });

  it('takes the clipping norm with one program per gradient, as the host sum does', async () => {
    await initBackend('webgpu');
    const sizes = [1, 255, 256, 257, 10_000, 37 * 29];
    const arrays = sizes.map((n, i) => values(n, 40 + i, 3));
    const grads = new Map(arrays.map((a, i) => [`g${i}`, tf.tensor(a)] as const));
    const want = globalNormOf(arrays);
    let norm = NaN;
    const info = await tf.profile(async () => {
      norm = await clipByGlobalNorm(grads, want / 2); // clips: every gradient is halved
    });
    expect(Math.abs(norm - want) / want).toBeLessThan(1e-6);
    const names = info.kernels.map((k) => k.name);
    expect(names.filter((n) => n === 'HiloSumSquares')).toHaveLength(sizes.length);
    expect(names).not.toContain('Square');
    const after = await Promise.all([...grads.values()].map((g) => g.data()));
    expect(globalNormOf(after)).toBeCloseTo(want / 2, 3);
    tf.dispose([...grads.values()]);
  });

  it('runs RMSNorm as one program each way, with the numbers and input gradient of the tfjs ops', async () => {
    const probe = async () => {
      const out = tf.tidy(() => {
        const x = rand([37, 48], 60, 3) as tf.Tensor2D;
        const w = rand([48], 61) as tf.Tensor1D;
        const up = rand([37, 48], 62);
        const { value, grads } = tf.valueAndGrads((xs: tf.Tensor) => rmsNorm(xs as tf.Tensor2D, w, 1e-5).mul(up).sum())([x]);
        return [rmsNorm(x, w, 1e-5), value, grads[0]];
      });
      const got = await Promise.all(out.map(async (t) => Array.from(await t.data())));
      tf.dispose(out);
      return got;
    };
    await initBackend('wasm');
    const want = await probe();
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    let got: number[][] = [];
    const info = await tf.profile(async () => {
      got = await probe();
    });
    const names = info.kernels.map((k) => k.name);
    expect(names).toContain('HiloRmsNorm');
    expect(names).toContain('HiloRmsNormGrad');
    expect(names).not.toContain('Rsqrt');
    want.forEach((w, k) => {
      const worst = Math.max(...w.map((v, i) => Math.abs(got[k][i] - v) / Math.max(1, Math.abs(v))));
      expect(worst, ['y', 'loss', 'dx'][k]).toBeLessThan(1e-5);
    });
  });

  it('runs LayerNorm as one program forward; backward, dx alone for frozen weights, dw and db only where they train', async () => {
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const [x, up] = [rand([37, 48], 70, 3), rand([37, 48], 71)];
    const w = tf.variable(rand([48], 72) as tf.Tensor1D, false); // frozen, as hilo's base weights
    const b = tf.variable(rand([48], 73) as tf.Tensor1D, false);
    const loss = (xs: tf.Tensor, ws = w as tf.Tensor, bs = b as tf.Tensor) => layerNorm(xs as tf.Tensor2D, ws as tf.Tensor1D, bs as tf.Tensor1D, 1e-5).mul(up).sum();
    const forward = await programsOf(() => layerNorm(x as tf.Tensor2D, w, b, 1e-5));
    expect(forward.kernels).toEqual(['HiloLayerNormGpu']);
    expect(forward.programs).toBe(1);
    const frozen = await programsOf(() => tf.grad(loss)(x));
    expect(frozen.kernels.filter((k) => k.startsWith('HiloLayerNorm'))).toEqual(['HiloLayerNormGpu', 'HiloLayerNormGpuDx']);
    const all = await programsOf(() => tf.grads((xs: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor) => loss(xs, ws, bs))([x, w, b]));
    expect(all.kernels.filter((k) => k.startsWith('HiloLayerNorm')).sort()).toEqual(['HiloLayerNormGpu', 'HiloLayerNormGpuDb', 'HiloLayerNormGpuDw', 'HiloLayerNormGpuDx']);
    expect(all.programs - frozen.programs).toBe(3); // dw: the rows' (μ, r), then its column sums; db: a column sum
    tf.dispose([x, up, w, b]);
  });

  it('runs the token NLL as one program each way', async () => {
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const logits = rand([9, 1031], 80, 6) as tf.Tensor2D;
    const y = Int32Array.from({ length: 9 }, (_, i) => (i === 4 ? IGNORE_INDEX : (i * 113) % 1031));
    const forward = await programsOf(() => tokenNll(logits, y));
    expect(forward.kernels).toContain('HiloTokenNll');
    expect(forward.programs).toBe(1);
    const grad = await programsOf(() => tf.grad((l: tf.Tensor) => tokenNll(l as tf.Tensor2D, y).sum())(logits));
    expect(grad.kernels.filter((k) => k.startsWith('HiloTokenNll'))).toEqual(['HiloTokenNll', 'HiloTokenNllGrad']);
    expect(grad.programs).toBe(4); // the NLL each way, the sum and its gradient's multiply
    logits.dispose();
  });

  it('refuses a tensor above the adapter binding limit instead of returning zeros', async () => {
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const limit = (await import('../../src/backend/limits.ts')).deviceLimit()!;
    expect(limit.maxTensorBytes).toBeGreaterThan(0);
    const n = limit.maxTensorBytes / 4 + 1024;
    const before = tf.memory().numTensors;
    expect(() => tf.fill([n], 1)).toThrow(/above the largest tensor webgpu can bind/);
    expect(() => tf.fill([n], 1)).toThrow(HiloError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('turns a Dawn validation error into an exception at the next read', async () => {
    await initBackend('webgpu');
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    device.createBuffer({ size: 4, usage: 0 }); // usage 0 is invalid: an uncaptured validation error
    await new Promise((r) => setTimeout(r, 50));
    const y = tf.tidy(() => rand([64, 64], 1).matMul(rand([64, 64], 2)));
    await expect(y.data()).rejects.toThrow(/GPU rejected 1 command/);
    // reported once: the next read is clean again
    expect((await y.data()).length).toBe(64 * 64);
    y.dispose();
  });

  it('says how to read instead of failing obscurely on a synchronous read of a GPU tensor', async () => {
    await initBackend('webgpu');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const y = tf.tidy(() => rand([64, 64], 1).matMul(rand([64, 64], 2)));
    expect(() => y.dataSync()).toThrow(/cannot read GPU tensors synchronously .*await t\.data\(\)/);
    expect((await y.data()).length).toBe(64 * 64);
    y.dispose();
  });

  it('lets a process that used webgpu exit, without Dawn noise on stderr', () => {
    const script = path.join(import.meta.dirname, 'fixtures', 'webgpu-exit.ts');
    // stderr to a file, as in a terminal or a CI log (a Node parent's pipe is a socket, which
    // cannot be reopened through /proc, so Dawn's two adapter warnings do show there)
    const errFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-test-')), 'stderr.txt');
    const errFd = fs.openSync(errFile, 'w');
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 90_000, stdio: ['ignore', 'pipe', errFd] });
    fs.closeSync(errFd);
    const stderr = fs.readFileSync(errFile, 'utf8');
    expect(run.status, stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toEqual({ backend: 'webgpu', sum: 328350 });
    expect(stderr).not.toMatch(/Warning: max|validation/);
  });
});

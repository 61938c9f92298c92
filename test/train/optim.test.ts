import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { defaultPlacement, type Placement } from '../../src/ops/host-values.ts';
import { keysByDataId } from '../../src/backend/wasm-matmul.ts';
import { useSimdKernels } from '../../src/backend/wasm-simd.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { clipByGlobalNorm, clipFactor } from '../../src/train/clip.ts';
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

const PLACEMENTS: Placement[] = ['host', 'device'];

describe('AdamW matches torch.optim.AdamW', () => {
  it('runs on the host on wasm and cpu, on the device elsewhere, and on wasm as the SIMD module\'s kernel where it is loaded', () => {
    expect(defaultPlacement('wasm')).toBe('host');
    expect(defaultPlacement('cpu')).toBe('host');
    expect(defaultPlacement('webgpu')).toBe('device');
    expect(defaultPlacement('tensorflow')).toBe('device');
    // these tests run on the single-threaded wasm backend, which has hilo's HiloAdamW
    expect(new AdamW(new Map()).placement).toBe('device');
    useSimdKernels(tf, false);
    try {
      expect(new AdamW(new Map()).placement).toBe('host');
    } finally {
      useSimdKernels(tf, true);
    }
  });

  for (const placement of PLACEMENTS) {
    for (const key of ['adamw_wd0.0', 'adamw_wd0.1']) {
      it(`${key}, ${placement}`, async () => {
        const r = ref[key];
        const p = tf.variable(tf.tensor(r.p0, [3, 4]), true);
        const opt = new AdamW(new Map([['p', p]]), { weightDecay: Number(key.slice(8)), placement });
        const before = tf.memory().numTensors;
        r.grads.forEach((g: number[], i: number) => {
          const grad = tf.tensor(g, [3, 4]);
          opt.apply(new Map([['p', grad]]), r.lr);
          grad.dispose();
          const got = Array.from(p.dataSync());
          got.forEach((v, j) => expect(v).toBeCloseTo(r.traj[i][j], 5));
        });
        expect(tf.memory().numTensors).toBe(before);
        // state round trip, into either placement (checkpoints move between backends)
        const state = await opt.getState();
        expect(state.step).toBe(r.grads.length);
        expect(Math.max(...Array.from(state.v.get('p')!))).toBeGreaterThan(0);
        for (const other of PLACEMENTS) {
          const opt2 = new AdamW(new Map([['p', p]]), { placement: other });
          opt2.setState(state);
          const back = await opt2.getState();
          expect(back.step).toBe(state.step);
          expect(Array.from(back.m.get('p')!)).toEqual(Array.from(state.m.get('p')!));
          expect(Array.from(back.v.get('p')!)).toEqual(Array.from(state.v.get('p')!));
          opt2.dispose();
        }
        opt.dispose();
        p.dispose();
      });
    }
  }

  it('on the cpu backend, whose dataSync hands out the tensor\'s own array, a host update leaves other tensors alone', async () => {
    await tf.setBackend('cpu');
    try {
      const p = tf.variable(tf.tensor1d([1, 2, 3]), true);
      const shared = tf.clone(p); // the same buffer as p on cpu
      const opt = new AdamW(new Map([['p', p]]), { placement: 'host' });
      const g = tf.tensor1d([0.5, -0.5, 1]);
      opt.apply(new Map([['p', g]]), 0.1);
      expect(Array.from(shared.dataSync())).toEqual([1, 2, 3]);
      Array.from(p.dataSync()).forEach((v, i) => expect(v).toBeCloseTo([0.9, 2.1, 2.9][i], 5)); // first Adam step: ±lr
      tf.dispose([p, shared, g]);
      opt.dispose();
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('host and device placements take the same trajectory, the device one in place, fused (SIMD module) or as tfjs kernels', async () => {
    /**
     * 5 steps on 50 values (12 SIMD groups of 4 and a tail of 2); the kernels the last step ran
     * and how many data ids the parameter had. `share`: a clone of the parameter is held over
     * each update, and must keep the values it had.
     */
    const traj = async (placement: Placement, share = false) => {
      // made in a tidy, which frees the initial tensor: left alive, it would share p's data
      const p = tf.tidy(() => tf.variable(tf.tensor(Array.from({ length: 50 }, (_, j) => Math.cos(j)), [5, 10]), true));
      const opt = new AdamW(new Map([['p', p]]), { weightDecay: 0.05, placement });
      let kernels: string[] = [];
      const ids = new Set<object>([p.dataId]);
      for (let step = 0; step < 5; step++) {
        const g = tf.tidy(() => tf.sin(tf.mul(p, step + 1)));
        const shared = share ? tf.clone(p) : null;
        const before = shared ? Array.from(shared.dataSync()) : [];
        kernels = (await tf.profile(() => opt.apply(new Map([['p', g]]), 3e-2, step === 2 ? 0.5 : 1))).kernelNames;
        if (shared) expect(Array.from(shared.dataSync())).toEqual(before);
        ids.add(p.dataId);
        tf.dispose([g, shared!].filter(Boolean));
      }
      const out = Array.from(p.dataSync());
      opt.dispose();
      p.dispose();
      return { out, kernels, dataIds: ids.size };
    };
    const host = await traj('host');
    const device = await traj('device');
    const shared = await traj('device', true);
    expect(shared.kernels).toEqual(['HiloAdamW']); // the shared parameter gets new data
    expect(shared.dataIds).toBe(6);
    if (keysByDataId()) {
      expect(device.kernels).toEqual(['HiloAdamW']); // no native BLAS: never in place
    } else {
      expect(device.kernels).toEqual([]); // written in place: no kernel, the same data
      expect(device.dataIds).toBe(1);
    }
    expect(device.out).toEqual(shared.out); // the same SIMD update either way
    useSimdKernels(tf, false);
    const unfused = await traj('device').finally(() => useSimdKernels(tf, true));
    expect(unfused.kernels).not.toContain('HiloAdamW');
    for (const d of [device, unfused]) d.out.forEach((v, i) => expect(host.out[i]).toBeCloseTo(v, 5));
  });
});

describe.each(PLACEMENTS)('AdamW over several parameters (%s)', (placement) => {
  /** Three parameters of different shapes, 4 steps of fixed gradients; p2 gets none on step 2. */
  async function run() {
    const shapes = [[3, 4], [5], [2, 3]];
    const params = new Map(shapes.map((s, i) => [`p${i}`, tf.variable(tf.tensor(Array.from({ length: s.reduce((a, b) => a * b) }, (_, j) => Math.sin(i * 10 + j)), s), true)]));
    const opt = new AdamW(params, { weightDecay: 0.1, placement });
    const before = tf.memory().numTensors;
    let p2AfterStep1: number[] = [];
    for (let step = 0; step < 4; step++) {
      const grads = new Map([...params].filter(([n]) => !(n === 'p2' && step === 1)).map(([n, p]) => [n, tf.tidy(() => tf.mul(p, 0.3 + step).add(0.05))]));
      opt.apply(grads, 1e-2);
      tf.dispose([...grads.values()]);
      if (step === 0) p2AfterStep1 = Array.from(params.get('p2')!.dataSync());
      if (step === 1) expect(Array.from(params.get('p2')!.dataSync())).toEqual(p2AfterStep1); // no gradient: untouched
    }
    expect(tf.memory().numTensors).toBe(before);
    const values = [...params.values()].map((p) => Array.from(p.dataSync()));
    const state = await opt.getState();
    opt.dispose();
    tf.dispose([...params.values()]);
    return { values, state };
  }

  it('updates each parameter as its own optimizer would, and leaves one without a gradient alone', async () => {
    const together = await run();
    const shapes = [[3, 4], [5], [2, 3]];
    shapes.forEach((s, i) => {
      const p = tf.variable(tf.tensor(Array.from({ length: s.reduce((a, b) => a * b) }, (_, j) => Math.sin(i * 10 + j)), s), true);
      const opt = new AdamW(new Map([['p', p]]), { weightDecay: 0.1, placement });
      for (let step = 0; step < 4; step++) {
        if (i === 2 && step === 1) { opt.step += 1; continue; } // the step count advances for everyone
        const g = tf.tidy(() => tf.mul(p, 0.3 + step).add(0.05));
        opt.apply(new Map([['p', g]]), 1e-2);
        g.dispose();
      }
      expect(Array.from(p.dataSync())).toEqual(together.values[i]);
      opt.dispose();
      p.dispose();
    });
  });
});

describe('clipByGlobalNorm matches clip_grad_norm_', () => {
  it.each(PLACEMENTS)('scales every gradient by max_norm / norm (%s)', async (placement) => {
    const c = ref.clip;
    const grads = new Map<string, tf.Tensor>(c.grads.map((g: number[], i: number) => [`g${i}`, tf.tensor(g, c.shapes[i])]));
    const norm = await clipByGlobalNorm(grads, c.max_norm, placement);
    expect(norm).toBeCloseTo(c.norm, 4);
    [...grads.values()].forEach((g, i) => {
      Array.from(g.dataSync()).forEach((v, j) => expect(v).toBeCloseTo(c.clipped[i][j], 5));
      g.dispose();
    });
  });
});

describe('clipFactor + AdamW.apply(gradScale) is clipByGlobalNorm then AdamW.apply', () => {
  it.each(PLACEMENTS)('%s', async (placement) => {
    const c = ref.clip;
    const make = () => new Map<string, tf.Tensor>(c.grads.map((g: number[], i: number) => [`g${i}`, tf.tensor(g, c.shapes[i])]));
    const params = (seed: number) =>
      new Map<string, tf.Variable>(c.shapes.map((shape: number[], i: number) => [`g${i}`, tf.variable(tf.randomNormal(shape, 0, 1, 'float32', seed + i), true)]));
    const [pa, pb] = [params(7), params(7)];
    const [oa, ob] = [new AdamW(pa, { weightDecay: 0.1, placement }), new AdamW(pb, { weightDecay: 0.1, placement })];
    for (const maxNorm of [c.max_norm, 1e9]) { // clipping, then not
      const ga = make();
      const norm = await clipByGlobalNorm(ga, maxNorm, placement);
      oa.apply(ga, 1e-2);
      const gb = make();
      const { norm: normB, factor } = await clipFactor(gb, maxNorm, placement);
      expect(normB).toBe(norm);
      expect(factor === 1).toBe(maxNorm === 1e9);
      ob.apply(gb, 1e-2, factor);
      tf.dispose([...ga.values(), ...gb.values()]);
    }
    for (const [name, a] of pa) expect(Array.from(pb.get(name)!.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(Array.from(pa.get('g0')!.dataSync())).not.toEqual(Array.from(params(7).get('g0')!.dataSync()));
    tf.dispose([...pa.values(), ...pb.values()]);
    oa.dispose();
    ob.dispose();
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

/** The op table (src/ops/registry.ts's opTable) after backend start-up: which backend registered which op. */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { shutdownBackend } from '../../src/backend/index.ts';
import { loadBlas } from '../../src/backend/blas.ts';
import { useSimdKernels } from '../../src/backend/wasm-simd.ts';
import { storedHeadNllOp } from '../../src/ops/cross-entropy.ts';
import { opTable } from '../../src/ops/registry.ts';
import { encodeShared, type StoredMatrix } from '../../src/ops/stored.ts';
import { noAdapter, useBackend, values } from './parity.ts';
import '../../src/ops/norm.ts';
import '../../src/ops/attention.ts';
import '../../src/ops/activation.ts';
import '../../src/ops/adamw.ts';
import '../../src/ops/clip.ts';

const backendsOf = (name: string) => opTable().find((o) => o.name === name)?.backends ?? [];

describe('the op table', () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  it('holds every op the model and the trainer call, wasm\'s SIMD versions once it starts', async () => {
    await useBackend('wasm');
    for (const name of ['rms-norm', 'layer-norm', 'attention', 'rotary', 'swiglu', 'token-nll', 'adamw', 'sum-squares']) expect(backendsOf(name), name).toContain('wasm');
  });

  it('wasm\'s rows follow its SIMD kernels: gone while they are off (as on the threaded build), back with them', async () => {
    await useBackend('wasm');
    const SIMD_OPS = ['rms-norm', 'layer-norm', 'attention', 'rotary', 'swiglu', 'token-nll', 'adamw', 'sum-squares'];
    useSimdKernels(tf, false);
    try {
      for (const name of SIMD_OPS) expect(backendsOf(name), name).not.toContain('wasm');
    } finally {
      useSimdKernels(tf, true);
    }
    for (const name of SIMD_OPS) expect(backendsOf(name), name).toContain('wasm');
  });

  it('wasm with a native BLAS takes the stored head\'s cross-entropy in vocabulary blocks; with the SIMD module off, the reference', async () => {
    await useBackend('wasm');
    const blas = loadBlas({}).blas !== null;
    expect(backendsOf('stored-head-nll').includes('wasm')).toBe(blas);
    if (!blas) return;
    const fast = storedHeadNllOp.registered('wasm')!;
    const head: StoredMatrix = { dtype: 'bfloat16', rows: 40, cols: 8, layout: 'out-in', bytes: encodeShared(values(320, 5), 'bfloat16') };
    const h = tf.tensor2d(values(24, 6), [3, 8]);
    const y = Int32Array.from([1, 39, 20]);
    const kernelsOf = async (on: boolean) => {
      useSimdKernels(tf, on);
      const p = await tf.profile(() => fast(h, head, y));
      tf.dispose(p.result as tf.Tensor);
      return p.kernels.map((k) => k.name);
    };
    try {
      expect(await kernelsOf(true)).toContain('HiloHeadNll');
      expect(await kernelsOf(false)).not.toContain('HiloHeadNll');
    } finally {
      useSimdKernels(tf, true);
      h.dispose();
    }
  });

  it.skipIf(!!noAdapter)('webgpu registers its norms, attention, token NLL, AdamW and Σ g² as it starts', async () => {
    await useBackend('webgpu');
    for (const name of ['rms-norm', 'layer-norm', 'attention', 'token-nll', 'adamw', 'sum-squares']) expect(backendsOf(name), name).toContain('webgpu');
  });
});

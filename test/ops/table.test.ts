/** The op table (src/ops/registry.ts's opTable) after backend start-up: which backend registered which op. */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { shutdownBackend } from '../../src/backend/index.ts';
import { useSimdKernels } from '../../src/backend/wasm-simd.ts';
import { opTable } from '../../src/ops/registry.ts';
import { noAdapter, useBackend } from './parity.ts';
import '../../src/ops/norm.ts';
import '../../src/ops/attention.ts';
import '../../src/ops/activation.ts';
import '../../src/ops/cross-entropy.ts';
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

  it.skipIf(!!noAdapter)('webgpu registers its RMSNorm, AdamW and Σ g² as it starts', async () => {
    await useBackend('webgpu');
    for (const name of ['rms-norm', 'adamw', 'sum-squares']) expect(backendsOf(name), name).toContain('webgpu');
    for (const name of ['attention', 'token-nll']) expect(backendsOf(name), name).not.toContain('webgpu');
  });
});

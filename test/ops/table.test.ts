/** The op table (src/ops/registry.ts's opTable) after backend start-up: which backend registered which op. */
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
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
    for (const name of ['rms-norm', 'attention', 'rotary', 'swiglu', 'token-nll', 'adamw', 'sum-squares']) expect(backendsOf(name), name).toContain('wasm');
    expect(backendsOf('layer-norm')).toEqual([]);
  });

  it.skipIf(!!noAdapter)('webgpu registers its RMSNorm, AdamW and Σ g² as it starts', async () => {
    await useBackend('webgpu');
    for (const name of ['rms-norm', 'adamw', 'sum-squares']) expect(backendsOf(name), name).toContain('webgpu');
    for (const name of ['attention', 'token-nll']) expect(backendsOf(name), name).not.toContain('webgpu');
  });
});

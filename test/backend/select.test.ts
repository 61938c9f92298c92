/**
 * Choosing the engine: `auto` passes over what cannot run here and says why; an explicit name
 * runs exactly that engine or fails with a message saying what to do; the size guard refuses
 * tensors above the device limit with the numbers in words.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { assertFitsDevice, initBackend, shutdownBackend } from '../../src/backend/index.ts';
import { setDeviceLimit } from '../../src/backend/limits.ts';
import { explainTensorflowFailure } from '../../src/backend/tensorflow.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import { HiloError } from '../../src/errors.ts';

const adapter = await openAdapter().then((a) => a.report, () => null);

describe('initBackend', () => {
  afterAll(async () => {
    await shutdownBackend();
  });

  it('auto skips the missing libtensorflow packages, then takes webgpu only on a hardware adapter, else wasm', async () => {
    const info = await initBackend('auto');
    expect(info.skipped[0].name).toBe('tensorflow');
    expect(info.skipped[0].reason).toMatch(/@tensorflow\/tfjs-node-gpu is not installed.*TFJS_NODE_CDN_STORAGE.*CUDA 11\.2/);
    if (adapter && !adapter.software) {
      expect(info.name).toBe('webgpu');
      return;
    }
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const webgpu = info.skipped.find((s) => s.name === 'webgpu')!;
    expect(webgpu.reason).toMatch(adapter ? /software adapter .*use --backend webgpu/ : /no WebGPU adapter.*mesa-vulkan-drivers/);
    expect(info.detail).toMatch(/SIMD/);
  });

  it('initialises exactly the engine named', async () => {
    expect((await initBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect((await initBackend('wasm')).name).toBe('wasm');
  });

  it('fails an explicit engine that cannot run with what to do', async () => {
    const err = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HiloError);
    expect((err as Error).message).toMatch(/^--backend tensorflow: optional package @tensorflow\/tfjs-node-gpu is not installed.*npm install @tensorflow\/tfjs-node-gpu.*hilo doctor/);
    await expect(initBackend('gpu')).rejects.toThrow('--backend: got "gpu"; allowed: "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu"');
  });
});

describe('explainTensorflowFailure', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['@tensorflow/tfjs-node', Object.assign(new Error("Cannot find package '@tensorflow/tfjs-node' imported from x"), { code: 'ERR_MODULE_NOT_FOUND' }), /not installed.*TFJS_NODE_BASE_URI.*npm install @tensorflow\/tfjs-node$/],
    ['@tensorflow/tfjs-node-gpu', new Error('libcudart.so.11.0: cannot open shared object file'), /CUDA did not load.*CUDA 11\.2 runtime and cuDNN 8\.1/],
    ['@tensorflow/tfjs-node', new Error('libtensorflow.so.2: cannot open shared object file'), /libtensorflow\/binding is missing.*TFJS_NODE_CDN_STORAGE=<url> npm rebuild @tensorflow\/tfjs-node/],
    ['@tensorflow/tfjs-node', new Error('something else\nmore'), /^@tensorflow\/tfjs-node failed to load: something else$/],
  ];
  it.each(cases)('%s: %s', (pkg, e, want) => {
    expect(explainTensorflowFailure(pkg, e)).toMatch(want);
  });
});

describe('assertFitsDevice', () => {
  afterAll(() => setDeviceLimit(null));

  it('passes everything when the engine has no per-tensor limit', () => {
    setDeviceLimit(null);
    expect(() => assertFitsDevice([151936, 896], 'float32', 'model.embed_tokens.weight')).not.toThrow();
  });

  it('refuses what is above the limit, naming the tensor, its size and the limit', () => {
    setDeviceLimit({ backend: 'webgpu', device: 'llvmpipe', maxTensorBytes: 128 * 2 ** 20 });
    expect(() => assertFitsDevice([32 * 2 ** 20], 'float32', 'x')).not.toThrow(); // exactly 128 MiB fits
    expect(() => assertFitsDevice([151936, 896], 'float32', 'model.embed_tokens.weight')).toThrow(
      'model.embed_tokens.weight: [151936, 896] float32 is 519.3 MiB, above the largest tensor webgpu can bind on llvmpipe (128.0 MiB)',
    );
    expect(() => assertFitsDevice([32 * 2 ** 20 + 1], 'int32', 'ids')).toThrow(HiloError);
  });
});

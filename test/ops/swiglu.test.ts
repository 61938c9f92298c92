/**
 * The swiglu op (src/ops/activation.ts), silu(gate) ⊙ up: every registered implementation
 * against the reference on the same backend, forward and both gradients, at stories260K's bench
 * shape ([8·128, 172]) and odd ones; the reference against the formula in doubles.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownBackend } from '../../src/backend/index.ts';
import { gatedActivation } from '../../src/model/ops.ts';
import { swiGlu, swiGluOp } from '../../src/ops/activation.ts';
import { expectClose, host, PARITY_BACKENDS, useBackend, valueAndGrads, values } from './parity.ts';

const SHAPES: Array<[number, number]> = [[1024, 172], [1, 1], [7, 13]];

describe.each(['cpu', ...PARITY_BACKENDS])('swiglu on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(async () => {
    if (backend === 'webgpu') await shutdownBackend();
  });

  it('is registered where the backend has a kernel (wasm: the SIMD module)', () => {
    expect(swiGluOp.registered(backend) !== undefined).toBe(backend === 'wasm');
  });

  it.each(SHAPES)('[%i, %i]: every implementation as the reference, the reference as the formula, dgate and dup', async (n, i) => {
    const [ga, ua] = [host(n * i, 21, 4), host(n * i, 22, 2)];
    const [g, u] = [tf.tensor2d(ga, [n, i]), tf.tensor2d(ua, [n, i])];
    const run = (impl = swiGluOp.reference) => valueAndGrads((a, b) => swiGlu(a as tf.Tensor2D, b as tf.Tensor2D, impl), [g, u]);
    const want = await run();
    const dy = values(n * i, 99);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const js = [
      ga.map((x, k) => x * sig(x) * ua[k]),
      ga.map((x, k) => dy[k] * ua[k] * sig(x) * (1 + x * (1 - sig(x)))),
      ga.map((x, k) => dy[k] * x * sig(x)),
    ];
    expectClose(want, js, 2e-6, ['reference h', 'reference dgate', 'reference dup']);
    const fast = swiGluOp.registered(backend);
    if (fast) expectClose(await run(fast), want, 2e-6, ['h', 'dgate', 'dup']);
    // the model's gated MLP takes it for silu (and swish), by name
    expectClose(await valueAndGrads((a, b) => gatedActivation('swish', a as tf.Tensor2D, b as tf.Tensor2D), [g, u]), want, 2e-6, ['h', 'dgate', 'dup']);
    tf.dispose([g, u]);
  });
});

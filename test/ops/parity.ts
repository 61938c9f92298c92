/**
 * The parity harness the op tests share (test/ops/<op>.test.ts): which backends' registrations
 * can run here, and one probe that reads an op's value and its input gradients back, so every
 * registered implementation is set against the op's reference on the same backend and inputs.
 * webgpu rows run where an adapter opens (lavapipe: export XDG_RUNTIME_DIR=$(mktemp -d)).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import { values } from '../backend/matmul-helpers.ts';

export { values } from '../backend/matmul-helpers.ts';

export const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING the webgpu rows of test/ops: ${noAdapter}\n`);

/** Backends that register fast versions of ops, and that can start here. */
export const PARITY_BACKENDS: string[] = noAdapter ? ['wasm'] : ['wasm', 'webgpu'];

/** Make `name` the active backend, every webgpu op on the GPU (not tfjs's CPU shortcut for small tensors). */
export async function useBackend(name: string): Promise<void> {
  await initBackend(name as 'wasm' | 'webgpu' | 'cpu');
  if (name === 'webgpu') tf.env().set('WEBGPU_CPU_FORWARD', false);
}

/** values(n, seed) times `scale`, rounded to float32: the host copy of seeded(…). */
export const host = (n: number, seed: number, scale = 1): Float32Array => values(n, seed).map((v) => v * scale);

/** A tensor of `shape` holding host(size, seed, scale). */
export const seeded = (shape: number[], seed: number, scale = 1): tf.Tensor => tf.tensor(host(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

/**
 * f(...xs) and the gradients of Σ f(...xs) ⊙ dy (dy seeded, f's shape) with respect to each of
 * xs, read back; the value is taken outside any tape (as evaluation does), the gradients inside.
 * Asserts that nothing leaks.
 */
export async function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], seed = 99): Promise<Float32Array[]> {
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const y = f(...xs);
    const dy = tf.tensor(values(y.size, seed), y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), dy)))(xs);
    return [y, ...grads];
  });
  const got = (await Promise.all(out.map((t) => t.data()))) as Float32Array[];
  tf.dispose(out);
  expect(tf.memory().numTensors).toBe(before);
  return got;
}

/** The largest |a − b| / max(1, |b|). */
export function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return Number.isNaN(w) ? Infinity : w;
}

/** Every output of `got` within `tol` of `want` (relative past 1), each named. */
export function expectClose(got: Float32Array[], want: Float32Array[], tol: number, names: string[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, k) => expect(worst(g, want[k]), names[k] ?? `output ${k}`).toBeLessThan(tol));
}

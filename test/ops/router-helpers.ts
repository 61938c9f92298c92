/**
 * What the router ops' parity tests share: the backends to walk (webgpu where an adapter opens,
 * lavapipe on CPU-only machines), shapes like the bench's and odd ones, and the comparison.
 * Each test initialises a backend, takes every implementation its op registered for it, and
 * runs it beside the op's reference on the same backend, forward and gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { openAdapter } from '../../src/backend/webgpu.ts';
import type { Op } from '../../src/ops/registry.ts';

const noAdapter = await openAdapter().then(() => '', (e: Error) => e.message);
if (noAdapter) console.warn(`\n*** SKIPPING the webgpu rows of the router ops' parity tests: ${noAdapter}\n`);

/** The backends whose registrations are checked. */
export const BACKENDS = ['cpu', 'wasm', ...(noAdapter ? [] : ['webgpu'])];

/** Rows N, input width, experts E, rank r: the bench's stories260K (8 x 128 tokens, dim 64, 4 experts of rank 8), and odd ones. */
export const SHAPES: Array<{ name: string; N: number; inF: number; E: number; r: number; out: number }> = [
  { name: 'bench N=1024 in=64 E=4 r=8', N: 1024, inF: 64, E: 4, r: 8, out: 64 },
  { name: 'odd N=37 in=24 E=3 r=3', N: 37, inF: 24, E: 3, r: 3, out: 20 },
  { name: 'odd N=5 in=7 E=3 r=1', N: 5, inF: 7, E: 3, r: 1, out: 6 },
];

/** Initialise `backend` and return its registrations of `op` (failing when `expected` names one it lacks). */
export async function registrations<I>(backend: string, op: Op<I>, expected: boolean): Promise<Array<[string, I]>> {
  await initBackend(backend);
  if (backend === 'webgpu') tf.env().set('WEBGPU_CPU_FORWARD', false);
  const found = op.implementations().filter(([b]) => b === backend);
  if (expected) expect(found.length, `${op.name} registered for ${backend}`).toBe(1);
  return found;
}

/** Max |got − want| / max(1, |want|) over two arrays of the same length. */
export function worst(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let w = 0;
  for (let i = 0; i < want.length; i++) w = Math.max(w, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return w;
}

/** Every named array of `got` within `tol` of `want`'s (NaN fails: the comparison is false). */
export function expectClose(got: Record<string, ArrayLike<number>>, want: Record<string, ArrayLike<number>>, tol: number): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const k of Object.keys(want)) expect(worst(got[k], want[k]) <= tol, `${k}: worst ${worst(got[k], want[k])}`).toBe(true);
}

/** The tensors' values, read and disposed (async: webgpu). */
export async function read(ts: Record<string, tf.Tensor>): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(ts)) out[k] = (await t.data()) as Float32Array;
  tf.dispose(Object.values(ts));
  return out;
}

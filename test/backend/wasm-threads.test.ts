/**
 * tfjs-backend-wasm's threaded build under Node (src/backend/wasm-threads.ts): it must really
 * start the asked-for pool, give the single-threaded numbers, let Node exit, and refuse a bad
 * HILO_WASM_THREADS with the allowed range.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { wasmThreadCount } from '../../src/backend/wasm-threads.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1));
}

describe('threaded wasm', () => {
  let detail = '';
  beforeAll(async () => {
    process.env.HILO_WASM_THREADS = '2';
    detail = (await initBackend('wasm')).detail;
  });

  it('starts the number of threads asked for', async () => {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    expect(wasm.getThreadsCount()).toBe(2);
    expect(detail).toMatch(/2 threads/);
  });

  it('multiplies exactly as a float64 loop does, within float32 rounding', () => {
    const [m, k, n] = [96, 200, 130]; // big enough for XNNPACK to split the output over threads
    const a = values(m * k, 1);
    const b = values(k * n, 2);
    const got = tf.tidy(() => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])).dataSync());
    let worst = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
        worst = Math.max(worst, Math.abs(got[i * n + j] - sum));
      }
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it('lets the process exit once the work is done', () => {
    const script = "import { initBackend } from './src/backend/index.ts'; const tf = await import('@tensorflow/tfjs'); " +
      "const info = await initBackend('wasm'); console.log(info.detail, tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync()[0]);";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT, env: { ...process.env, HILO_WASM_THREADS: '2' }, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.signal, `stderr: ${r.stderr}`).toBeNull(); // a pool thread keeping Node alive ends in the timeout's SIGTERM
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 threads.* 64\n$/);
  });

  it('falls back to one thread, saying why, when the threaded build cannot start', () => {
    // shared wasm memory refused, as on a runtime without wasm threads
    const script = "const M = WebAssembly.Memory; WebAssembly.Memory = function (d) { if (d && d.shared) throw new Error('no shared memory here'); return new M(d); };" +
      "const { initBackend } = await import('./src/backend/index.ts'); const tf = await import('@tensorflow/tfjs');" +
      "const info = await initBackend('wasm'); console.log(info.detail); console.log(tf.matMul(tf.ones([3, 4]), tf.ones([4, 2])).dataSync()[0]);";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT, env: { ...process.env, HILO_WASM_THREADS: '2' }, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 thread \(HILO_WASM_THREADS; the threaded build failed \(.*\), so one\)/);
    expect(r.stdout).toMatch(/\n4\n$/);
  });

  it('refuses a bad HILO_WASM_THREADS naming the allowed range', () => {
    expect(() => wasmThreadCount({ HILO_WASM_THREADS: '0' })).toThrow('HILO_WASM_THREADS=0: must be a whole number from 1 to 8');
    expect(() => wasmThreadCount({ HILO_WASM_THREADS: 'two' })).toThrow(/HILO_WASM_THREADS=two/);
    expect(wasmThreadCount({ HILO_WASM_THREADS: '3' })).toBe(3);
    expect(wasmThreadCount({})).toBeGreaterThanOrEqual(1);
  });
});

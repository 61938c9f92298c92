/** `hilo doctor` as a user runs it: every backend listed, reasons a user can act on, quickly. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const hilo = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/hilo.js'), ...args], { encoding: 'utf8', timeout: 60_000 });

describe('hilo doctor', () => {
  it('--json lists every backend in auto order with availability and reasons', () => {
    const t0 = Date.now();
    const run = hilo('doctor', '--json');
    const seconds = (Date.now() - t0) / 1000;
    expect(run.status, run.stderr).toBe(0);
    expect(seconds).toBeLessThan(30); // ~2 s on an idle 2-core machine
    const report = JSON.parse(run.stdout) as { backends: Array<Record<string, any>>; auto: string };
    expect(report.backends.map((b) => b.package ?? b.backend)).toEqual([
      '@tensorflow/tfjs-node-gpu',
      '@tensorflow/tfjs-node',
      'webgpu (Dawn) + @tensorflow/tfjs-backend-webgpu',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-cpu',
    ]);
    const [gpuTf, cpuTf, webgpu, wasm, cpu] = report.backends;
    if (!gpuTf.available) expect(gpuTf.reason).toMatch(/TFJS_NODE_CDN_STORAGE.*CUDA 11\.2 runtime and cuDNN 8\.1/);
    if (!cpuTf.available) expect(cpuTf.reason).toMatch(/npm install @tensorflow\/tfjs-node$/);
    if (webgpu.available) expect(webgpu.detail).toMatch(/maxStorageBufferBindingSize \d+, maxBufferSize \d+/);
    else expect(webgpu.reason).toMatch(/no WebGPU adapter.*mesa-vulkan-drivers/);
    expect(wasm).toMatchObject({ available: true });
    expect(wasm.detail).toMatch(/SIMD: yes; threads: 1 \(HILO_WASM_THREADS.*; matrix products: (native BLAS libopenblas|XNNPACK.*no native BLAS: )/); // vitest.config sets 1
    expect(cpu).toMatchObject({ available: true });
    const expectedAuto = cpuTf.available || gpuTf.available ? 'tensorflow' : webgpu.available && !webgpu.autoSkips ? 'webgpu' : 'wasm';
    expect(report.auto).toBe(expectedAuto);
  });

  it('prints a readable table', () => {
    const run = hilo('doctor');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^no  tensorflow  \(@tensorflow\/tfjs-node-gpu\)\n {6}why: /m);
    expect(run.stdout).toMatch(/^ok  wasm/m);
    expect(run.stdout).toMatch(/--backend auto picks: \w+\n$/);
  });
});

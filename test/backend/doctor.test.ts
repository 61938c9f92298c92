/** `hilo doctor` as a user runs it: every backend listed, reasons a user can act on, quickly. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CUDA_11_LIBRARIES, cuda11Absent, findLibrary, ldconfigCache } from '../../src/backend/tensorflow.ts';

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
    // this machine's own CUDA 11.2 runtime, found or not, decides the plain sentence
    if (cuda11Absent()) expect(gpuTf.reason).toMatch(/the CUDA 11\.2 runtime tfjs-node-gpu needs is absent here: no libcudart\.so\.11\.0/);
    else expect(gpuTf.reason ?? '').not.toMatch(/is absent here/);
    if (!cpuTf.available) expect(cpuTf.reason).toMatch(/npm install @tensorflow\/tfjs-node$/);
    if (webgpu.available) expect(webgpu.detail).toMatch(/maxStorageBufferBindingSize \d+, maxBufferSize \d+, shader-f16 (yes|no); weights above the binding limit go in row blocks/);
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

describe('the CUDA 11.2 runtime check', () => {
  it('names the missing libraries and the CUDA the machine has instead, and is silent when all are found', () => {
    const cuda13 = new Map([['libcudart.so.13', '/usr/local/cuda-13.0/lib/libcudart.so.13'], ['libcublas.so.11', '/opt/libcublas.so.11']]);
    const why = cuda11Absent({}, cuda13)!;
    expect(why).toMatch(/absent here: no libcudart\.so\.11\.0, libcudnn\.so\.8 on the library path/);
    expect(why).toMatch(/this machine has libcudart\.so\.13 \(\/usr\/local\/cuda-13\.0\/lib\/libcudart\.so\.13\), which libtensorflow 2\.9\.1 cannot use/);
    expect(why).toMatch(/computes on the CPU only/);
    // LD_LIBRARY_PATH counts before the loader's cache
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-cuda-'));
    for (const l of CUDA_11_LIBRARIES) fs.writeFileSync(path.join(dir, l), '');
    expect(findLibrary('libcudnn.so.8', { LD_LIBRARY_PATH: `/nonexistent:${dir}` }, new Map())).toBe(path.join(dir, 'libcudnn.so.8'));
    expect(cuda11Absent({ LD_LIBRARY_PATH: dir }, cuda13)).toBeNull();
    fs.rmSync(dir, { recursive: true });
  });

  it('reads the loader cache (ldconfig -p) of this machine', () => {
    const cache = ldconfigCache();
    expect(cache.get('libc.so.6')).toMatch(/libc\.so\.6$/);
  });
});

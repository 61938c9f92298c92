/**
 * Choosing and initialising the tfjs engine. One code path runs on every backend; `auto`
 * takes the fastest that initialises: tensorflow (tfjs-node-gpu, then tfjs-node), webgpu,
 * wasm, cpu. Heavy modules are imported only here, and only when asked for.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fieldError } from '../errors.ts';

export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** The tfjs backend name in use (tensorflow, webgpu, wasm, cpu). */
  name: string;
  /** Why the faster ones were skipped, for `auto`. */
  skipped: Array<{ name: string; reason: string }>;
}

const require = createRequire(import.meta.url);

async function initWasm(tf: typeof import('@tensorflow/tfjs')): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  wasm.setWasmPaths(`${dir}/dist/`);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs refused to initialise the wasm backend');
}

async function initCpu(tf: typeof import('@tensorflow/tfjs')): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs refused to initialise the cpu backend');
}

const INITIALISERS: Record<string, (tf: typeof import('@tensorflow/tfjs')) => Promise<void>> = {
  wasm: initWasm,
  cpu: initCpu,
};

/** Initialise `name` (or the best available for `auto`) and make it the active tfjs backend. */
export async function initBackend(name: string = 'auto'): Promise<BackendInfo> {
  if (!(BACKENDS as readonly string[]).includes(name)) throw fieldError('--backend', name, BACKENDS);
  const tf = await import('@tensorflow/tfjs');
  const order = name === 'auto' ? Object.keys(INITIALISERS) : [name];
  const skipped: BackendInfo['skipped'] = [];
  for (const candidate of order) {
    const init = INITIALISERS[candidate];
    if (!init) {
      skipped.push({ name: candidate, reason: 'not supported by this build' });
      continue;
    }
    try {
      await init(tf);
      return { name: tf.getBackend(), skipped };
    } catch (e) {
      skipped.push({ name: candidate, reason: (e as Error).message });
    }
  }
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new Error(`no tfjs backend could be initialised (${why}); run \`hilo doctor\` for details`);
}

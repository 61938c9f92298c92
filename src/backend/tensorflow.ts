/**
 * The libtensorflow engines: @tensorflow/tfjs-node-gpu (CUDA), then @tensorflow/tfjs-node.
 * Both are optionalDependencies whose install script downloads libtensorflow 2.9.1 from
 * storage.googleapis.com; where that fails (no network, firewall) npm drops them and hilo
 * runs without them. This file finds out which one loads, and says in words why not.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';

export const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

const MIRROR_HINT =
  'its install downloads libtensorflow 2.9.1 from storage.googleapis.com; offline or behind a firewall, ' +
  'point it at a mirror with TFJS_NODE_CDN_STORAGE=<url> (or TFJS_NODE_BASE_URI=<url>, also read from .npmrc)';

const CUDA_HINT =
  'needs the CUDA 11.2 runtime and cuDNN 8.1 (libcudart.so.11.0, libcublas.so.11, libcudnn.so.8) on the library path; ' +
  'CUDA 12-only systems do not work';

/** Why `pkg` did not load, as a sentence a user can act on. */
export function explainTensorflowFailure(pkg: string, e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = err?.message ?? String(e);
  const gpu = pkg.endsWith('-gpu');
  if ((err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') && msg.includes(pkg)) {
    return `optional package ${pkg} is not installed (${MIRROR_HINT}). Install: npm install ${pkg}` +
      (gpu ? `; it ${CUDA_HINT}` : '');
  }
  if (/libcudart|libcublas|libcudnn|libcuda\b|cuda/i.test(msg)) return `${pkg} is installed but CUDA did not load (${firstLine(msg)}); it ${CUDA_HINT}`;
  if (/libtensorflow|tfjs_binding|napi-v\d/.test(msg)) {
    return `${pkg} is installed but its libtensorflow/binding is missing (${firstLine(msg)}): the download at install time failed; ` +
      `reinstall with a mirror: TFJS_NODE_CDN_STORAGE=<url> npm rebuild ${pkg}`;
  }
  return `${pkg} failed to load: ${firstLine(msg)}`;
}

/** The libraries tfjs-node-gpu's libtensorflow 2.9.1 opens for the GPU (CUDA 11.2, cuDNN 8.1). */
export const CUDA_11_LIBRARIES = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'] as const;

/** Library name -> path from the dynamic loader's cache (`ldconfig -p`); empty where it cannot run. */
export function ldconfigCache(): Map<string, string> {
  const out = new Map<string, string>();
  for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      const text = execFileSync(bin, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const line of text.split('\n')) {
        const m = /^\s*(\S+) \(([^)]*)\) => (\S+)/.exec(line);
        if (m && !out.has(m[1]) && !/i386|x32/.test(m[2])) out.set(m[1], m[3]);
      }
      return out;
    } catch {
      // next candidate
    }
  }
  return out;
}

/** Where the loader would find `name`: LD_LIBRARY_PATH first, then its cache; null where nowhere. */
export function findLibrary(name: string, env: NodeJS.ProcessEnv = process.env, cache: Map<string, string> = ldconfigCache()): string | null {
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return cache.get(name) ?? null;
}

/**
 * A sentence when tfjs-node-gpu's CUDA 11.2 runtime is not all here (null when it is): which of
 * its libraries are missing, and which other CUDA runtime the machine has instead. libtensorflow
 * loads without them and computes on the CPU, so this is the only place the user learns it.
 */
export function cuda11Absent(env: NodeJS.ProcessEnv = process.env, cache: Map<string, string> = ldconfigCache()): string | null {
  const missing = CUDA_11_LIBRARIES.filter((l) => findLibrary(l, env, cache) === null);
  if (missing.length === 0) return null;
  const others = [...cache.entries()].filter(([n]) => /^libcudart\.so\.\d+/.test(n) && !n.startsWith('libcudart.so.11')).map(([n, p]) => `${n} (${p})`);
  return `the CUDA 11.2 runtime tfjs-node-gpu needs is absent here: no ${missing.join(', ')} on the library path (LD_LIBRARY_PATH or ldconfig)` +
    (others.length ? `; this machine has ${others.join(', ')}, which libtensorflow 2.9.1 cannot use` : '') +
    '. Without it tfjs-node-gpu computes on the CPU only; for a GPU here use --backend webgpu';
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 200);
}

/** Try to import `pkg` (it registers the `tensorflow` backend); the reason on failure. */
export async function loadTensorflowPackage(pkg: string): Promise<string | null> {
  try {
    await import(pkg);
    return null;
  } catch (e) {
    return explainTensorflowFailure(pkg, e);
  }
}

/** Initialise the first libtensorflow package that loads; throws with every reason otherwise. */
export async function initTensorflow(tf: typeof TF): Promise<string> {
  const reasons: string[] = [];
  for (const pkg of TENSORFLOW_PACKAGES) {
    const why = await loadTensorflowPackage(pkg);
    if (why) {
      reasons.push(why);
      continue;
    }
    if (await tf.setBackend('tensorflow')) return pkg;
    reasons.push(`${pkg} loaded but tfjs could not initialise its tensorflow backend`);
  }
  throw new Error(reasons.join('; '));
}

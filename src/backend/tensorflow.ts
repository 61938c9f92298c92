/**
 * The libtensorflow engines: @tensorflow/tfjs-node-gpu (CUDA), then @tensorflow/tfjs-node.
 * Both are optionalDependencies whose install script downloads libtensorflow 2.9.1 from
 * storage.googleapis.com; where that fails (no network, firewall) npm drops them and hilo
 * runs without them. This file finds out which one loads, and says in words why not.
 */
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

/**
 * Which model a probe.json belongs to: sha256 over config.json and, for every safetensors file,
 * its name, byte size, header (tensor names, dtypes, shapes, offsets) and SAMPLES blocks of its
 * weights spread evenly over the data. Cheap (1 MB read per file) and it changes whenever
 * the architecture, the stored tensors' layout or (in practice) their values do: two random
 * initialisations of one shape differ in every sampled block, and a merge that changes even a tenth
 * of the bytes misses all 256 blocks with odds of 0.9^256 ~ 2e-12. The probe cache (cache.ts) is
 * keyed by it, so runs on different models with one header cannot share scores.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../model/types.ts';
import { safetensorsFiles } from './weights.ts';

export const SAMPLES = 256;
export const SAMPLE_BYTES = 4096;

export function modelFingerprint(dir: string): string {
  const h = createHash('sha256');
  h.update(fs.readFileSync(path.join(dir, 'config.json')));
  for (const file of safetensorsFiles(dir)) {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Buffer.alloc(8);
      fs.readSync(fd, len, 0, 8, 0);
      const n = Math.min(Number(len.readBigUInt64LE(0)), Math.max(0, size - 8));
      const header = Buffer.alloc(n);
      fs.readSync(fd, header, 0, n, 8);
      h.update(`\n${path.basename(file)} ${size}\n`);
      h.update(header);
      const dataStart = 8 + n;
      const span = size - dataStart;
      const block = Buffer.alloc(Math.min(SAMPLE_BYTES, span));
      for (let i = 0; i < SAMPLES && block.length > 0; i++) {
        const at = dataStart + Math.floor(((span - block.length) * i) / (SAMPLES - 1));
        fs.readSync(fd, block, 0, block.length, at);
        h.update(block);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return `sha256:${h.digest('hex')}`;
}

/** For a model known only by its config (no directory): a hash of the normalised config. */
export function configFingerprint(config: ModelConfig): string {
  const { raw: _raw, ...rest } = config;
  return `sha256:${createHash('sha256').update(JSON.stringify(rest)).digest('hex')}`;
}

/**
 * Which model a probe.json belongs to: sha256 over config.json and, for every safetensors file,
 * its name, byte size and header (tensor names, dtypes, shapes, offsets). Cheap (no weights are
 * read) and it changes whenever the architecture or the stored tensors' layout does; two
 * checkpoints with identical headers and sizes but different values are not told apart, which
 * is why the settings also record the model path.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../model/types.ts';
import { safetensorsFiles } from './weights.ts';

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

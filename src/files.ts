/**
 * File writes every stage shares: whole files appear at once, so a reader (or a crash) never
 * sees half of one.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Write bytes or text to `file` via a temp file + rename, so readers never see half a file. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

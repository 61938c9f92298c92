/**
 * withStderrSilenced (Dawn's adapter chatter) must give fd 2 back as the same open file: when
 * stdout and stderr share one file the shell opened (`> log 2>&1`), a reopened stderr would
 * write at its own offset and the two streams would overwrite each other's lines.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const CHILD = `
import fs from 'node:fs';
import { withStderrSilenced } from './src/backend/stderr.ts';
process.stdout.write('one\\n');
process.stderr.write('two\\n');
withStderrSilenced(() => fs.writeSync(2, 'native chatter\\n'));
process.stderr.write('three\\n');
process.stdout.write('four\\n');
`;

function koffiLoads(): boolean {
  try {
    return Boolean(createRequire(import.meta.url)('koffi'));
  } catch {
    return false;
  }
}

describe('withStderrSilenced', () => {
  it('keeps stdout and stderr lines in order in a file both write to, and hides what is written meanwhile', () => {
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-stderr-')), 'log');
    const fd = fs.openSync(log, 'w'); // as the shell's `> log 2>&1`: one description, no O_APPEND
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { cwd: ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, HILO_DEBUG: '' } });
    fs.closeSync(fd);
    expect(r.status).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== 'native chatter');
    expect(lines).toEqual(['one', 'two', 'three', 'four', '']);
    if (koffiLoads()) expect(fs.readFileSync(log, 'utf8')).not.toContain('native chatter');
  });
});

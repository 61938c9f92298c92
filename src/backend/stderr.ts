/**
 * Dawn writes adapter warnings ("maxDynamicUniformBuffersPerPipelineLayout artificially
 * reduced ...") with fprintf(stderr) from native code while `requestAdapter()` enumerates
 * devices. They are harmless and not actionable, so during that one synchronous call fd 2
 * points at /dev/null. Set HILO_DEBUG=1 to see Dawn's output.
 *
 * fd 2 must come back as the same open file description, not a new one on the same file: when
 * stderr is a file the shell opened (`> log 2>&1`), the description holds the offset that
 * stdout and the shell's later writes share, and a reopened stderr would write over them. Only
 * dup/dup2 keep it, and Node has neither, so they are reached through koffi (an optional
 * dependency); without it stderr is left alone (Dawn's lines then show).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

interface Libc {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  close(fd: number): number;
}

let libc: Libc | null | undefined;

/** libc's dup, dup2 and close through koffi, or null where that cannot be had. */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    libc = { dup: lib.func('int dup(int)'), dup2: lib.func('int dup2(int, int)'), close: lib.func('int close(int)') };
  } catch {
    libc = null;
  }
  return libc;
}

/** Run `fn` (synchronous) with the process's fd 2 sent to /dev/null, then restore it. */
export function withStderrSilenced<T>(fn: () => T): T {
  const c = process.platform === 'linux' && !process.env.HILO_DEBUG ? loadLibc() : null;
  if (!c) return fn();
  const saved = c.dup(2); // the same description as fd 2: same offset, same flags
  if (saved < 0) return fn();
  const nul = fs.openSync('/dev/null', 'a');
  try {
    c.dup2(nul, 2);
    return fn();
  } finally {
    c.dup2(saved, 2);
    c.close(saved);
    fs.closeSync(nul);
  }
}

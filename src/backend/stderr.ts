/**
 * Dawn writes adapter warnings ("maxDynamicUniformBuffersPerPipelineLayout artificially
 * reduced ...") with fprintf(stderr) from native code while `requestAdapter()` enumerates
 * devices. They are harmless and not actionable, so during that one synchronous call fd 2
 * points at /dev/null. Node has no dup2; closing fd 2 and opening a file reuses the lowest
 * free descriptor, i.e. 2. Set HILO_DEBUG=1 to see Dawn's output.
 */
import fs from 'node:fs';

/** Run `fn` (synchronous) with the process's fd 2 sent to /dev/null, then restore it. */
export function withStderrSilenced<T>(fn: () => T): T {
  if (process.platform !== 'linux' || process.env.HILO_DEBUG) return fn();
  let saved: number;
  try {
    // A second descriptor on whatever fd 2 is (tty, pipe or file), to restore from.
    saved = fs.openSync('/proc/self/fd/2', 'a');
  } catch {
    return fn(); // e.g. stderr is a socket: leave it alone
  }
  fs.closeSync(2);
  const nul = fs.openSync('/dev/null', 'a'); // takes 2, the lowest free descriptor
  try {
    return fn();
  } finally {
    fs.closeSync(nul);
    fs.openSync(`/proc/self/fd/${saved}`, 'a'); // takes 2 again
    fs.closeSync(saved);
  }
}

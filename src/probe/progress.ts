/**
 * Progress of a long probe, as `hilo probe` and `hilo plan` print it on stderr: matrices done of
 * the total, time so far and the estimated time left. The estimate weighs matrices by their
 * cost (a 4096-wide Gram matrix is ~8x a 2048-wide one), so it holds from the first matrix.
 */

export interface ProbeProgress {
  done: number;
  total: number;
  elapsedMs: number;
  /** Estimated time left; null before anything is done. */
  etaMs: number | null;
}

/** Time left if the remaining work goes at the rate so far. */
export function etaMs(elapsedMs: number, workDone: number, workTotal: number): number | null {
  if (!(workDone > 0)) return null;
  return (elapsedMs * Math.max(0, workTotal - workDone)) / workDone;
}

/** 75 s -> "1m15s", 3725 s -> "1h02m05s", 9.4 s -> "9s". */
export function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (x: number) => String(x).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(sec)}s`;
  if (m > 0) return `${m}m${pad(sec)}s`;
  return `${sec}s`;
}

/** "alpha-hill: 12/112 matrices, 1m15s, about 6m40s left". */
export function progressLine(label: string, p: ProbeProgress): string {
  const left = p.done === p.total ? 'done' : p.etaMs === null ? 'estimating' : `about ${clock(p.etaMs)} left`;
  return `${label}: ${p.done}/${p.total} matrices, ${clock(p.elapsedMs)}, ${left}`;
}

/**
 * A progress printer for stderr: on a terminal one line rewritten in place; elsewhere (logs,
 * CI) a line at most every `everyMs`, and the last.
 */
export function progressPrinter(label: string, stream: NodeJS.WriteStream = process.stderr, everyMs = 10_000): (p: ProbeProgress) => void {
  let last = -Infinity;
  return (p) => {
    const end = p.done === p.total;
    if (stream.isTTY) {
      stream.write(`\r${progressLine(label, p)}${end ? '\n' : ''}`);
    } else if (end || p.elapsedMs - last >= everyMs) {
      last = p.elapsedMs;
      stream.write(`${progressLine(label, p)}\n`);
    }
  };
}

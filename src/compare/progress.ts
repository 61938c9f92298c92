/**
 * Progress over a whole grid, as one line of text: cells done of all cells (including those
 * finished by an earlier invocation), failures, cells running, and the time left estimated from
 * the wall times of the cells this invocation completed. Pure.
 */
import { formatDuration } from '../log/progress.ts';

export interface GridProgress {
  /** Cells in the grid. */
  total: number;
  /** Cells with results: skipped because already done, plus finished or failed this time. */
  done: number;
  failed: number;
  running: number;
  /** Wall seconds of each cell completed in this invocation. */
  spent: readonly number[];
  /** Cells run at once. */
  jobs: number;
}

/** Seconds left: the mean completed cell's time for every cell not done, spread over `jobs`; null before any completes. */
export function etaSeconds(p: Pick<GridProgress, 'total' | 'done' | 'spent' | 'jobs'>): number | null {
  if (p.spent.length === 0) return null;
  const left = p.total - p.done;
  if (left <= 0) return 0;
  const meanCell = p.spent.reduce((a, b) => a + b, 0) / p.spent.length;
  // Fewer cells left than jobs: they run side by side, one cell's time.
  return meanCell * Math.ceil(left / Math.max(1, p.jobs));
}

/** "12/90 cells done (1 failed), 8 running · ETA 04:10". */
export function progressText(p: GridProgress): string {
  const eta = etaSeconds(p);
  return `${p.done}/${p.total} cells done${p.failed ? ` (${p.failed} failed)` : ''}` +
    `${p.running ? `, ${p.running} running` : ''}${eta === null ? '' : ` · ETA ${formatDuration(eta)}`}`;
}

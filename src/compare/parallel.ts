/**
 * A grid's cells in parallel processes: each cell is its own `hilo compare GRID --cell K`
 * process on one thread (HILO_WASM_THREADS, HILO_DATA_PARALLEL and OPENBLAS_NUM_THREADS 1), so N cores run N cells
 * at once with no contention between their thread pools; a cell computes the same numbers as
 * in a serial run (it is the same code, seeded the same way). Each cell's console output goes to
 * <run>/train.log; this process prints one progress line per finished cell. Ctrl-C (or SIGTERM)
 * is passed once to every running cell, which saves a checkpoint and stops; if this process is
 * killed outright, its cells see their IPC channel close and exit, and the next invocation
 * reruns them (from their checkpoints).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Cell } from './grid.ts';
import { progressText } from './progress.ts';
import { isFinished, readCellResults, recordFailure } from './results.ts';
import { durationText, metricDigits, runRow } from './summary.ts';

/** How to start one cell's process: the executable, its arguments and extra environment. */
export type CellCommand = (cell: Cell) => { file: string; args: string[]; env?: Record<string, string> };

/**
 * Environment of every cell process: one thread each (the cores are shared out by cells instead),
 * and HILO_CELL_WATCHED, which tells the cell that a grid process holds its IPC channel.
 */
export const CELL_ENV = { HILO_WASM_THREADS: '1', HILO_DATA_PARALLEL: '1', OPENBLAS_NUM_THREADS: '1', HILO_CELL_WATCHED: '1' } as const;

export interface ParallelOptions {
  jobs: number;
  /** Cells in the whole grid and those already done before this invocation, for the progress line. */
  total: number;
  skipped: number;
  command: CellCommand;
  log: (m: string) => void;
}

export interface ParallelResult {
  /** Wall seconds of each cell that finished or failed. */
  spent: number[];
  failed: number;
  /** Cells stopped by a signal before they finished (they resume from their checkpoints). */
  stopped: number;
  interrupted: boolean;
}

/** The last non-empty line of a log file (where a failed cell's error message is). */
function lastLine(file: string): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').split(/[\r\n]+/).filter((l) => l.trim());
    return lines.at(-1) ?? '';
  } catch {
    return '';
  }
}

export function runInProcesses(cells: readonly Cell[], opts: ParallelOptions): Promise<ParallelResult> {
  const queue = [...cells];
  const running = new Map<number, { cell: Cell; started: number; kill: (s: NodeJS.Signals) => void }>();
  const result: ParallelResult = { spent: [], failed: 0, stopped: 0, interrupted: false };
  const progress = () => progressText({
    total: opts.total, done: opts.skipped + result.spent.length, failed: result.failed, running: running.size, spent: result.spent, jobs: opts.jobs,
  });
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (result.interrupted) return;
      result.interrupted = true;
      queue.length = 0;
      opts.log(`${signal}: stopping; waiting for ${running.size} running cell${running.size === 1 ? '' : 's'} to save a checkpoint`);
      for (const r of running.values()) r.kill('SIGINT');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const finish = () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      resolve(result);
    };

    const start = (cell: Cell) => {
      fs.mkdirSync(cell.runDir, { recursive: true });
      const logFile = path.join(cell.runDir, 'train.log');
      const fd = fs.openSync(logFile, 'a');
      const { file, args, env } = opts.command(cell);
      // Own process group (detached): a terminal's Ctrl-C reaches the cells only through
      // onSignal, once. The IPC channel tells a cell when this process is gone.
      const child = spawn(file, args, { stdio: ['ignore', fd, fd, 'ipc'], env: { ...process.env, ...CELL_ENV, ...env }, detached: true });
      fs.closeSync(fd);
      const started = performance.now();
      running.set(cell.index, { cell, started, kill: (s) => child.kill(s) });
      child.on('exit', (code, signal) => {
        running.delete(cell.index);
        const seconds = (performance.now() - started) / 1000;
        const r = readCellResults(cell);
        if (code === 0 && isFinished(r)) {
          result.spent.push(seconds);
          const row = runRow(cell, r!);
          const value = row.value === null ? `no ${cell.metric}` : `${cell.metric} ${row.value.toFixed(metricDigits(cell.metric))}`;
          opts.log(`[${progress()}] ${cell.id}: ${value} in ${durationText(seconds)}`);
        } else if (result.interrupted && (code === 130 || signal)) {
          result.stopped++;
          opts.log(`${cell.id}: stopped; it continues from its checkpoint next time`);
        } else {
          // A cell that threw recorded its error already; one that crashed or was killed did not.
          if (!r?.error) recordFailure(cell, new Error(`its process exited with ${signal ?? `code ${code}`}: ${lastLine(logFile)} (log: ${logFile})`), seconds);
          result.failed++;
          result.spent.push(seconds);
          opts.log(`[${progress()}] ${cell.id} FAILED: ${readCellResults(cell)?.error ?? 'no error recorded'}`);
        }
        next();
      });
    };

    const next = () => {
      while (running.size < opts.jobs && queue.length) start(queue.shift()!);
      if (running.size === 0) finish();
    };
    next();
  });
}

/**
 * A cell's results on disk: the results.json training wrote, or the error record the grid
 * writes in its place when the run failed. Whether a cell counts as done is decided here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../files.ts';
import type { Cell } from './grid.ts';
import type { RunResultsLike } from './summary.ts';

export function readCellResults(cell: Cell): RunResultsLike | null {
  const file = path.join(cell.runDir, 'results.json');
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunResultsLike;
  } catch {
    return null; // unreadable: the cell runs again
  }
}

/** Finished: results written by a run that neither failed nor was interrupted. */
export function isFinished(r: RunResultsLike | null): boolean {
  return r !== null && !r.error && r.stopped !== 'interrupted';
}

/** The error in place of results, so the summary shows the failure and the next invocation retries it. */
export function recordFailure(cell: Cell, error: unknown, seconds: number): void {
  const message = error instanceof Error ? error.message : String(error);
  const record = {
    cell: { id: cell.id, task: cell.task, method: cell.method, budget: cell.budget, seed: cell.seed },
    error: message, wall_seconds: seconds,
  };
  writeFileAtomic(path.join(cell.runDir, 'results.json'), `${JSON.stringify(record, null, 2)}\n`);
}

/** Recipe fields that do not change what a run computes (where it ran, how it resumed or started over, where it logged). */
const NOT_COMPARED = new Set(['backend', 'train.resume', 'train.overwrite_output_dir', 'wandb']);

/**
 * Dotted keys whose values differ between the recipe a cell's results were made with and the
 * recipe the grid would run now: non-empty means the results are stale (the grid file, the base
 * recipe or an override changed since).
 */
export function recipeChanges(before: unknown, now: unknown, prefix = ''): string[] {
  if (NOT_COMPARED.has(prefix)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(now)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])];
    return keys.flatMap((k) => recipeChanges(before[k], now[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(before) === JSON.stringify(now) ? [] : [prefix || 'the whole recipe'];
}

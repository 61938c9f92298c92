/**
 * Running a grid: each cell trained by the train stage's trainRecipe, either one after another
 * in this process (printing each run's own progress bar) or, with `jobs` > 1, each in its own
 * process (`hilo compare GRID --cell K`, see parallel.ts), several at once. Resumable: a cell
 * whose results.json holds finished results made with the same recipe is skipped (a changed
 * recipe runs it again); an interrupted cell continues from its last checkpoint; a failed cell
 * records its error in results.json, the grid goes on, and the next invocation tries it again.
 * Progress over the whole grid goes to the log; the summary is rewritten at the end from every
 * cell's results on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { latestCheckpoint } from '../train/checkpoint.ts';
import { trainRecipe } from '../train/index.ts';
import type { Cell, Grid } from './grid.ts';
import { loadRecipe } from '../recipe/load.ts';
import { runInProcesses, type CellCommand } from './parallel.ts';
import { progressText } from './progress.ts';
import { isFinished, readCellResults, recipeChanges, recordFailure } from './results.ts';
import { writeSummary, type SummaryFiles } from './write.ts';

export interface CompareOptions {
  log?: (msg: string) => void;
  /** The command line that runs the grid, recorded in the summary and report. */
  command?: string;
  /** Only rewrite the summary from the results already on disk. */
  summaryOnly?: boolean;
  /** Cells run at once, each in its own process started by `cellCommand`; 1 = one after another here. */
  jobs?: number;
  cellCommand?: CellCommand;
}

export interface CompareResult {
  /** Cells trained in this invocation (finished, failed or interrupted). */
  ran: number;
  /** Cells skipped because their results were already there. */
  skipped: number;
  failed: number;
  /** Ctrl-C stopped a run; the grid stopped after saving it. */
  interrupted: boolean;
  files: SummaryFiles;
}

export type CellOutcome = 'finished' | 'failed' | 'interrupted';

/** Finished results made with a different recipe than the grid would use now: the changed fields. */
function staleFields(grid: Grid, cell: Cell): string[] {
  const r = readCellResults(cell);
  return isFinished(r) ? recipeChanges(r!.recipe, loadRecipe(grid.recipe, cell.overrides)) : [];
}

/** The cells this invocation must train, in grid order; stale ones are named in the log. */
export function pendingCells(grid: Grid, log: (m: string) => void): Cell[] {
  return grid.cells.filter((c) => {
    if (!isFinished(readCellResults(c))) return true;
    const changed = staleFields(grid, c);
    if (changed.length) log(`${c.id}: its results were made with a different recipe (${changed.join(', ')}); running it again`);
    return changed.length > 0;
  });
}

/** Train one cell here; a failure is recorded in its results.json instead of thrown. */
export async function runCell(grid: Grid, cell: Cell, log: (m: string) => void): Promise<CellOutcome> {
  // An interrupted run continues from its checkpoint; a stale or failed one starts again, over what it left.
  const resume = staleFields(grid, cell).length === 0 && fs.existsSync(cell.runDir) && latestCheckpoint(cell.runDir)
    ? ['train.resume=true'] : ['train.overwrite_output_dir=true'];
  const started = performance.now();
  try {
    // trainRecipe's log parameter is typed by its default (stderr.write, returning boolean).
    const results = await trainRecipe(grid.recipe, [...cell.overrides, ...resume], (m) => (log(m), true), log);
    return results.stopped === 'interrupted' ? 'interrupted' : 'finished';
  } catch (e) {
    recordFailure(cell, e, (performance.now() - started) / 1000);
    log(`run ${cell.id} failed: ${(e as Error).message ?? e}`);
    return 'failed';
  }
}

export async function runGrid(grid: Grid, opts: CompareOptions = {}): Promise<CompareResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const command = opts.command ?? `hilo compare ${path.relative(process.cwd(), grid.file)}`;
  const N = grid.cells.length;
  const jobs = Math.max(1, opts.jobs ?? 1);
  const todo = opts.summaryOnly ? [] : pendingCells(grid, log);
  const skipped = opts.summaryOnly ? 0 : N - todo.length;
  log(`grid ${grid.name}: ${N} runs (${grid.tasks.length} tasks x ${grid.methods.length} methods x ${grid.budgets.length} budgets x ${grid.seeds.length} seeds)` +
    `${skipped ? `, ${skipped} already done` : ''}${jobs > 1 && todo.length ? `, ${Math.min(jobs, todo.length)} at a time` : ''}; output in ${grid.outputDir}`);
  const spent: number[] = [];
  let failed = 0;
  let interrupted = false;
  let stopped = 0;
  if (jobs > 1 && todo.length) {
    if (!opts.cellCommand) throw new Error('runGrid: jobs > 1 needs a cellCommand to start each cell\'s process');
    const r = await runInProcesses(todo, { jobs, total: N, skipped, command: opts.cellCommand, log });
    spent.push(...r.spent);
    failed = r.failed;
    interrupted = r.interrupted;
    stopped = r.stopped;
    if (interrupted) log('grid stopped; run the same command again to continue');
  } else {
    for (const cell of todo) {
      const progress = progressText({ total: N, done: skipped + spent.length, failed, running: 0, spent, jobs: 1 });
      log(`\n== run ${cell.index + 1}/${N}: ${cell.id} (${progress}) ==`);
      const started = performance.now();
      const outcome = await runCell(grid, cell, log);
      if (outcome === 'interrupted') {
        interrupted = true;
        stopped = 1;
        log(`grid stopped at ${cell.id}; run the same command again to continue`);
        break;
      }
      if (outcome === 'failed') failed++;
      spent.push((performance.now() - started) / 1000);
    }
    if (todo.length && !interrupted) log(`\n${progressText({ total: N, done: skipped + spent.length, failed, running: 0, spent, jobs: 1 })}`);
  }
  const files = await writeSummary(grid, command);
  return { ran: spent.length + stopped, skipped, failed, interrupted, files };
}

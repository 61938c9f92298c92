/**
 * Running a grid: every cell trained in this process, one after another, by the train stage's
 * trainRecipe (which prints each run's own progress bar). Resumable: a cell whose results.json
 * holds finished results made with the same recipe is skipped (a changed recipe runs it again);
 * an interrupted cell continues from its last checkpoint; a failed cell records its error in
 * results.json, the grid goes on, and the next invocation tries it again. The summary is rewritten at the end from every cell's results on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatDuration } from '../log/progress.ts';
import { latestCheckpoint } from '../train/checkpoint.ts';
import { trainRecipe } from '../train/index.ts';
import type { Grid } from './grid.ts';
import { loadRecipe } from '../recipe/load.ts';
import { isFinished, readCellResults, recipeChanges, recordFailure } from './results.ts';
import { writeSummary, type SummaryFiles } from './write.ts';

export interface CompareOptions {
  log?: (msg: string) => void;
  /** The command line that runs the grid, recorded in the summary and report. */
  command?: string;
  /** Only rewrite the summary from the results already on disk. */
  summaryOnly?: boolean;
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

export async function runGrid(grid: Grid, opts: CompareOptions = {}): Promise<CompareResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const command = opts.command ?? `hilo compare ${path.relative(process.cwd(), grid.file)}`;
  const N = grid.cells.length;
  const stale = new Set<string>();
  const todo = opts.summaryOnly ? [] : grid.cells.filter((c) => {
    const r = readCellResults(c);
    if (!isFinished(r)) return true;
    const changed = recipeChanges(r!.recipe, loadRecipe(grid.recipe, c.overrides));
    if (changed.length) {
      log(`${c.id}: its results were made with a different recipe (${changed.join(', ')}); running it again`);
      stale.add(c.id);
    }
    return changed.length > 0;
  });
  const skipped = opts.summaryOnly ? 0 : N - todo.length;
  log(`grid ${grid.name}: ${N} runs (${grid.tasks.length} tasks x ${grid.methods.length} methods x ${grid.budgets.length} budgets x ${grid.seeds.length} seeds)` +
    `${skipped ? `, ${skipped} already done` : ''}; output in ${grid.outputDir}`);
  const spent: number[] = [];
  let failed = 0;
  let interrupted = false;
  for (const [k, cell] of todo.entries()) {
    const eta = spent.length ? ` · ETA ${formatDuration((spent.reduce((a, b) => a + b, 0) / spent.length) * (todo.length - k))}` : '';
    log(`\n== run ${cell.index + 1}/${N}: ${cell.id} (${k + 1}/${todo.length} this time${eta}) ==`);
    // An interrupted run continues from its checkpoint; a stale or failed one starts again, over what it left.
    const resume = !stale.has(cell.id) && fs.existsSync(cell.runDir) && latestCheckpoint(cell.runDir) ? ['train.resume=true'] : ['train.overwrite_output_dir=true'];
    const started = performance.now();
    try {
      // trainRecipe's log parameter is typed by its default (stderr.write, returning boolean).
      const results = await trainRecipe(grid.recipe, [...cell.overrides, ...resume], (m) => (log(m), true), log);
      if (results.stopped === 'interrupted') {
        interrupted = true;
        log(`grid stopped at ${cell.id}; run the same command again to continue`);
        break;
      }
    } catch (e) {
      failed++;
      recordFailure(cell, e, (performance.now() - started) / 1000);
      log(`run ${cell.id} failed: ${(e as Error).message ?? e}`);
    }
    spent.push((performance.now() - started) / 1000);
  }
  const files = await writeSummary(grid, command);
  return { ran: spent.length + (interrupted ? 1 : 0), skipped, failed, interrupted, files };
}

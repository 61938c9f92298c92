/**
 * The grid's summary files, from whatever cells have results on disk: results.jsonl (one row
 * per run), summary.json (groups over seeds and paired differences between methods), summary.md
 * (the tables), plot-trainable / plot-active
 * as SVG and PNG, and report.html (table and SVGs in one file). Cells not run yet are counted
 * as pending, so a summary of a half-finished grid says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../files.ts';
import type { Grid } from './grid.ts';
import { comparePlotSpec, type ParamAxis } from './plot.ts';
import { renderSvg, svgToPng } from './render.ts';
import { pairedComparisons, pairedMarkdown, type PairRow } from './paired.ts';
import { htmlReport } from './report.ts';
import { readCellResults } from './results.ts';
import { budgetText, failureLines, groupRows, markdownTable, runRow, type GroupRow, type RunRow } from './summary.ts';

export interface SummaryFiles {
  jsonl: string;
  json: string;
  markdown: string;
  html: string;
  svg: string[];
  png: string[];
}

const AXES: ParamAxis[] = ['trainable', 'active'];
const CAPTION: Record<ParamAxis, string> = {
  trainable: 'Task metric vs trainable parameters',
  active: 'Task metric vs active parameters per token',
};

/** What the paired table means, under its heading. */
export const PAIRED_NOTE = 'Each method against each method before it in the grid, at the same budget: the difference ' +
  'method − baseline over the (task, seed) pairs both ran (same split, same seed), with its 95% t-interval, the two-sided ' +
  'paired t-test, how many pairs the method won / tied / lost, and the exact Wilcoxon signed-rank test (no normality assumed). ' +
  'An interval that contains 0 means this grid cannot tell the two apart.';

/** The Markdown summary: title, command, table, paired differences, failures, pending runs, the PNG plots. */
export function summaryMarkdown(grid: Pick<Grid, 'name' | 'cells'>, command: string, rows: readonly RunRow[], groups: readonly GroupRow[], pairs: readonly PairRow[] = []): string {
  const pending = grid.cells.length - rows.length;
  const failures = failureLines(rows);
  return [
    `# hilo compare: ${grid.name}`,
    '',
    `Made by \`${command}\`. Metrics are on each task's test split (eval when a task has none): ` +
      'mean ± sample std over seeds, and the 95% t-interval of the mean. Parameters are counted by the run; active = used per token.',
    '',
    markdownTable(groups),
    '',
    ...(pairs.length ? ['## Paired differences', '', PAIRED_NOTE, '', pairedMarkdown(pairs, budgetText), ''] : []),
    ...(failures.length ? ['Failed runs:', '', ...failures.map((f) => `- ${f}`), ''] : []),
    ...(pending > 0 ? [`${pending} of ${grid.cells.length} runs have no results yet.`, ''] : []),
    ...AXES.flatMap((a) => [`![${CAPTION[a]}](plot-${a}.png)`, '']),
  ].join('\n');
}

export async function writeSummary(grid: Grid, command: string): Promise<SummaryFiles> {
  const out = grid.outputDir;
  fs.mkdirSync(out, { recursive: true });
  const rows = grid.cells.flatMap((cell) => {
    const r = readCellResults(cell);
    return r ? [runRow(cell, r)] : [];
  });
  const groups = groupRows(rows);
  const pairs = pairedComparisons(rows, grid.methods);
  const byTask = grid.tasks.map((task) => ({ task, pairs: pairedComparisons(rows.filter((r) => r.task === task), grid.methods) }));
  const file = (name: string) => path.join(out, name);

  writeFileAtomic(file('results.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
  const summary = {
    grid: grid.file, command, recipe: grid.recipe, methods: grid.methods, budgets: grid.budgets.map(budgetText),
    tasks: grid.tasks, seeds: grid.seeds, runs: grid.cells.length, with_results: rows.length,
    failed: rows.filter((r) => r.error !== null).length, groups, paired: pairs, paired_by_task: byTask,
  };
  writeFileAtomic(file('summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  writeFileAtomic(file('summary.md'), summaryMarkdown(grid, command, rows, groups, pairs));

  const plots: Array<{ caption: string; svg: string }> = [];
  const svgFiles: string[] = [];
  const pngFiles: string[] = [];
  for (const axis of AXES) {
    const svg = await renderSvg(comparePlotSpec(rows, groups, axis, grid.methods));
    writeFileAtomic(file(`plot-${axis}.svg`), svg);
    writeFileAtomic(file(`plot-${axis}.png`), svgToPng(svg));
    svgFiles.push(file(`plot-${axis}.svg`));
    pngFiles.push(file(`plot-${axis}.png`));
    plots.push({ caption: CAPTION[axis], svg });
  }
  writeFileAtomic(file('report.html'), htmlReport({ title: `hilo compare: ${grid.name}`, command, rows, groups, pairs, plots }));
  return { jsonl: file('results.jsonl'), json: file('summary.json'), markdown: file('summary.md'), html: file('report.html'), svg: svgFiles, png: pngFiles };
}

/**
 * `hilo compare GRID.yaml [key=value ...]`: train every cell of a grid (methods x budgets x tasks
 * x seeds, one base recipe), skipping cells already finished, one after another in this process
 * or `--jobs N` at a time in their own processes; then write the results table, paired
 * statistics, plots and HTML report. key=value overrides apply to every run's recipe.
 * `--cell K` (used by --jobs) trains only cell K here.
 */
import os from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { HiloError } from '../errors.ts';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'compare <grid> [overrides..]',
  describe: 'Train a grid of methods x budgets x tasks x seeds; write a results table, paired statistics, plots and an HTML report',
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('grid', { type: 'string', describe: 'the grid YAML (recipes/compare/small.yaml)' })
        .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value recipe overrides for every run (train.max_steps=50)' })
        .option('output-dir', { type: 'string', describe: 'put runs and summary here instead of the grid\'s output_dir' })
        .option('jobs', {
          type: 'number', default: 1,
          describe: 'cells trained at once, each in its own one-thread process (its output in <run>/train.log); about one per core',
        })
        .option('summary-only', { type: 'boolean', default: false, describe: 'train nothing: rewrite the table, plots and report from the results on disk' })
        .option('cell', { type: 'number', hidden: true, describe: 'train only this cell (0-based), as --jobs does in each process' }),
    )
      .example('$0 compare recipes/compare/small.yaml', 'the small grid: 3 methods x 2 budgets on sentiment, ~20 minutes on a CPU')
      .example('$0 compare recipes/compare/cpu.yaml --jobs 8', 'the CPU grid (90 runs), 8 at a time')
      .example('$0 compare recipes/compare/paper.yaml --backend webgpu', 'the paper-style grid, on a GPU'),
  handler: async (argv) => {
    const overrides = (argv.overrides as string[]).map(String);
    if (argv.backend && argv.backend !== 'auto') overrides.push(`backend=${argv.backend}`);
    const jobs = argv.jobs as number;
    const cores = os.availableParallelism?.() ?? os.cpus().length;
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 4 * cores) {
      throw new HiloError(`--jobs: got ${jobs}; allowed: a whole number from 1 to ${4 * cores} (4 x this machine's ${cores} cores); about one per core is fastest`);
    }
    const { loadGrid } = await import('../compare/grid.ts');
    const grid = loadGrid(argv.grid as string, overrides, { outputDir: argv['output-dir'] as string | undefined });
    if (argv.cell !== undefined) {
      const k = argv.cell as number;
      const cell = grid.cells[k];
      if (!cell) throw new HiloError(`--cell: got ${k}; allowed: 0 to ${grid.cells.length - 1} (the grid's cells)`);
      // Started by --jobs: when that process is gone (killed), stop rather than run on unwatched.
      // It may be gone already: a grid killed while this process was starting closed the channel
      // before this listener existed (Node then drops process.channel and emits nothing more),
      // so the grid says so in the environment rather than through the channel alone.
      if (process.env.HILO_CELL_WATCHED === '1') {
        if (!process.connected) process.exit(137);
        process.channel?.unref();
        process.on('disconnect', () => process.exit(137));
      }
      const { runCell } = await import('../compare/run.ts');
      const outcome = await runCell(grid, cell, (m) => process.stderr.write(`${m}\n`));
      process.exitCode = outcome === 'finished' ? 0 : outcome === 'interrupted' ? 130 : 1;
      return;
    }
    const { runGrid } = await import('../compare/run.ts');
    const command = process.argv.slice(2).join(' ').replace(/^/, 'hilo ');
    // Each cell's process: this same program, the same grid and overrides, all paths absolute.
    const entry = process.argv[1];
    const cellCommand = (cell: { index: number }) => ({
      file: process.execPath,
      args: [...process.execArgv, entry, 'compare', grid.file, ...overrides, '--output-dir', grid.outputDir, '--cell', String(cell.index)],
    });
    const result = await runGrid(grid, { command, summaryOnly: Boolean(argv['summary-only']), jobs, cellCommand });
    const { files } = result;
    process.stdout.write(`summary: ${files.markdown}\nreport: ${files.html}\nplots: ${files.png.join(', ')}\n`);
    if (result.interrupted) process.exitCode = 130;
    else if (result.failed) process.exitCode = 1;
  },
};

export default command;

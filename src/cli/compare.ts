/**
 * `hilo compare GRID.yaml [key=value ...]`: train every cell of a grid (methods x budgets x tasks
 * x seeds, one base recipe) in this process, skipping cells already finished, then write the
 * results table, plots and HTML report. key=value overrides apply to every run's recipe.
 */
import type { Argv, CommandModule } from 'yargs';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'compare <grid> [overrides..]',
  describe: 'Train a grid of methods x budgets x tasks x seeds; write a results table, plots and an HTML report',
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('grid', { type: 'string', describe: 'the grid YAML (recipes/compare/small.yaml)' })
        .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value recipe overrides for every run (train.max_steps=50)' })
        .option('output-dir', { type: 'string', describe: 'put runs and summary here instead of the grid\'s output_dir' })
        .option('summary-only', { type: 'boolean', default: false, describe: 'train nothing: rewrite the table, plots and report from the results on disk' }),
    )
      .example('$0 compare recipes/compare/small.yaml', 'the small grid: 5 methods x 2 budgets on sentiment, ~20 minutes on a CPU')
      .example('$0 compare recipes/compare/paper.yaml --backend webgpu', 'the paper-style grid, on a GPU'),
  handler: async (argv) => {
    const overrides = (argv.overrides as string[]).map(String);
    if (argv.backend && argv.backend !== 'auto') overrides.push(`backend=${argv.backend}`);
    const { loadGrid } = await import('../compare/grid.ts');
    const grid = loadGrid(argv.grid as string, overrides, { outputDir: argv['output-dir'] as string | undefined });
    const { runGrid } = await import('../compare/run.ts');
    const command = process.argv.slice(2).join(' ').replace(/^/, 'hilo ');
    const result = await runGrid(grid, { command, summaryOnly: Boolean(argv['summary-only']) });
    const { files } = result;
    process.stdout.write(`summary: ${files.markdown}\nreport: ${files.html}\nplots: ${files.png.join(', ')}\n`);
    if (result.interrupted) process.exitCode = 130;
    else if (result.failed) process.exitCode = 1;
  },
};

export default command;

/**
 * `hilo eval RUN_DIR|RECIPE [key=value ...] [--split test|eval] [--base] [--json]`: score a
 * trained adapter (or full model), or with --base the frozen base model, on a task's split.
 */
import type { Argv, CommandModule } from 'yargs';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'eval <target> [overrides..]',
  describe: "Evaluate a run's trained adapter (or the base model) on the task's test or eval split",
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('target', { type: 'string', describe: 'a run folder (runs/<name>) or a recipe file (its output_dir is used)' })
        .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value recipe overrides' })
        .option('split', { type: 'string', choices: ['test', 'eval'], default: 'test', describe: 'which split to score' })
        .option('base', { type: 'boolean', default: false, describe: 'score the frozen base model without the adapter (a baseline)' })
        .option('json', { type: 'boolean', default: false, describe: 'print the metrics as JSON' }),
    ).example('$0 eval runs/quickstart', 'test accuracy of the quickstart adapter'),
  handler: async (argv) => {
    const overrides = (argv.overrides as string[]).map(String);
    if (argv.backend && argv.backend !== 'auto') overrides.push(`backend=${argv.backend}`);
    const { resolveEvalTarget, evaluateTarget } = await import('../train/eval-run.ts');
    const target = resolveEvalTarget(argv.target as string, overrides, argv.base as boolean);
    const log = (m: string) => process.stderr.write(`${m}\n`);
    log(`evaluating ${target.what} on the ${argv.split} split`);
    const { expertUsage: _usage, ...metrics } = await evaluateTarget(target, argv.split as 'test' | 'eval', log);
    if (argv.json) process.stdout.write(`${JSON.stringify(metrics)}\n`);
    else for (const [k, v] of Object.entries(metrics)) process.stdout.write(`${argv.split} ${k}: ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}\n`);
  },
};

export default command;

/**
 * `hilo train RECIPE [key=value ...]`: train router + adapters (or the whole model for
 * adapter.method none) as the recipe says, with checkpoints, eval, metrics and results in the
 * run folder. Ctrl-C saves a checkpoint; `resume=true` continues exactly where it stopped.
 */
import type { Argv, CommandModule } from 'yargs';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'train <recipe> [overrides..]',
  describe: 'Train adapters on a frozen model as a recipe says (key=value overrides after it)',
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('recipe', { type: 'string', describe: 'the recipe YAML' })
        .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value overrides, dotted keys (lr=3e-4 train.max_steps=200)' })
        .option('resume', { type: 'string', describe: 'continue from this checkpoint folder (or the run folder: its latest checkpoint)' }),
    )
      .example('$0 train recipes/quickstart.yaml', 'the quickstart: HILO MoE-LoRA on sentiment, a few minutes on a CPU')
      .example('$0 train recipes/sentiment/hilo.yaml lr=3e-4 train.max_steps=200', 'with overrides'),
  handler: async (argv) => {
    const overrides = (argv.overrides as string[]).map(String);
    if (argv.backend && argv.backend !== 'auto') overrides.push(`backend=${argv.backend}`);
    if (argv.resume) overrides.push(`train.resume=${argv.resume}`);
    const { trainRecipe } = await import('../train/index.ts');
    const results = await trainRecipe(argv.recipe as string, overrides);
    if (results.stopped === 'interrupted') process.exitCode = 130;
  },
};

export default command;

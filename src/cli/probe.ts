/**
 * `hilo probe RECIPE [--json] [key=value ...]`: measure the recipe's layer-complexity probe,
 * print a score and a bar per layer, and write probe.json into the run's output_dir (reused by
 * `hilo plan` and training while kind, settings and model stay the same).
 */
import type { Argv, CommandModule } from 'yargs';
import type { CalibrationSize } from '../probe/cost.ts';
import { withBackend } from './options.ts';

/** "name  score  bar" lines; bars scale from the smallest score (empty) to the largest (full). */
export function scoreBars(labels: string[], scores: number[], width = 40): string[] {
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const wLabel = Math.max(...labels.map((l) => l.length));
  const text = scores.map((s) => s.toPrecision(5));
  const wNum = Math.max(...text.map((t) => t.length));
  return scores.map((s, i) => {
    const fill = hi > lo ? Math.round((width * (s - lo)) / (hi - lo)) : width;
    return `${labels[i].padEnd(wLabel)}  ${text[i].padStart(wNum)}  ${'█'.repeat(Math.max(1, fill))}`;
  });
}

export const command: CommandModule = {
  command: 'probe <recipe> [overrides..]',
  describe: 'Measure layer complexity (adapter.probe) and write probe.json into output_dir',
  builder: (y: Argv) =>
    withBackend(y)
      .positional('recipe', { type: 'string', describe: 'the recipe YAML' })
      .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value overrides (adapter.probe=alpha-hill)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the probe result as JSON' })
      .option('force', { type: 'boolean', default: false, describe: 'measure again even when probe.json matches' })
      .example('$0 probe recipes/sentiment/hilo.yaml adapter.probe=alpha-hill', 'alpha-hill scores of the recipe\'s model'),
  handler: async (argv) => {
    const { loadRecipe } = await import('../recipe/load.ts');
    const { probeForRecipe } = await import('../probe/for-recipe.ts');
    const recipe = loadRecipe(argv.recipe as string, (argv.overrides as string[]).map(String));
    const backend = argv.backend === 'auto' ? recipe.backend : (argv.backend as string);
    const { checkModelLoad } = await import('../allocate/memory-for-recipe.ts');
    const { result, file, reused, cache } = await probeForRecipe(recipe, { backend, force: argv.force as boolean, check: checkModelLoad });
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const labels = result.layers.map((_, l) => `layer ${l}`);
    process.stdout.write(`${result.kind} scores of ${recipe.model.path} (higher = more complex)\n`);
    process.stdout.write(`${scoreBars(labels, result.layers).join('\n')}\n`);
    const { probeCost } = await import('../probe/cost.ts');
    const { readModelConfig } = await import('../model/load.ts');
    const calibration = result.settings.calibration as CalibrationSize | undefined;
    process.stdout.write(`cost: ${probeCost(result.kind, readModelConfig(recipe.model.path), calibration)}\n`);
    process.stdout.write(`${reused ? 'reused' : 'wrote'} ${file}${reused && cache ? ` (from the probe cache, ${cache})` : ''}\n`);
  },
};

export default command;

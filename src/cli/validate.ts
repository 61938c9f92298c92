/**
 * `hilo validate RECIPE [key=value ...] [--explain]`: every problem of a recipe at once, or "ok"
 * and what it will do, its data files read and checked as training reads them, and its model
 * folder checked from config.json and the weights' headers. Loads only the recipe, data and
 * model-folder code (never tfjs), so it answers in a moment.
 * `--json-schema` prints the schema for editors.
 */
import type { Argv, CommandModule } from 'yargs';
import { HiloError } from '../errors.ts';

export const command: CommandModule = {
  command: 'validate [recipe] [overrides..]',
  describe: 'Check a recipe and list every problem at once; --explain documents every field',
  builder: (y: Argv) =>
    y
      .positional('recipe', { type: 'string', describe: 'the recipe YAML' })
      .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value overrides, dotted keys (train.max_steps=100)' })
      .option('explain', { type: 'boolean', default: false, describe: 'print every field: type, default, allowed values, doc (and the resolved value)' })
      .option('json-schema', { type: 'boolean', default: false, describe: 'print the recipe as JSON Schema, for editors (yaml-language-server)' })
      .example('$0 validate recipes/sentiment/hilo.yaml adapter.top_k=1', 'check a recipe with an override')
      .example('$0 validate --explain', 'document every recipe field')
      .example('$0 validate --json-schema > recipe.schema.json', 'a schema for editor completion'),
  handler: async (argv) => {
    const { loadRecipe } = await import('../recipe/load.ts');
    const { explainRecipe, summarizeRecipe } = await import('../recipe/explain.ts');
    const file = argv.recipe as string | undefined;
    if (argv.jsonSchema) {
      const { recipeJsonSchema } = await import('../recipe/json-schema.ts');
      process.stdout.write(`${JSON.stringify(recipeJsonSchema(), null, 2)}\n`);
      return;
    }
    if (file === undefined) {
      if (!argv.explain) throw new HiloError('validate: name a recipe file, or pass --explain to document every field');
      process.stdout.write(`${explainRecipe()}\n`);
      return;
    }
    const recipe = loadRecipe(file, (argv.overrides as string[]).map(String));
    if (argv.explain) {
      process.stdout.write(`${explainRecipe(recipe)}\n`);
      return;
    }
    // The data is read as training reads it, so "ok" also means the files parse.
    const { checkRecipeData } = await import('../data/check.ts');
    const data = checkRecipeData(recipe.data, recipe.seed);
    // And the model folder as the loader checks it, from headers alone (no weights, no tfjs).
    const { checkModelForRecipe } = await import('../model/folder.ts');
    const model = await checkModelForRecipe(recipe.model.path, recipe.data.max_length);
    // the summary names the modules the model's family adapts where the recipe names none
    const { readModelConfig } = await import('../model/folder.ts');
    const { withModelTargets } = await import('../allocate/targets.ts');
    const resolved = withModelTargets(recipe, readModelConfig(recipe.model.path));
    process.stdout.write(`ok ${file}\n${summarizeRecipe(resolved)}\n${data}\n${model}\n`);
  },
};

export default command;

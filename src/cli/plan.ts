/**
 * `hilo plan RECIPE [--json] [key=value ...]`: the adapter plan a recipe yields on its model
 * (experts, rank and top-k per layer, parameters per layer, totals and % of the base model),
 * written to <output_dir>/plan.json for training. Probes run (or are reused) only when the
 * method needs scores other than depth.
 */
import type { Argv, CommandModule } from 'yargs';
import type { PlanSummary } from '../allocate/plan-file.ts';
import type { CalibrationSize } from '../probe/cost.ts';
import { withBackend } from './options.ts';

const n = (x: number) => x.toLocaleString('en-US');

/** The plan as an aligned text table with a totals footer. */
export function planTable(s: PlanSummary): string {
  const head = ['layer', 'experts', 'rank', 'top-k', 'trainable', 'active/token'];
  const body = s.rows.map((r) => [String(r.layer), r.experts, r.rank, r.topK, n(r.trainable), n(r.active)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    line(head),
    ...body.map(line),
    `trainable ${n(s.trainable)} (${s.percentOfBase.toPrecision(3)}% of ${n(s.baseParams)} base parameters); active per token ${n(s.active)}`,
  ].join('\n');
}

export const command: CommandModule = {
  command: 'plan <recipe> [overrides..]',
  describe: 'Allocate experts, ranks and top-k per layer for a recipe; write plan.json into output_dir',
  builder: (y: Argv) =>
    withBackend(y)
      .positional('recipe', { type: 'string', describe: 'the recipe YAML' })
      .positional('overrides', { type: 'string', array: true, default: [], describe: 'key=value overrides (adapter.budget.percent=0.5)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {plan, summary} as JSON' })
      .example('$0 plan recipes/sentiment/hilo.yaml', 'the HILO plan of the sentiment recipe')
      .example('$0 plan recipes/sentiment/hilo.yaml adapter.budget.trainable=20000', 'the largest plan within 20,000 parameters'),
  handler: async (argv) => {
    const path = await import('node:path');
    const { loadRecipe } = await import('../recipe/load.ts');
    const { readModelConfig } = await import('../model/load.ts');
    const { planForRecipe } = await import('../allocate/for-recipe.ts');
    const { summarizePlan, writePlanFile } = await import('../allocate/plan-file.ts');
    const recipe = loadRecipe(argv.recipe as string, (argv.overrides as string[]).map(String));
    const backend = argv.backend === 'auto' ? recipe.backend : (argv.backend as string);
    const { plan, probe } = await planForRecipe(recipe, { backend });
    const config = readModelConfig(recipe.model.path);
    const file = path.join(recipe.output_dir, 'plan.json');
    writePlanFile(file, plan);
    const summary = summarizePlan(plan, config);
    // the run's memory on the backend it would get: auto is wasm on a CPU machine, the default
    const { estimateMemory } = await import('../allocate/memory.ts');
    const { memoryInputForRecipe, memoryReport } = await import('../allocate/memory-for-recipe.ts');
    const { resolveDataParallel } = await import('../train/replicas.ts');
    const { HOST_MEMORY_BACKENDS } = await import('../names.ts');
    const engine = backend === 'auto' ? 'wasm' : backend;
    const full = recipe.adapter.method === 'none';
    // the frozen weights leave the heap where the backend will have a frozen-linear kernel: wasm
    // with its BLAS, webgpu (in row blocks on the GPU: src/backend/webgpu-frozen.ts)
    const { heapWeightsCap, storageFor } = await import('../model/load.ts');
    const { loadBlas } = await import('../backend/blas.ts');
    const kernel = engine === 'webgpu' || (engine === 'wasm' && loadBlas().blas !== null);
    const storage = storageFor(config, { trainable: full, dtype: recipe.model.dtype, cap: heapWeightsCap(process.env, kernel) });
    const input = memoryInputForRecipe(recipe, config, full ? null : plan, {
      backend: engine, mode: 'train', fullTraining: full, storage,
      replicas: resolveDataParallel(recipe.train.data_parallel, recipe.train.batch_size, { name: engine, hostMemory: HOST_MEMORY_BACKENDS.includes(engine) }),
    });
    const memory = estimateMemory(input);
    if (argv.json) {
      process.stdout.write(`${JSON.stringify({ plan, summary, memory })}\n`);
      return;
    }
    const { probeCost } = await import('../probe/cost.ts');
    const cost = probe ? `probe: ${probeCost(probe.kind, config, probe.settings.calibration as CalibrationSize | undefined)}\n` : '';
    process.stdout.write(`${recipe.adapter.method} plan for ${recipe.model.path}\n${planTable(summary)}\n${cost}wrote ${file}\n`);
    process.stdout.write(`${memoryReport(memory, input, recipe, backend === 'auto' ? 'wasm (auto on a CPU machine)' : backend)}\n`);
  },
};

export default command;

/**
 * `hilo export RUN_DIR [--format hilo|peft|merged] [--out DIR] [--checkpoint N|DIR] [--calibration N]
 * [--force]`: a trained run as a hilo adapter package, a PEFT LoRA adapter or a merged HF model;
 * `hilo export --from-peft DIR [--model BASE]`: a PEFT LoRA adapter as a hilo adapter package.
 */
import type { Argv, CommandModule } from 'yargs';
import { HiloError } from '../errors.ts';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'export [run]',
  describe: 'Export a trained run as a hilo adapter, a PEFT LoRA adapter or a merged model (or import a PEFT adapter)',
  builder: (y: Argv) =>
    withBackend(
      y
        .positional('run', { type: 'string', describe: 'a run folder (runs/<name>) or one of its checkpoint-N folders' })
        .option('format', { type: 'string', choices: ['hilo', 'peft', 'merged'], default: 'hilo', describe: 'hilo adapter package, PEFT LoRA adapter, or a HF model with the adapters merged in' })
        .option('out', { type: 'string', describe: 'output folder (default adapters/<run>[-peft|-merged])' })
        .option('checkpoint', { type: 'string', describe: 'export checkpoint-N (a step number) or a checkpoint folder instead of the final adapter' })
        .option('calibration', { type: 'number', describe: "peft/merged with mixtures: training batches that measure the mean routing weights (default the recipe's adapter.calibration.batches)" })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing, different export in --out' })
        .option('from-peft', { type: 'string', describe: 'import this PEFT LoRA adapter folder as a hilo adapter package instead' })
        .option('model', { type: 'string', describe: "--from-peft: the base model folder (default the adapter's base_model_name_or_path)" })
        .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' }),
    )
      .example('$0 export runs/quickstart', 'adapters/quickstart: the hilo adapter package')
      .example('$0 export runs/quickstart --format peft', 'adapters/quickstart-peft: loadable by PeftModel.from_pretrained')
      .example('$0 export runs/quickstart --format merged --out models/quickstart', 'a plain HF model folder'),
  handler: async (argv) => {
    const print = (r: Record<string, unknown>, line: string) => process.stdout.write(argv.json ? `${JSON.stringify(r)}\n` : `${line}\n`);
    const backend = argv.backend === 'auto' ? undefined : (argv.backend as string);
    if (argv.fromPeft !== undefined) {
      if (argv.run !== undefined) throw new HiloError('export: give either a run folder or --from-peft DIR, not both');
      const { importPeft } = await import('../export/run-export.ts');
      const r = await importPeft(argv.fromPeft as string, { model: argv.model as string | undefined, out: argv.out as string | undefined, force: argv.force as boolean, backend });
      print(r, `imported ${r.modules} LoRA modules into ${r.out} (${r.status})`);
      return;
    }
    if (argv.run === undefined) throw new HiloError('export: give a run folder (runs/<name>), or --from-peft DIR');
    const { exportRun } = await import('../export/run-export.ts');
    const r = await exportRun(argv.run as string, {
      format: argv.format as 'hilo' | 'peft' | 'merged', out: argv.out as string | undefined, checkpoint: argv.checkpoint as string | undefined,
      calibration: argv.calibration as number | undefined, force: argv.force as boolean, backend,
      log: (m) => process.stderr.write(`${m}\n`),
    });
    const err = r.error ? `; relative logit error ${r.error.relative.toExponential(3)} on ${r.error.tokens} held-out tokens${r.exact ? ' (exact: every module has one expert)' : ' (experts folded by mean routing weight)'}` : '';
    print({ ...r }, `${r.format} export ${r.status}: ${r.out}${err}`);
  },
};

export default command;

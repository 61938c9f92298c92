/** `hilo wandb sync RUN_DIR`: upload a run's queued W&B records (offline runs, failed uploads). */
import type { Argv, CommandModule } from 'yargs';

export const command: CommandModule = {
  command: 'wandb <action> <run_dir>',
  describe: 'Weights & Biases: `sync` uploads a run folder\'s W&B records (offline runs, uploads that failed)',
  builder: (y: Argv) =>
    y
      .positional('action', { choices: ['sync'] as const, describe: 'what to do' })
      .positional('run_dir', { type: 'string', demandOption: true, describe: 'the run folder (output_dir) or its wandb/ folder' })
      .option('timeout', { type: 'number', default: 600, describe: 'seconds to keep retrying an unreachable server' })
      .epilogue('Uses WANDB_API_KEY (or ~/.netrc) and WANDB_BASE_URL; sends only what the server does not have yet.'),
  handler: async (argv) => {
    const { syncRun } = await import('../log/wandb/sync.ts');
    await syncRun(String(argv.run_dir), { timeoutMs: Number(argv.timeout) * 1000 });
  },
};

export default command;

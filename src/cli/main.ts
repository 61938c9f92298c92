/**
 * The `hilo` command line. Each command is declared in its own small file under this folder
 * and imports heavy code (tfjs, models) only inside its handler, so `hilo --help` is instant.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { HiloError } from '../errors.ts';
import { commands } from './commands.ts';

/** package.json's version, read beside the sources (yargs would look for it from the working directory). */
function version(): string {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
}

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
    .scriptName('hilo')
    .usage('$0 <command> [options]\n\nMixtures of LoRA experts, sized per layer from measured layer complexity.')
    .strict()
    .demandCommand(1, 'Name a command; `hilo --help` lists them.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(version())
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      throw new HiloError(msg);
    });
  for (const c of commands) cli.command(c);
  await cli.parseAsync();
}

main().catch((e: unknown) => {
  if (e instanceof HiloError) {
    process.stderr.write(`hilo: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`hilo: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});

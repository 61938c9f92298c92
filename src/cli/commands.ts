/** The command table: one import per command file. Add new commands here. */
import type { CommandModule } from 'yargs';

export const commands: CommandModule<any, any>[] = [];

/** The command table: one import per command file. Add new commands here. */
import type { CommandModule } from 'yargs';
import { command as compare } from './compare.ts';
import { command as doctor } from './doctor.ts';
import { command as evaluate } from './eval.ts';
import { command as exportCommand } from './export.ts';
import { command as generate } from './generate.ts';
import { command as plan } from './plan.ts';
import { command as probe } from './probe.ts';
import { command as score } from './score.ts';
import { command as train } from './train.ts';
import { command as validate } from './validate.ts';
import { command as wandb } from './wandb.ts';

export const commands: CommandModule<any, any>[] = [train, evaluate, doctor, generate, score, validate, wandb, probe, plan, compare, exportCommand];

/** Options shared by several commands, declared once. */
import type { Argv } from 'yargs';
import { BACKENDS } from '../names.ts';

export function withBackend<T>(y: Argv<T>) {
  return y.option('backend', {
    type: 'string',
    choices: BACKENDS,
    default: 'auto',
    describe: 'tfjs engine: auto takes the fastest that initialises (tensorflow, webgpu, wasm, cpu)',
  });
}

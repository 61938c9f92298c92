/**
 * `hilo generate --model DIR --prompt TEXT`: continue a prompt with a model directory
 * (greedy at --temperature 0). tfjs and the model code load inside the handler only.
 */
import type { Argv, CommandModule } from 'yargs';
import { fieldError, HiloError } from '../errors.ts';
import { withBackend } from './options.ts';

/** "1,2,3" -> [1, 2, 3]; anything else is a user error naming the option. */
export function parseIdList(option: string, value: unknown): number[] {
  const s = String(value ?? '').trim();
  const parts = s === '' ? [] : s.split(',').map((p) => p.trim());
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) {
    throw fieldError(option, value, 'comma-separated non-negative token ids, e.g. 1,2,3');
  }
  return parts.map(Number);
}

/** Refuse ids the embedding does not have (a gather past the table would read garbage). */
export function checkIdsInVocab(option: string, ids: number[], vocabSize: number): void {
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined) throw fieldError(option, bad, `token ids below the model's vocab_size (${vocabSize})`);
}

/**
 * What generate and score start from: the directory's tokenizer, the input ids (`--ids`, or
 * the text of `textOption` encoded with BOS: a missing tokenizer fails here, before tfjs
 * loads), the backend, and the model (the caller disposes it), ids checked against its vocab.
 */
export async function openModelInput(dir: string, backend: string, idsArg: unknown, text: string | undefined, textOption: string) {
  const given = idsArg === undefined ? undefined : parseIdList('--ids', idsArg);
  const { loadTokenizer } = await import('../model/tokenizer.ts');
  const tokenizer = loadTokenizer(dir);
  const ids = given ?? tokenizer.encode(text ?? '', true);
  const { initBackend } = await import('../backend/index.ts');
  const { loadModel } = await import('../model/load.ts');
  await initBackend(backend);
  const model = await loadModel(dir);
  try {
    checkIdsInVocab(given ? '--ids' : textOption, ids, model.config.vocabSize);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, tokenizer, ids };
}

export const command: CommandModule = {
  command: 'generate',
  describe: 'Continue a prompt with a Hugging Face model directory (greedy at --temperature 0)',
  builder: (y: Argv) =>
    withBackend(y)
      .option('model', { type: 'string', demandOption: true, describe: 'Hugging Face model directory (config.json + safetensors [+ tokenizer.json])' })
      .option('prompt', { type: 'string', describe: 'prompt text (needs tokenizer.json; BOS is added as the tokenizer says)' })
      .option('ids', { type: 'string', describe: 'prompt as comma-separated token ids instead of text' })
      .option('max-new-tokens', { type: 'number', default: 32, describe: 'how many tokens to add at most' })
      .option('temperature', { type: 'number', default: 0, describe: '0 = greedy (first index on ties); > 0 samples softmax(logits / T)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed for sampling' })
      .option('stop-ids', { type: 'string', describe: 'stop after any of these ids (default: eos_token_id of config.json)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {prompt_ids, generated_ids, text, stopped_by} as JSON' })
      .conflicts('prompt', 'ids')
      .example('$0 generate --model ../shared/models/stories260K --prompt "Once upon a time" --temperature 0', 'greedy continuation'),
  handler: async (argv) => {
    if (argv.prompt === undefined && argv.ids === undefined) throw new HiloError('generate: give --prompt TEXT or --ids 1,2,3');
    const maxNew = argv['max-new-tokens'] as number;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw fieldError('--max-new-tokens', maxNew, 'an integer >= 0');
    const stopIds = argv['stop-ids'] === undefined ? undefined : parseIdList('--stop-ids', argv['stop-ids']);
    const { model, tokenizer, ids: promptIds } = await openModelInput(argv.model as string, argv.backend as string, argv.ids, argv.prompt as string | undefined, '--prompt');
    const { generate } = await import('../model/generate.ts');
    try {
      const result = await generate(model, promptIds, {
        maxNewTokens: maxNew, temperature: argv.temperature as number, seed: argv.seed as number, stopIds,
      });
      const text = tokenizer.available ? tokenizer.decode([...promptIds, ...result.ids], true) : null;
      if (argv.json) {
        process.stdout.write(`${JSON.stringify({ prompt_ids: promptIds, generated_ids: result.ids, text, stopped_by: result.stoppedBy })}\n`);
      } else {
        process.stdout.write(`${text ?? [...promptIds, ...result.ids].join(',')}\n`);
      }
    } finally {
      model.dispose();
    }
  },
};

export default command;

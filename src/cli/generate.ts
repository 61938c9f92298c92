/**
 * `hilo generate [--model DIR] [--adapter DIR] --prompt TEXT`: continue a prompt with a model
 * folder, optionally with a trained adapter run exactly (greedy at --temperature 0; sampling
 * with --top-k / --top-p as transformers' generate). tfjs and the model load in the handler only.
 */
import type { Argv, CommandModule } from 'yargs';
import { fieldError, HiloError } from '../errors.ts';
import { openModelInput, parseIdList, withModelOptions } from './model-input.ts';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'generate',
  describe: 'Continue a prompt with a Hugging Face model folder, optionally with an adapter (greedy at --temperature 0)',
  builder: (y: Argv) =>
    withModelOptions(withBackend(y))
      .option('prompt', { type: 'string', describe: 'prompt text (needs tokenizer.json; BOS is added as the tokenizer says)' })
      .option('ids', { type: 'string', describe: 'prompt as comma-separated token ids instead of text' })
      .option('max-new-tokens', { type: 'number', default: 32, describe: 'how many tokens to add at most' })
      .option('temperature', { type: 'number', default: 0, describe: '0 = greedy (first index on ties); > 0 samples softmax(logits / T)' })
      .option('top-k', { type: 'number', default: 0, describe: 'sample among the k most likely tokens only (0 = all)' })
      .option('top-p', { type: 'number', default: 1, describe: 'sample among the fewest most likely tokens whose probability reaches p (1 = all)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed for sampling' })
      .option('stop-ids', { type: 'string', describe: 'stop after any of these ids (default: eos_token_id of config.json)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {prompt_ids, generated_ids, text, stopped_by} as JSON' })
      .conflicts('prompt', 'ids')
      .example('$0 generate --model test/fixtures/models/stories260K --prompt "Once upon a time"', 'greedy continuation')
      .example('$0 generate --adapter runs/quickstart --prompt "The food was" --temperature 0.8 --top-p 0.9', 'with a trained adapter, sampled'),
  handler: async (argv) => {
    if (argv.prompt === undefined && argv.ids === undefined) throw new HiloError('generate: give --prompt TEXT or --ids 1,2,3');
    const maxNew = argv['max-new-tokens'] as number;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw fieldError('--max-new-tokens', maxNew, 'an integer >= 0');
    const sampling = { temperature: argv.temperature as number, topK: argv['top-k'] as number, topP: argv['top-p'] as number };
    const { checkSampling } = await import('../model/sampling.ts');
    checkSampling(sampling);
    const stopIds = argv['stop-ids'] === undefined ? undefined : parseIdList('--stop-ids', argv['stop-ids']);
    const input = await openModelInput({
      model: argv.model as string | undefined, adapter: argv.adapter as string | undefined, backend: argv.backend as string,
      ids: argv.ids, text: argv.prompt as string | undefined, textOption: '--prompt', log: (m) => process.stderr.write(`${m}\n`),
    });
    const { model, tokenizer, ids: promptIds } = input;
    const { generate } = await import('../model/generate.ts');
    try {
      const result = await generate(model, promptIds, { maxNewTokens: maxNew, seed: argv.seed as number, stopIds, ...sampling });
      const text = tokenizer.available ? tokenizer.decode([...promptIds, ...result.ids], true) : null;
      if (argv.json) {
        process.stdout.write(`${JSON.stringify({ prompt_ids: promptIds, generated_ids: result.ids, text, stopped_by: result.stoppedBy })}\n`);
      } else {
        process.stdout.write(`${text ?? [...promptIds, ...result.ids].join(',')}\n`);
      }
    } finally {
      input.dispose();
    }
  },
};

export default command;

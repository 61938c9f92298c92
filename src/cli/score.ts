/**
 * `hilo score [--model DIR] [--adapter DIR] (--text TEXT | --ids 1,2,3)`: the log-probability
 * the model (with the adapter run exactly, if given) gives each token after the first, and with
 * --logits the full logits rows.
 */
import type { Argv, CommandModule } from 'yargs';
import { HiloError } from '../errors.ts';
import { openModelInput, withModelOptions } from './model-input.ts';
import { withBackend } from './options.ts';

export const command: CommandModule = {
  command: 'score',
  describe: 'Per-token log-probabilities of a text or of token ids under a model',
  builder: (y: Argv) =>
    withModelOptions(withBackend(y))
      .option('text', { type: 'string', describe: 'text to score (needs tokenizer.json; BOS added as the tokenizer says)' })
      .option('ids', { type: 'string', describe: 'comma-separated token ids to score (works without a tokenizer)' })
      .option('logits', { type: 'boolean', default: false, describe: 'also print the full logits row of every position' })
      .option('json', { type: 'boolean', default: false, describe: 'print {ids, tokens, logprobs[, logits]} as JSON' })
      .conflicts('text', 'ids')
      .example('$0 score --model test/fixtures/models/stories260K --ids 1,403,407,261,378 --json', 'score token ids')
      .example('$0 score --adapter runs/quickstart --text "The food was great"', 'per-token log-probabilities with a trained adapter'),
  handler: async (argv) => {
    if (argv.text === undefined && argv.ids === undefined) throw new HiloError('score: give --text TEXT or --ids 1,2,3');
    const input = await openModelInput({
      model: argv.model as string | undefined, adapter: argv.adapter as string | undefined, backend: argv.backend as string,
      ids: argv.ids, text: argv.text as string | undefined, textOption: '--text', log: (m) => process.stderr.write(`${m}\n`),
    });
    const { model, tokenizer, ids } = input;
    const { scoreIds } = await import('../model/generate.ts');
    try {
      const r = await scoreIds(model, ids, { logits: argv.logits as boolean });
      const tokens = ids.map((id) => tokenizer.tokenText(id));
      if (argv.json) {
        process.stdout.write(`${JSON.stringify({ ids, tokens, logprobs: r.logprobs, ...(r.logits ? { logits: r.logits } : {}) })}\n`);
        return;
      }
      const lines = ['pos\tid\ttoken\tlogprob'];
      ids.forEach((id, t) => {
        const lp = r.logprobs[t];
        lines.push(`${t}\t${id}\t${JSON.stringify(tokens[t] ?? '')}\t${lp === null ? '-' : lp.toFixed(6)}`);
        if (r.logits) lines.push(`\tlogits ${r.logits[t].map((x) => x.toPrecision(7)).join(' ')}`);
      });
      const scored = r.logprobs.filter((x): x is number => x !== null);
      const total = scored.reduce((a, b) => a + b, 0);
      if (scored.length) lines.push(`sum ${total.toFixed(6)} over ${scored.length} tokens; perplexity ${Math.exp(-total / scored.length).toFixed(4)}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      input.dispose();
    }
  },
};

export default command;

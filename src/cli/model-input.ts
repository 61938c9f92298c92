/**
 * What generate and score start from: the model folder (--model, or the base model an
 * --adapter names), its tokenizer, the input ids, the backend, the model and the adapter in it.
 * Whatever a user can get wrong in the arguments is said before tfjs loads.
 */
import fs from 'node:fs';
import type { Argv } from 'yargs';
import type { Adapters } from '../adapters/inject.ts';
import { fieldError, HiloError } from '../errors.ts';
import type { CausalLM } from '../model/types.ts';
import type { ModelTokenizer } from '../model/tokenizer.ts';

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

/** --model and --adapter, declared once for generate and score. */
export function withModelOptions<T>(y: Argv<T>) {
  return y
    .option('model', { type: 'string', describe: 'Hugging Face model folder (config.json + safetensors [+ tokenizer.json]); default: the base model --adapter names' })
    .option('adapter', {
      type: 'string',
      describe: 'run the frozen model with this adapter, mixtures exactly as trained: a run folder (runs/<name>), one of its checkpoint-N folders, a hilo adapter package or a PEFT LoRA folder',
    });
}

/** A folder the user named must exist: said before anything inside it is looked for. */
export function checkModelDir(dir: string, option = '--model'): void {
  if (!fs.existsSync(dir)) throw new HiloError(`${option}: ${dir} does not exist; give a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)`);
  if (!fs.statSync(dir).isDirectory()) throw new HiloError(`${option}: ${dir} is a file; give the folder that holds config.json and the safetensors`);
}

export interface ModelInputArgs {
  model?: string;
  adapter?: string;
  backend: string;
  /** --ids as given (parsed here), or undefined to encode `text`. */
  ids?: unknown;
  text?: string;
  /** The option `text` came from, for messages (--prompt, --text). */
  textOption: string;
  log: (m: string) => void;
}

export interface ModelInput {
  model: CausalLM;
  adapters: Adapters | null;
  tokenizer: ModelTokenizer;
  ids: number[];
  dispose(): void;
}

export async function openModelInput(a: ModelInputArgs): Promise<ModelInput> {
  const given = a.ids === undefined ? undefined : parseIdList('--ids', a.ids);
  // a folder named on the command line is checked before the adapter code (and tfjs) loads
  if (a.model !== undefined) checkModelDir(a.model);
  else if (a.adapter === undefined) throw new HiloError('--model: not given; give --model DIR (a Hugging Face model folder), or an --adapter whose base model is here');
  const { adapterBase, describeAdapter, openAdapter, resolveAdapter } = await import('../export/open-adapter.ts');
  const adapter = a.adapter === undefined ? null : resolveAdapter(a.adapter);
  const dir = a.model ?? (adapter ? adapterBase(adapter) : null);
  if (dir === null) {
    const named = adapter?.base ? `; ${a.adapter} was trained on ${JSON.stringify(adapter.base)}, which is not here` : '';
    throw new HiloError(`--model: not given${named}; give --model DIR (a Hugging Face model folder)`);
  }
  if (a.model === undefined) checkModelDir(dir);
  const { readModelConfig, loadModel } = await import('../model/load.ts');
  readModelConfig(dir); // no config.json is said before the tokenizer is looked for
  const { loadTokenizer } = await import('../model/tokenizer.ts');
  const tokenizer = loadTokenizer(dir);
  const ids = given ?? tokenizer.encode(a.text ?? '', true);
  if (adapter?.kind === 'hilo' && adapter.fingerprint) {
    const { modelFingerprint } = await import('../probe/fingerprint.ts');
    if (modelFingerprint(dir) !== adapter.fingerprint) {
      a.log(`warning: ${adapter.dir} was trained on ${adapter.base ?? 'another model'}, whose config or weight layout differs from ${dir}`);
    }
  }
  const { initBackend } = await import('../backend/index.ts');
  await initBackend(a.backend);
  const { checkModelLoad } = await import('../allocate/memory-for-recipe.ts');
  const model = await loadModel(dir, { check: checkModelLoad });
  let adapters: Adapters | null = null;
  try {
    checkIdsInVocab(given ? '--ids' : a.textOption, ids, model.config.vocabSize);
    if (adapter) {
      adapters = openAdapter(model, adapter);
      a.log(`${dir} with ${describeAdapter(adapter)}: ${adapters.numParams().toLocaleString('en-US')} adapter parameters, the exact mixture (nothing folded)`);
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return {
    model, adapters, tokenizer, ids,
    dispose() {
      adapters?.dispose();
      model.dispose();
    },
  };
}

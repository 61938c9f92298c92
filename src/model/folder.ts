/**
 * A Hugging Face model folder's config.json, read and checked against its weights' headers
 * without loading any weights or tfjs, so `hilo validate` and `hilo plan` can answer in a moment
 * and every command refuses a broken folder before allocating.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { checkMaxLength, checkModelFolder, readWeightShapes } from './check.ts';
import { normaliseConfig } from './config.ts';
import type { ModelConfig } from './types.ts';

/** config.json of `dir`, normalised and checked against the folder's weights; errors name the file. */
export function readModelConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new HiloError(`${dir}: no config.json; is this a Hugging Face model directory?`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  let config: ModelConfig;
  try {
    config = normaliseConfig(raw);
  } catch (e) {
    if (e instanceof HiloError) throw new HiloError(`${file}: ${e.message}`);
    throw e;
  }
  checkModelFolder(dir, config); // sizes and weight shapes, from the headers alone
  return config;
}

/**
 * What `hilo validate` checks of a recipe's model folder, without loading it: config.json against
 * the weights' headers, tokenizer.json readable, max_length within the model's positions. Errors
 * throw (naming the file); the returned line says what was checked, with max_length's warning.
 */
export async function checkModelForRecipe(dir: string, maxLength: number): Promise<string> {
  const config = readModelConfig(dir);
  const weights = readWeightShapes(dir);
  if (!weights) throw new HiloError(`${dir}: no model.safetensors or model.safetensors.index.json; adapters need the base model's weights`);
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) throw new HiloError(`${dir}: no tokenizer.json; training encodes its data with the model's own tokenizer`);
  const { loadTokenizer } = await import('./tokenizer.ts');
  loadTokenizer(dir); // throws, naming the file, where the tokenizer cannot be read
  const warning = checkMaxLength(maxLength, config, dir);
  const params = [...weights.shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  const line = `checked  model: ${config.modelType}, ${config.numLayers} layers, hidden ${config.hiddenSize}, vocab ${config.vocabSize.toLocaleString('en-US')}, ` +
    `${params.toLocaleString('en-US')} parameters in ${weights.where} matching config.json; tokenizer.json read`;
  return warning ? `${line}\nwarning  ${warning}` : line;
}

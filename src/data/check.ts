/**
 * What `hilo validate` says about a recipe's data: the files read and checked exactly as
 * training reads them (JSON of every line, the format's fields, labels, the splits), up to a
 * size bound past which it says that it did not read them instead of spending minutes.
 */
import { statSync } from 'node:fs';
import { loadDataset, type DataRecipe } from './dataset.ts';

/** JSONL beyond this total is not read by `hilo validate` (training still checks every line). */
export const VALIDATE_MAX_BYTES = 256 * 2 ** 20;

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0)} MiB`;

/** One summary line; throws the same HiloError (every `file:line: reason`) that training would. */
export function checkRecipeData(data: DataRecipe, seed: number, maxBytes = VALIDATE_MAX_BYTES): string {
  const files = [data.train_path, data.eval_path, data.test_path].filter((f): f is string => f !== null);
  const bytes = files.reduce((sum, f) => sum + (statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0);
  if (bytes > maxBytes) {
    return `data     not read: ${mib(bytes)} of JSONL, more than validate reads (${mib(maxBytes)}); hilo train checks every line before it starts`;
  }
  const ds = loadDataset(data, '.', seed);
  const n = (k: number) => k.toLocaleString('en-US');
  return `checked  data: ${n(ds.train.length)} train / ${n(ds.eval.length)} eval / ${n(ds.test.length)} test examples, every record read and well-formed`;
}

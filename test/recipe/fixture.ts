/** A throwaway folder with what recipes point at: a model dir, JSONL files, a plan and a probe. */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/fixtures.ts';

export function makeRecipeDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hilo-recipe-'));
  // A real model folder: `hilo validate` checks its config against the weights and reads its tokenizer.
  symlinkSync(path.join(ROOT, 'models', 'hilo-base'), path.join(dir, 'model'));
  mkdirSync(path.join(dir, 'data'));
  writeFileSync(path.join(dir, 'data', 'train.jsonl'), '{"text": "a", "label": "pos"}\n');
  writeFileSync(path.join(dir, 'data', 'eval.jsonl'), '{"text": "b", "label": "neg"}\n');
  writeFileSync(path.join(dir, 'plan.json'), '{}');
  writeFileSync(path.join(dir, 'probe.json'), '{}');
  mkdirSync(path.join(dir, 'ckpt'));
  return dir;
}

/** The smallest valid recipe against makeRecipeDir(). */
export const minimal = (): Record<string, any> => ({ model: { path: 'model' }, data: { task: 'sentiment' } });

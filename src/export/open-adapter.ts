/**
 * `--adapter DIR` of generate and score: a run folder (its adapter/, else its latest
 * checkpoint), one of its checkpoint-N folders, a hilo adapter package or a PEFT LoRA folder,
 * injected with its exact weights into the frozen base model. Mixtures run as trained (router,
 * top-k/top-p, every expert): nothing is folded as the PEFT and merged exports must.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Adapters } from '../adapters/inject.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_FORMAT, loadAdapters } from '../adapters/io.ts';
import { HiloError } from '../errors.ts';
import type { CausalLM } from '../model/types.ts';
import { loadPeftAdapter } from './peft-import.ts';
import { loadTrained, resolveSource, type ExportSource } from './source.ts';

export type AdapterSource =
  | { kind: 'run'; dir: string; run: ExportSource; base: string }
  | { kind: 'hilo' | 'peft'; dir: string; base: string | null; fingerprint: string | null };

const OPTION = '--adapter';

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HiloError(`${OPTION}: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** What kind of folder `dir` is, and the base model it names (read from small JSON files only). */
export function resolveAdapter(dir: string): AdapterSource {
  if (!fs.existsSync(dir)) throw new HiloError(`${OPTION}: ${dir} does not exist; give a run folder (runs/<name>), a hilo adapter package or a PEFT LoRA folder`);
  if (!fs.statSync(dir).isDirectory()) throw new HiloError(`${OPTION}: ${dir} is a file; give the folder that holds adapter_config.json, or a run folder`);
  const cfgFile = path.join(dir, ADAPTER_CONFIG_FILE);
  if (fs.existsSync(cfgFile)) {
    const cfg = readJson(cfgFile);
    const base = typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : null;
    if (cfg.format === ADAPTER_FORMAT) {
      const fingerprint = typeof cfg.base_model_fingerprint === 'string' ? cfg.base_model_fingerprint : null;
      return { kind: 'hilo', dir, base, fingerprint };
    }
    if (cfg.peft_type !== undefined) return { kind: 'peft', dir, base, fingerprint: null };
    throw new HiloError(`${OPTION}: ${cfgFile} is neither a hilo adapter (format "${ADAPTER_FORMAT}") nor a PEFT adapter (peft_type)`);
  }
  const isRun = (d: string) => fs.existsSync(path.join(d, 'recipe.json'));
  if (!isRun(dir) && !(/^checkpoint-\d+$/.test(path.basename(path.resolve(dir))) && isRun(path.dirname(path.resolve(dir))))) {
    throw new HiloError(`${OPTION}: ${dir} has no ${ADAPTER_CONFIG_FILE} (an adapter) and no recipe.json (a run folder); give a run folder (runs/<name>), a hilo adapter package or a PEFT LoRA folder`);
  }
  const run = resolveSource(dir, undefined, OPTION); // a run folder or a checkpoint-N inside one
  return { kind: 'run', dir: run.dir, run, base: run.recipe.model.path };
}

/** The base model an adapter was trained on, when its files say so and that folder is here. */
export function adapterBase(src: AdapterSource): string | null {
  return src.base !== null && fs.existsSync(path.join(src.base, 'config.json')) ? src.base : null;
}

/** Inject the adapter into `model` (the caller disposes it). */
export function openAdapter(model: CausalLM, src: AdapterSource): Adapters {
  if (src.kind === 'run') return loadTrained(model, src.run);
  return src.kind === 'hilo' ? loadAdapters(model, src.dir) : loadPeftAdapter(model, src.dir);
}

/** In words, for the log: `hilo adapter package adapters/x`. */
export function describeAdapter(src: AdapterSource): string {
  if (src.kind === 'run') return `${src.run.kind === 'adapter' ? 'the trained adapter' : 'checkpoint'} ${src.dir} of run ${src.run.runDir}`;
  return `${src.kind === 'hilo' ? 'hilo adapter package' : 'PEFT LoRA adapter'} ${src.dir}`;
}

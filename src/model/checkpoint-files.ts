/**
 * Where a model folder's weights are: model.safetensors, or the shards named by
 * model.safetensors.index.json (HF's sharded layout). One reader for the loader, the folder
 * check, the memory estimate and the weight-only probes, so the index is checked the same way
 * everywhere; no tensor data is read here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';

export interface CheckpointFiles {
  /** The index file, or null for a single model.safetensors. */
  indexFile: string | null;
  /** Each safetensors file (a name in `dir`, sorted) and the tensors the index puts there; null: all of the file's. */
  shards: Map<string, string[] | null>;
}

/**
 * The checkpoint files of `dir`, the index's entries checked (a file in the same folder, present);
 * null when the folder has neither model.safetensors nor an index.
 */
export function checkpointFiles(dir: string): CheckpointFiles | null {
  if (fs.existsSync(path.join(dir, 'model.safetensors'))) return { indexFile: null, shards: new Map([['model.safetensors', null]]) };
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(indexFile)) return null;
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new HiloError(`${indexFile}: not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) throw new HiloError(`${indexFile}: no "weight_map" object`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new HiloError(`${indexFile}: weight_map["${name}"] must name a shard file in the same folder; got ${JSON.stringify(shard)}`);
    }
    const names = byShard.get(shard);
    if (names) names.push(name);
    else {
      if (!fs.existsSync(path.join(dir, shard))) throw new HiloError(`${indexFile}: shard ${shard} (holding "${name}") is missing`);
      byShard.set(shard, [name]);
    }
  }
  return { indexFile, shards: new Map([...byShard].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}

/** checkpointFiles, or an error naming the folder when it has no weights at all. */
export function requireCheckpointFiles(dir: string): CheckpointFiles {
  const files = checkpointFiles(dir);
  if (!files) throw new HiloError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  return files;
}

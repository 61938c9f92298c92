/**
 * Weight matrices straight from a model directory's safetensors files, one tensor at a time, so
 * weight-only probes (alpha-hill) need neither tfjs nor the whole model in memory.
 */
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { requireCheckpointFiles } from '../model/checkpoint-files.ts';
import { readSafetensors, readSafetensorsHeader, type StDtype } from '../model/safetensors.ts';
import { familyOf } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import type { WeightMatrix } from './hill.ts';

/** The safetensors files of `dir`: model.safetensors, or the shards of its index, sorted. */
export function safetensorsFiles(dir: string): string[] {
  return [...requireCheckpointFiles(dir).shards.keys()].map((f) => path.join(dir, f));
}

/** Where one weight is stored: its safetensors file and tensor name. */
export interface StoredTensor {
  file: string;
  name: string;
}

/**
 * `locate(modulePath)` for the HF module path of an adaptable linear (e.g.
 * `model.layers.0.mlp.up_proj`, `transformer.h.0.attn.c_attn`), under every spelling the
 * family's files use (GPT-2 checkpoints often drop the `transformer.` prefix).
 */
export function checkpointTensors(dir: string, config: ModelConfig): (modulePath: string) => StoredTensor {
  const where = new Map<string, string>();
  for (const file of safetensorsFiles(dir)) {
    for (const name of readSafetensorsHeader(file).entries.keys()) where.set(name, file);
  }
  return (modulePath) => {
    const candidates = familyOf(config).storedNames(`${modulePath}.weight`);
    const name = candidates.find((n) => where.has(n));
    if (!name) throw new HiloError(`${dir}: no tensor ${candidates.map((c) => `"${c}"`).join(' or ')} for module ${modulePath}`);
    return { file: where.get(name)!, name };
  };
}

/** A weight as read: float32 values and the dtype the checkpoint stores them in. */
export interface ReadMatrix extends WeightMatrix {
  data: Float32Array;
  dtype: StDtype;
}

/** One stored linear weight, decoded to float32 (exact for bf16 and f16). */
export function readMatrix(t: StoredTensor): ReadMatrix {
  const w = readSafetensors(t.file, [t.name]).tensors.get(t.name)!;
  if (w.shape.length !== 2) {
    throw new HiloError(`${path.dirname(t.file)}: tensor "${t.name}" has shape [${w.shape.join(', ')}]; a linear weight is 2-D`);
  }
  if (!(w.data instanceof Float32Array)) {
    throw new HiloError(`${path.dirname(t.file)}: tensor "${t.name}" is ${w.dtype}; a linear weight is a floating tensor`);
  }
  return { rows: w.shape[0], cols: w.shape[1], data: w.data, dtype: w.dtype };
}

/** `matrixOf(modulePath)`: checkpointTensors then readMatrix, one tensor at a time. */
export function checkpointMatrices(dir: string, config: ModelConfig): (modulePath: string) => WeightMatrix {
  const locate = checkpointTensors(dir, config);
  return (modulePath) => readMatrix(locate(modulePath));
}

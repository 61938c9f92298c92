/**
 * Weight matrices straight from a model directory's safetensors files, one tensor at a time, so
 * weight-only probes (alpha-hill) need neither tfjs nor the whole model in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { requireCheckpointFiles } from '../model/checkpoint-files.ts';
import { readSafetensors, readSafetensorsHeader, type StDtype, type StEntry } from '../model/safetensors.ts';
import { familyOf } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import type { WeightMatrix } from './hill.ts';
import type { Scratch } from './spectrum.ts';

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

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A 2-D bf16 tensor read into the first half of its float32 buffer and widened in place, from
 * the last value down (float32 i covers bf16 slots 2i and 2i + 1, both already widened): one
 * allocation instead of the bytes and a decoded copy, and typed-array loads rather than
 * readSafetensors' slower DataView ones (docs/performance.md).
 */
function readBf16(t: StoredTensor, dataStart: number, e: StEntry, scratch?: Scratch): ReadMatrix {
  const [rows, cols] = e.shape;
  const n = rows * cols;
  const data = scratch ? scratch.f32('weight', n) : new Float32Array(n);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, 2 * n);
  const fd = fs.openSync(t.file, 'r');
  try {
    for (let at = 0; at < bytes.length;) {
      const got = fs.readSync(fd, bytes, at, Math.min(bytes.length - at, 2 ** 30), dataStart + e.offsets[0] + at);
      if (got === 0) throw new HiloError(`${t.file}: tensor "${t.name}": short read (${at} of ${bytes.length} bytes; truncated file?)`);
      at += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  const half = new Uint16Array(data.buffer, data.byteOffset, n);
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  for (let i = n - 1; i >= 0; i--) bits[i] = half[i] << 16; // bf16 is a float32's top half: exact
  return { rows, cols, data, dtype: 'BF16' };
}

/**
 * One stored linear weight, decoded to float32 (exact for bf16 and f16). With a `scratch`, a bf16
 * weight lands in its 'weight' buffer (valid until the next read into it).
 */
export function readMatrix(t: StoredTensor, scratch?: Scratch): ReadMatrix {
  const header = readSafetensorsHeader(t.file);
  const e = header.entries.get(t.name);
  if (LITTLE_ENDIAN && e?.dtype === 'BF16' && e.shape.length === 2) return readBf16(t, header.dataStart, e, scratch);
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

/**
 * Readers of config.json fields shared by the family files: each checks the value's type and
 * range and throws a HiloError naming `config.json <field>`, the value and what is allowed.
 */
import { fieldError } from '../errors.ts';

export type Raw = Record<string, unknown>;

export const ROPE_TYPES = ['default', 'linear', 'llama3'] as const;
export const ACTIVATIONS = ['silu', 'swish', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'tanh'] as const;

export function num(raw: Raw, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw fieldError(`config.json ${key}`, raw[key], fallback === undefined ? 'a number (required)' : 'a number');
  }
  return v;
}

export function int(raw: Raw, key: string, fallback?: number): number {
  const v = num(raw, key, fallback);
  if (!Number.isInteger(v) || v <= 0) throw fieldError(`config.json ${key}`, v, 'a positive integer');
  return v;
}

export function bool(raw: Raw, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'boolean') throw fieldError(`config.json ${key}`, v, 'true | false');
  return v;
}

export function tokenId(raw: Raw, key: string, fallback: number | null): number | null {
  const v = raw[key] === undefined ? fallback : raw[key];
  return typeof v === 'number' ? v : null;
}

export function eosIds(raw: Raw, fallback: number | null): number | number[] | null {
  const v = raw.eos_token_id === undefined ? fallback : raw.eos_token_id;
  if (typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'))) return v as number | number[];
  return null;
}

export function activation(raw: Raw, key: string, fallback: string): string {
  const v = raw[key] ?? fallback;
  if (!(ACTIVATIONS as readonly unknown[]).includes(v)) throw fieldError(`config.json ${key}`, v, ACTIVATIONS);
  return v as string;
}

/** Validate rope_scaling: null, or a linear / llama3 block with the fields ref_model.py reads. */
export function ropeScaling(raw: Raw): Record<string, unknown> | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw fieldError('config.json rope_scaling', rs, 'null or an object');
  const r = rs as Raw;
  const type = r.rope_type ?? r.type ?? 'default';
  if (!(ROPE_TYPES as readonly unknown[]).includes(type)) throw fieldError('config.json rope_scaling.rope_type', type, ROPE_TYPES);
  const need = type === 'linear' ? ['factor'] : type === 'llama3' ? ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'] : [];
  for (const k of need) {
    if (typeof r[k] !== 'number') throw fieldError(`config.json rope_scaling.${k}`, r[k], `a number (needed by rope_type "${type}")`);
  }
  return { ...r, rope_type: type };
}

/**
 * config.json -> ModelConfig. Each family (families.ts) maps its HF field names and defaults
 * (those of the transformers config classes) onto one vocabulary; anything the forward pass
 * would silently get wrong (an unknown architecture, an unimplemented RoPE scaling, heads that
 * do not divide) fails there, naming the config field.
 */
import { fieldError, HiloError } from '../errors.ts';
import type { Raw } from './config-fields.ts';
import { FAMILIES, familyOf, familyOfType, MODEL_TYPES } from './families.ts';
import type { ModelConfig } from './types.ts';

/** The model_type of a config, falling back to `architectures` (and to key sniffing) as HF does. */
export function modelTypeOf(raw: Raw): string {
  if (typeof raw.model_type === 'string') return raw.model_type;
  const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '';
  const byClass = Object.fromEntries(Object.values(FAMILIES).flatMap((f) => Object.entries(f.classes).map(([type, cls]) => [cls, type])));
  if (byClass[arch]) return byClass[arch];
  if (!arch) {
    const sniffed = Object.values(FAMILIES).find((f) => f.sniffKey && f.sniffKey in raw);
    return sniffed ? Object.keys(sniffed.classes)[0] : 'llama';
  }
  throw fieldError('config.json architectures', raw.architectures, Object.keys(byClass));
}

/** Normalise a parsed config.json. Throws HiloError naming the offending `config.json <field>`. */
export function normaliseConfig(rawConfig: unknown): ModelConfig {
  if (typeof rawConfig !== 'object' || rawConfig === null || Array.isArray(rawConfig)) {
    throw new HiloError('config.json: expected a JSON object');
  }
  const raw = rawConfig as Raw;
  const modelType = modelTypeOf(raw);
  const family = familyOfType(modelType);
  if (!family) throw fieldError('config.json model_type', modelType, MODEL_TYPES);
  return family.normalise(raw, modelType);
}

/** The HF config.json for `c`: the fields it was read from, updated with the normalised values. */
export const toHfConfig = (c: ModelConfig): Record<string, unknown> => familyOf(c).hfConfig(c);

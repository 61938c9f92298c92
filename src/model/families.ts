/**
 * The registry of architecture families and what the rest of hilo asks of them: module shapes
 * for planning and parameter counts (from the config alone, so models that are not on disk,
 * e.g. Llama-2-7B, can be planned), the default adapter targets, HF paths, and base parameter
 * counts. Adding an architecture is one family file and one line here. No tfjs.
 */
import { GPT2_FAMILY } from './family-gpt2.ts';
import { LLAMA_FAMILY } from './family-llama.ts';
import type { Family } from './family.ts';
import type { Arch, ModelConfig } from './types.ts';

export type { Family, ProjectionSpec, SizeKey, WeightSpec } from './family.ts';
export { isMatrix } from './family.ts';

export const FAMILIES: Readonly<Record<Arch, Family>> = { llama: LLAMA_FAMILY, gpt2: GPT2_FAMILY };

/** Every config.json model_type hilo runs. */
export const MODEL_TYPES = Object.values(FAMILIES).flatMap((f) => Object.keys(f.classes));

export const familyOf = (config: Pick<ModelConfig, 'arch'>): Family => FAMILIES[config.arch];

/** The family that reads config.json model_type `modelType`, or undefined. */
export const familyOfType = (modelType: string): Family | undefined =>
  Object.values(FAMILIES).find((f) => Object.hasOwn(f.classes, modelType));

export interface LinearShape {
  in: number;
  out: number;
}

/** Per layer: in-layer module path (e.g. `self_attn.q_proj`, `attn.c_attn`) -> shape. */
export type ModuleShapes = Array<Record<string, LinearShape>>;

/** HF path prefix of decoder layer `l`. */
export const layerPrefix = (config: Pick<ModelConfig, 'arch'>, l: number): string => familyOf(config).layerPrefix(l);

/** In-layer paths of the adaptable linears, in forward order. */
export const projectionPaths = (config: ModelConfig): string[] => familyOf(config).projections(config).map((p) => p.path);

/** The adapter targets of a recipe that names none: the family's (family.ts adapterTargets). */
export const defaultTargets = (config: Pick<ModelConfig, 'arch'>): readonly string[] => familyOf(config).adapterTargets;

/** The shape of every adaptable linear of every layer. */
export function moduleShapes(c: ModelConfig): ModuleShapes {
  const one = Object.fromEntries(familyOf(c).projections(c).map((p) => [p.path, { in: p.in, out: p.out }]));
  return Array.from({ length: c.numLayers }, () => ({ ...one }));
}

/**
 * Does target `t` (PEFT style: a short name like `q_proj` or a dotted suffix like
 * `attn.c_proj`) select the in-layer module path `path`?
 */
export function targetMatches(t: string, path: string): boolean {
  return path === t || path.endsWith(`.${t}`);
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Parameters of the base model from its config alone, for "% of base" budgets, reports and the
 * memory estimate: every weight and bias as HF stores them (tied embeddings once), and the
 * token embedding's share.
 */
export function baseParams(c: ModelConfig): { total: number; embedding: number } {
  return { total: familyOf(c).weightSpecs(c).reduce((n, s) => n + size(s.shape), 0), embedding: c.vocabSize * c.hiddenSize };
}

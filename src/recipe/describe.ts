/**
 * Reading the recipe schema as data: what a field allows, its default and its doc, so error
 * messages and `hilo validate --explain` say exactly what the declarations in schema.ts say.
 */
import type { z } from 'zod';
import { showValue } from '../errors.ts';
import { recipeSchema } from './schema.ts';

type Schema = z.ZodType;

/** The parts of zod's internal definition that describing a schema needs. */
interface Def {
  type: string;
  innerType?: Schema;
  out?: Schema;
  shape?: Record<string, Schema>;
  element?: Schema;
  valueType?: Schema;
  options?: Schema[];
  entries?: Record<string, string | number>;
  values?: unknown[];
  defaultValue?: unknown;
  checks?: Array<{ _zod: { def: CheckDef } }>;
}
interface CheckDef { check: string; format?: string; value?: number; inclusive?: boolean; minimum?: number }
interface Meta { allowed?: string; isPath?: boolean; description?: string }

const defOf = (s: Schema): Def => s._zod.def as Def;
const metaOf = (s: Schema): Meta => (s.meta() ?? {}) as Meta;

/** Wrappers that change presence or defaults but not what a value may be. */
const WRAPPERS = new Set(['default', 'prefault', 'nullable', 'optional', 'pipe']);

function inner(s: Schema): Schema {
  const d = defOf(s);
  return d.type === 'pipe' ? d.out! : d.innerType!;
}

/** The schema under every wrapper: the object, enum, number... that values are checked against. */
export function core(s: Schema): Schema {
  while (WRAPPERS.has(defOf(s).type)) s = inner(s);
  return s;
}

/** The kind of value under the wrappers: object, enum, string, number, union... */
export const coreType = (s: Schema): string => defOf(core(s)).type;

/** The field's doc: the first `.describe()` text met while unwrapping. */
export function docOf(s: Schema): string {
  for (let t = s; ; t = inner(t)) {
    const doc = metaOf(t).description;
    if (doc) return doc;
    if (!WRAPPERS.has(defOf(t).type)) return '';
  }
}

/** The declared default, or undefined when the field has none (required, or a section). */
export function defaultOf(s: Schema): { value: unknown } | undefined {
  for (let t = s; WRAPPERS.has(defOf(t).type); t = inner(t)) {
    if (defOf(t).type === 'default') return { value: defOf(t).defaultValue };
  }
  return undefined;
}

function numberText(d: Def): string {
  const checks = (d.checks ?? []).map((c) => c._zod.def);
  const isInt = checks.some((c) => c.format === 'safeint' || c.format === 'int32');
  const bounds = checks.flatMap((c) => {
    if (c.check === 'greater_than') return [`${c.inclusive ? '>=' : '>'} ${c.value}`];
    if (c.check === 'less_than') return [`${c.inclusive ? '<=' : '<'} ${c.value}`];
    return [];
  });
  return `${isInt ? 'an integer' : 'a number'}${bounds.length ? ` ${bounds.join(' and ')}` : ''}`;
}

/** What a value of this schema may be, in words: `"topk" | "topp" | "dense"`, `an integer >= 1`. */
export function allowedText(s: Schema): string {
  const given = metaOf(s).allowed;
  if (given) return given;
  const d = defOf(s);
  switch (d.type) {
    case 'nullable': return `${allowedText(d.innerType!)} or null`;
    case 'default': case 'prefault': case 'optional': case 'pipe': return allowedText(inner(s));
    case 'enum': return Object.values(d.entries!).map(showValue).join(' | ');
    case 'literal': return d.values!.map(showValue).join(' | ');
    case 'string': return 'a string';
    case 'boolean': return 'true | false';
    case 'number': return numberText(d);
    case 'array': return `a list of ${allowedText(d.element!).replace(/^an? /, '')}s`;
    case 'record': return `a map from names to ${allowedText(d.valueType!).replace(/^an? /, '')}s`;
    case 'object': return `a map with keys ${Object.keys(d.shape!).join(', ')}`;
    case 'union': return d.options!.map(allowedText).join(' or ');
    default: return d.type;
  }
}

/** Whether the field holds a filesystem path (resolved against the recipe's folder). */
export function isPathField(s: Schema): boolean {
  const c = core(s);
  if (metaOf(c).isPath) return true;
  return defOf(c).type === 'union' && defOf(c).options!.some(isPathField);
}

/** The keys of an object schema (after unwrapping), or null when it is not an object. */
export function keysOf(s: Schema): string[] | null {
  const d = defOf(core(s));
  return d.type === 'object' ? Object.keys(d.shape!) : null;
}

/** The schema a value at `path` (keys and list indices) is checked against, if any. */
export function schemaAt(path: ReadonlyArray<PropertyKey>, root: Schema = recipeSchema): Schema | undefined {
  let s: Schema | undefined = root;
  for (const key of path) {
    if (!s) return undefined;
    const d = defOf(core(s));
    if (d.type === 'object') s = d.shape![String(key)];
    else if (d.type === 'array') s = d.element;
    else if (d.type === 'record') s = d.valueType;
    else if (d.type === 'union') s = d.options!.map((o) => schemaAt([key], o)).find((x) => x !== undefined);
    else return undefined;
  }
  return s;
}

export interface FieldInfo {
  /** Dotted path from the recipe root, e.g. `adapter.rank.r`. */
  path: string;
  schema: Schema;
  /** A map of further fields (model, data, adapter.rank, adapter.budget...). */
  isSection: boolean;
}

/** Every field of the recipe, depth first in declaration order, sections before their fields. */
export function listFields(root: Schema = recipeSchema, prefix = ''): FieldInfo[] {
  const d = defOf(core(root));
  if (d.type !== 'object') return [];
  return Object.entries(d.shape!).flatMap(([key, s]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    const isSection = keysOf(s) !== null;
    return [{ path, schema: s, isSection }, ...(isSection ? listFields(s, path) : [])];
  });
}

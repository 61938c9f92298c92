/**
 * The recipe as plain data before the schema sees it: dotted-path access, aliases folded into
 * their canonical keys, and the defaults that depend on another field (a task's format,
 * alphalora's probe), which a static schema default cannot express.
 */
import { TASKS } from '../data/tasks/index.ts';
import { listFields } from './describe.ts';
import { ALIASES } from './schema.ts';
import { fieldName, problem, type Problem } from './problems.ts';

export type RawMap = Record<string, unknown>;

export const isMap = (v: unknown): v is RawMap => v !== null && typeof v === 'object' && !Array.isArray(v);

export function getAt(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const key of path) {
    if (!isMap(v) || !Object.hasOwn(v, key)) return undefined;
    v = v[key];
  }
  return v;
}

const hasAt = (obj: unknown, path: readonly string[]): boolean =>
  path.length > 0 && isMap(getAt(obj, path.slice(0, -1))) && Object.hasOwn(getAt(obj, path.slice(0, -1)) as RawMap, path.at(-1)!);

export function deleteAt(obj: unknown, path: readonly string[]): void {
  const parent = getAt(obj, path.slice(0, -1));
  if (isMap(parent)) delete parent[path.at(-1)!];
}

/**
 * Set a value, creating missing (or null) maps on the way. Returns the dotted prefix that blocks
 * the way when an intermediate value is not a map, else null.
 */
export function setAt(obj: RawMap, path: readonly string[], value: unknown): string | null {
  let v: RawMap = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const next = v[path[i]];
    if (next === undefined || next === null) v[path[i]] = {};
    else if (!isMap(next)) return path.slice(0, i + 1).join('.');
    v = v[path[i]] as RawMap;
  }
  v[path.at(-1)!] = value;
  return null;
}

/** The canonical dotted key for a key as a user may write it (`lr` -> `train.learning_rate`). */
export const canonicalKey = (dotted: string): string => ALIASES[dotted] ?? dotted;

/** Every alias of a canonical dotted key. */
export const aliasesOf = (canonical: string): string[] =>
  Object.keys(ALIASES).filter((a) => ALIASES[a] === canonical);

/** Move alias keys to their canonical place; an alias next to its canonical key is a problem. */
export function foldAliases(raw: RawMap): Problem[] {
  const problems: Problem[] = [];
  const movedFrom = new Map<string, string>();
  for (const [alias, canonical] of Object.entries(ALIASES)) {
    const from = alias.split('.');
    if (!hasAt(raw, from)) continue;
    const value = getAt(raw, from);
    deleteAt(raw, from);
    const to = canonical.split('.');
    if (hasAt(raw, to)) {
      const via = movedFrom.has(canonical) ? ` via ${fieldName(movedFrom.get(canonical)!.split('.'))}` : '';
      problems.push(problem(fieldName(from), value,
        `one spelling per setting: ${fieldName(to)} is also given${via} (${JSON.stringify(getAt(raw, to))})`));
      continue;
    }
    // A section that is not a map is reported by the schema; the alias cannot land there.
    if (setAt(raw, to, value) === null) movedFrom.set(canonical, alias);
  }
  return problems;
}

/** Defaults that depend on another field; applied only where the user left the field out. */
export function fillDerivedDefaults(raw: RawMap): void {
  const data = raw.data;
  if (isMap(data) && typeof data.task === 'string' && Object.hasOwn(TASKS, data.task) && data.format == null) {
    data.format = TASKS[data.task].format;
  }
  const adapter = raw.adapter;
  if (isMap(adapter) && adapter.method === 'alphalora' && adapter.probe === undefined) adapter.probe = 'alpha-hill';
}

/** Sections that take their defaults when left out (all but model; budget's null means "no budget"). */
const DEFAULTED_SECTIONS = listFields().filter((f) => f.isSection && f.schema.safeParse(undefined).success && !f.schema.safeParse(null).success);

/**
 * A section written as a bare `wandb:` (every line under it commented out) reads as null in YAML;
 * it means "all defaults", not an error.
 */
function dropEmptySections(raw: RawMap): void {
  for (const { path } of DEFAULTED_SECTIONS) if (getAt(raw, path.split('.')) === null) deleteAt(raw, path.split('.'));
}

/** A deep copy with aliases folded and derived defaults filled, plus the alias problems. */
export function prepareRaw(raw: unknown): { value: unknown; problems: Problem[] } {
  if (!isMap(raw)) return { value: raw, problems: [] };
  const value = structuredClone(raw);
  dropEmptySections(value);
  const problems = foldAliases(value);
  fillDerivedDefaults(value);
  return { value, problems };
}

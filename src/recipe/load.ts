/**
 * Loading a recipe: read the YAML, apply `key=value` overrides from the command line, validate
 * everything at once, then make every path absolute. Never imports tfjs, so `hilo validate`
 * stays instant.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { fieldError, HiloError } from '../errors.ts';
import { coreType, isPathField, listFields, schemaAt } from './describe.ts';
import { problem, RecipeError, type Problem } from './problems.ts';
import { aliasesOf, canonicalKey, deleteAt, getAt, isMap, prepareRaw, setAt, type RawMap } from './raw.ts';
import { recipeSchema, type Recipe } from './schema.ts';
import { validateRecipe } from './validate.ts';

export { validateRecipe } from './validate.ts';
export type { Problem } from './problems.ts';

/** Dotted keys of every path-valued field (model.path, data.train_path, ..., train.resume). */
const PATH_FIELDS = listFields().filter((f) => !f.isSection && isPathField(f.schema)).map((f) => f.path);

/** Read a recipe file as plain data; YAML syntax errors name file:line:column. */
export function readRecipeFile(file: string, cwd = process.cwd()): unknown {
  let text: string;
  try {
    text = readFileSync(path.resolve(cwd, file), 'utf8');
  } catch {
    throw fieldError('recipe', file, 'an existing YAML file');
  }
  try {
    return YAML.parse(text) ?? {};
  } catch (e) {
    const err = e as YAML.YAMLError;
    const at = err.linePos?.[0] ? `:${err.linePos[0].line}:${err.linePos[0].col}` : '';
    throw new HiloError(`${file}${at}: ${err.message.split('\n')[0]}`);
  }
}

/**
 * The value of `key=TEXT`: YAML (`3e-4`, `true`, `null`, `[q_proj, v_proj]`, `{percent: 1}`), except
 * that a string field takes the text as it is unless quoted or null, so `data.template=Review: {text}`
 * stays a string; text that is not valid YAML is kept as a string for the schema to judge.
 */
function overrideValue(key: string, text: string): unknown {
  const schema = schemaAt(key.split('.'));
  const plain = !/^\s*(null|~|["']|$)/.test(text);
  if (schema && plain && coreType(schema) === 'string') return text;
  try {
    return YAML.parse(text) ?? null;
  } catch {
    return text;
  }
}

/**
 * Apply `key=value` overrides (dotted keys, aliases allowed; values are YAML: `3e-4`, `true`,
 * `[q_proj, v_proj]`, `null`). An override replaces the key and every alias of it. Relative paths
 * given on the command line are taken from `cwd`, where the user typed them.
 */
export function applyOverrides(raw: unknown, overrides: readonly string[], cwd = process.cwd()): { value: unknown; problems: Problem[] } {
  // A recipe that is not a map at all is reported by the schema; there is nothing to override.
  if (!isMap(raw)) return { value: raw, problems: [] };
  const problems: Problem[] = [];
  const value: RawMap = structuredClone(raw);
  // canonical key -> the first override that set it, and how it spelled the key
  const setBy = new Map<string, { arg: string; spelling: string }>();
  overrides.forEach((arg, i) => {
    const eq = arg.indexOf('=');
    const spelling = eq > 0 ? arg.slice(0, eq).trim().replace(/^recipe\./, '') : '';
    const key = canonicalKey(spelling);
    if (!/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/.test(key)) {
      problems.push(problem(`override ${i + 1}`, arg, 'key=value with a dotted key, e.g. train.max_steps=100 or adapter.target_modules=[q_proj,v_proj]'));
      return;
    }
    // The same key again overrides (grids layer their overrides); two spellings of one setting
    // on one command line are a slip whose winner nobody can tell.
    const earlier = setBy.get(key);
    if (earlier && earlier.spelling !== spelling) {
      problems.push(problem(`override ${i + 1}`, arg, `one spelling per setting: ${JSON.stringify(earlier.arg)} also sets recipe.${key}`));
      return;
    }
    if (!earlier) setBy.set(key, { arg, spelling });
    let parsed = overrideValue(key, arg.slice(eq + 1));
    if (typeof parsed === 'string' && PATH_FIELDS.includes(key)) parsed = path.resolve(cwd, parsed);
    for (const alias of aliasesOf(key)) deleteAt(value, alias.split('.'));
    const blocked = setAt(value, key.split('.'), parsed);
    if (blocked) {
      problems.push(problem(`override ${i + 1}`, arg, `a key under a map, but recipe.${blocked} is ${JSON.stringify(getAt(value, blocked.split('.')))}`));
    }
  });
  return { value, problems };
}

export interface RecipeSource {
  /** Folder relative paths in the recipe are resolved against (the recipe file's folder). */
  baseDir: string;
  /** Name for messages and the default run folder (the recipe file's stem). */
  name: string;
  /** Where the default run folder `runs/<name>` goes. */
  cwd?: string;
}

/** Validate a raw recipe and resolve it: absolute paths, output_dir and data.format filled in. */
export function parseRecipe(raw: unknown, source: RecipeSource, extra: Problem[] = []): Recipe {
  const problems = [...extra, ...validateRecipe(raw, source.baseDir)];
  if (problems.length) throw new RecipeError(source.name, problems);
  const parsed = recipeSchema.parse(prepareRaw(raw).value);
  for (const field of PATH_FIELDS) {
    const keys = field.split('.');
    const v = getAt(parsed, keys);
    if (typeof v === 'string') setAt(parsed as RawMap, keys, path.resolve(source.baseDir, v));
  }
  const cwd = source.cwd ?? process.cwd();
  const outputDir = parsed.output_dir ?? path.resolve(cwd, 'runs', path.parse(source.name).name);
  // validateRecipe guarantees a format: the task's, or given with train_path.
  return { ...parsed, output_dir: outputDir, data: { ...parsed.data, format: parsed.data.format! } };
}

/** Load `file`, apply overrides, and return the resolved recipe; throws one error listing every problem. */
export function loadRecipe(file: string, overrides: readonly string[] = [], cwd = process.cwd()): Recipe {
  const { value, problems } = applyOverrides(readRecipeFile(file, cwd), overrides, cwd);
  return parseRecipe(value, { baseDir: path.dirname(path.resolve(cwd, file)), name: file, cwd }, problems);
}

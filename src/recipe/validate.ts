/**
 * validateRecipe: every problem of a recipe at once. Schema issues are re-phrased from the
 * schema itself (what the field allows), unknown keys get the closest known key, and the
 * cross-field and file checks run even when some fields were rejected (skipping only the rules
 * that read those fields).
 */
import type { z } from 'zod';
import { crossChecks } from './checks.ts';
import { allowedText, keysOf, listFields, schemaAt } from './describe.ts';
import { fieldName, problem, type Problem } from './problems.ts';
import { deleteAt, getAt, isMap, prepareRaw } from './raw.ts';
import { ALIASES, recipeSchema, type ParsedRecipe } from './schema.ts';

/**
 * Names other tools use that hilo spells differently (not accepted, only suggested), so an
 * axolotl or LLaMA-Factory user is pointed at the right field.
 */
const FOREIGN_NAMES: Record<string, string> = {
  base_model: 'model.path',
  model_name_or_path: 'model.path',
  lora_target_modules: 'adapter.target_modules',
  lora_target: 'adapter.target_modules',
  warmup_ratio: 'train.warmup_steps',
  lr_scheduler: 'train.lr_scheduler_type',
  resume_from_checkpoint: 'train.resume',
  per_device_eval_batch_size: 'train.eval_batch_size',
  sequence_len: 'data.max_length',
  cutoff_len: 'data.max_length',
  max_seq_length: 'data.max_length',
  dataset: 'data.task',
  num_experts: 'adapter.experts.per_layer',
  router: 'adapter.strategy',
  report_to: 'wandb.mode',
  wandb_project: 'wandb.project',
};

/** Edit distance (insert, delete, substitute) between two short strings. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The known dotted key an unknown key most likely meant, or null. */
export function suggestKey(parent: readonly string[], key: string): string | null {
  const lower = key.toLowerCase();
  if (FOREIGN_NAMES[lower]) return FOREIGN_NAMES[lower];
  if (ALIASES[lower]) return ALIASES[lower];
  const all = listFields().map((f) => f.path);
  const prefix = parent.length ? `${parent.join('.')}.` : '';
  // The same name in another section: `max_steps` at the top means train.max_steps. Prefer one
  // under the same parent, then the shallowest.
  const rank = (p: string) => (p.startsWith(prefix) ? 0 : 100) + p.split('.').length;
  const elsewhere = all.filter((p) => p.split('.').at(-1) === lower).sort((a, b) => rank(a) - rank(b))[0];
  if (elsewhere) return elsewhere;
  const siblings = [
    ...(keysOf(schemaAt(parent) ?? recipeSchema) ?? []),
    ...Object.keys(ALIASES).filter((a) => a.startsWith(prefix) && !a.slice(prefix.length).includes('.')).map((a) => a.slice(prefix.length)),
  ];
  // A shortened or lengthened name (max / maximum) counts as one edit away.
  const distance = (leaf: string) =>
    Math.min(leaf.length, lower.length) >= 3 && (lower.startsWith(leaf) || leaf.startsWith(lower)) ? 1 : editDistance(lower, leaf);
  const near = (cands: string[], limit: number) => cands
    .map((c) => ({ c, d: distance(c.split('.').at(-1)!) }))
    .filter(({ d }) => d <= limit)
    .sort((x, y) => x.d - y.d)[0]?.c;
  const sibling = near(siblings, Math.max(1, Math.floor(key.length / 3)));
  if (sibling) return prefix + sibling;
  return near(all, Math.min(2, Math.floor(key.length / 4))) ?? null;
}

function unknownKeyProblem(raw: unknown, parent: readonly string[], key: string): Problem {
  const guess = suggestKey(parent, key);
  const keys = keysOf(schemaAt(parent) ?? recipeSchema) ?? [];
  const hint = guess ? `; did you mean ${fieldName(guess.split('.'))}?` : '';
  return problem(fieldName([...parent, key]), getAt(raw, [...parent, key]),
    `known keys only${hint} (${fieldName(parent)} keys: ${keys.join(', ')})`);
}

function issueProblems(issue: z.core.$ZodIssue, raw: unknown): Problem[] {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => unknownKeyProblem(raw, path, k));
  const schema = schemaAt(path);
  const allowed = schema ? allowedText(schema) : issue.message;
  return [problem(fieldName(path), getAt(raw, path), allowed)];
}

/** The dotted field (from listFields) an issue path points into: `adapter.target_modules.1` -> `adapter.target_modules`. */
function fieldOf(path: readonly string[]): string {
  const known = new Set(listFields().map((f) => f.path));
  for (let n = path.length; n > 0; n--) if (known.has(path.slice(0, n).join('.'))) return path.slice(0, n).join('.');
  return '';
}

/**
 * Parse with every rejected field removed so it takes its default (a missing model gets a
 * placeholder), for the cross-field rules; returns the rejected fields so rules reading them skip.
 */
function parseDespiteIssues(value: unknown): { recipe: ParsedRecipe; invalid: string[] } | null {
  if (!isMap(value)) return null;
  const v = structuredClone(value);
  const invalid: string[] = [];
  if (!recipeSchema.shape.model.safeParse(v.model).success) {
    v.model = { path: '.' };
    invalid.push('model');
  }
  // Each round removes the fields the last one rejected; nested defaults can expose one more level.
  for (let round = 0; round < 4; round++) {
    const r = recipeSchema.safeParse(v);
    if (r.success) return { recipe: r.data, invalid };
    for (const issue of r.error.issues) {
      const path = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) deleteAt(v, [...path, k]);
        continue;
      }
      const field = fieldOf(path);
      if (!field) return null;
      invalid.push(field);
      deleteAt(v, field.split('.'));
    }
  }
  return null;
}

/**
 * Every problem of a raw recipe (as read from YAML, overrides applied). Relative paths are
 * checked against `baseDir`, the recipe file's folder. An empty list means it loads.
 */
export function validateRecipe(raw: unknown, baseDir: string): Problem[] {
  const { value, problems } = prepareRaw(raw);
  const parsed = recipeSchema.safeParse(value);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((i) => issueProblems(i, value)));
  const checkable = parsed.success ? { recipe: parsed.data, invalid: [] } : parseDespiteIssues(value);
  if (checkable) problems.push(...crossChecks(checkable.recipe, baseDir, checkable.invalid));
  const seen = new Set<string>();
  return problems.filter((p) => !seen.has(p.message) && seen.add(p.message));
}

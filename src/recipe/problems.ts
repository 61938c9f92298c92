/**
 * A problem is one thing wrong with a recipe, phrased like every user error in hilo:
 * `recipe.adapter.strategy: got "topK"; allowed: "topk" | "topp" | "dense"`. Validation collects
 * all of them so a user fixes a recipe in one pass; loading throws them together as one error.
 */
import { fieldError, HiloError } from '../errors.ts';

export interface Problem {
  /** Dotted field path from the recipe root, e.g. `recipe.adapter.strategy`. */
  field: string;
  /** The value given (undefined when the field is missing). */
  value: unknown;
  /** What would be accepted, in words. */
  allowed: string;
  /** `field: got VALUE; allowed: ALLOWED`. */
  message: string;
}

export function problem(field: string, value: unknown, allowed: string): Problem {
  return { field, value, allowed, message: fieldError(field, value, allowed).message };
}

/** Every problem of one recipe, thrown by loadRecipe. */
export class RecipeError extends HiloError {
  constructor(readonly source: string, readonly problems: Problem[]) {
    const n = problems.length;
    super(`${source}: ${n} problem${n === 1 ? '' : 's'}\n${problems.map((p) => `  ${p.message}`).join('\n')}`);
    this.name = 'RecipeError';
  }
}

/** `recipe.a.b` for a path of keys. */
export const fieldName = (path: ReadonlyArray<PropertyKey>): string =>
  ['recipe', ...path.map(String)].join('.');

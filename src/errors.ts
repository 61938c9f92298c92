/**
 * Errors a user can cause. Every message names the field, the value given and what is
 * allowed, e.g. `recipe.adapter.strategy: got "topK"; allowed: "topk" | "topp" | "dense"`.
 */
export class HiloError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HiloError';
  }
}

/** Quote a value the way error messages show it: strings in double quotes, the rest as JSON. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'nothing';
  try {
    const s = JSON.stringify(value);
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
  } catch {
    return String(value);
  }
}

/** `field: got VALUE; allowed: ALLOWED` as a HiloError. `allowed` is a list of choices or a phrase. */
export function fieldError(field: string, value: unknown, allowed: readonly unknown[] | string): HiloError {
  const what = typeof allowed === 'string' ? allowed : allowed.map(showValue).join(' | ');
  return new HiloError(`${field}: got ${showValue(value)}; allowed: ${what}`);
}

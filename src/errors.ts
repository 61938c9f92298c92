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

/** What the file-system error codes a user meets mean, and what to do about each. */
const FILE_ERRORS: Record<string, [meaning: string, advice: string]> = {
  ENOSPC: ['no space left on the device: the disk is full', 'free some space or choose an output_dir on another disk'],
  EDQUOT: ['the disk quota is used up', 'free some space or choose an output_dir on another disk'],
  EROFS: ['the file system is read-only', 'choose an output_dir you can write to'],
  EACCES: ['permission denied', 'choose an output_dir you can write to'],
  EPERM: ['operation not permitted', 'choose an output_dir you can write to'],
  ENOTDIR: ['a part of the path is a file, not a folder', 'choose an output_dir in a folder'],
  EISDIR: ['it is a folder, not a file', 'remove or rename that folder'],
  EMFILE: ['too many open files', 'raise the limit (ulimit -n)'],
  EIO: ['an input/output error of the device', 'check the disk'],
};

/**
 * A file-system error (ENOSPC, EACCES, ...) as a sentence naming the file and what the code
 * means, or null when `e` is not one. Node names no file for a failed write(2), so the caller
 * says which file it was writing.
 */
export function fileError(e: unknown, file?: string, doing = 'write'): HiloError | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (!code || !Object.hasOwn(FILE_ERRORS, code)) return null;
  const [meaning, advice] = FILE_ERRORS[code];
  const where = file ?? (e as NodeJS.ErrnoException).path ?? 'a file';
  return new HiloError(`cannot ${doing} ${where}: ${meaning} (${code}); ${advice}`);
}

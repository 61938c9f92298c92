/**
 * JSONL reading that refuses bad data before a run starts: every malformed line is reported as
 * `file:line: reason` (1-based lines, as editors show them), all files are checked, and one
 * HiloError lists the first MAX_SHOWN problems plus how many more there are.
 */
import { readFileSync } from 'node:fs';
import { HiloError } from '../errors.ts';
import { checkRecord, isBad, type Example, type RecordRules } from './formats.ts';

export const MAX_SHOWN = 20;

export interface ParsedFile {
  examples: Example[];
  /** `file:line: reason`, one per problem. */
  problems: string[];
}

/**
 * Check JSONL text; blank lines are skipped. `file` is only used in the messages; `badLines`
 * (1-based line -> problem) were found before parsing (see decodeJsonl) and are reported in order.
 */
export function parseJsonl(text: string, file: string, rules: RecordRules, badLines: ReadonlyMap<number, string> = new Map()): ParsedFile {
  const examples: Example[] = [];
  const problems: string[] = [];
  // A UTF-8 byte-order mark (some editors write one) is not part of the first record.
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const bad = badLines.get(i + 1);
    if (bad) {
      problems.push(bad);
      continue;
    }
    const line = lines[i].replace(/\r$/, '');
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      problems.push(`${file}:${i + 1}: bad JSON (${(e as Error).message})`);
      continue;
    }
    const checked = checkRecord(value, rules);
    if (isBad(checked)) for (const reason of checked.errors) problems.push(`${file}:${i + 1}: ${reason}`);
    else examples.push(checked);
  }
  if (examples.length === 0 && problems.length === 0) problems.push(`${file}: no records (the file is empty)`);
  return { examples, problems };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');

/**
 * JSONL bytes as text. Bytes that are not UTF-8 (a Latin-1 or Windows-1252 export) would
 * otherwise become U+FFFD silently and train on garbage: each such line is a problem and
 * is left blank, so the other lines are still checked and line numbers stay right.
 */
export function decodeJsonl(bytes: Uint8Array, file: string): { text: string; badLines: Map<number, string> } {
  try {
    return { text: strictUtf8.decode(bytes), badLines: new Map() };
  } catch {
    const lines: string[] = [];
    const badLines = new Map<number, string>();
    let start = 0;
    while (start <= bytes.length) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const line = bytes.subarray(start, end);
      try {
        lines.push(strictUtf8.decode(line));
      } catch {
        const column = lenientUtf8.decode(line).indexOf('\uFFFD') + 1;
        badLines.set(lines.length + 1, `${file}:${lines.length + 1}: not UTF-8 text (an invalid byte at column ${column}); save the file as UTF-8`);
        lines.push('');
      }
      start = end + 1;
    }
    return { text: lines.join('\n'), badLines };
  }
}

/** Read and check one JSONL file; a missing file is a problem like any other. */
export function readJsonl(file: string, rules: RecordRules): ParsedFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return { examples: [], problems: [`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`] };
  }
  const { text, badLines } = decodeJsonl(bytes, file);
  return parseJsonl(text, file, rules, badLines);
}

/** Throw one HiloError for all problems (capped), or return quietly when there are none. */
export function throwIfProblems(problems: readonly string[], what = 'data'): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, MAX_SHOWN).map((p) => `  ${p}`);
  if (problems.length > MAX_SHOWN) shown.push(`  ... and ${problems.length - MAX_SHOWN} more`);
  throw new HiloError(`${what}: ${problems.length} problem${problems.length === 1 ? '' : 's'}; fix them before training:\n${shown.join('\n')}`);
}

/**
 * Where an export lands, safely: everything is written to a temporary sibling folder and renamed
 * into place at the end, so a failed export leaves no half-written folder and never touches an
 * existing one. A folder that already holds a different export is refused unless --force; an
 * identical one (same files, same bytes) is left as it is.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';

/** What made an export: compared before writing over a folder. */
export interface Provenance {
  format: string;
  /** The run's adapter folder or checkpoint folder (or the imported PEFT folder). */
  source: string;
}

/** Where each format keeps its provenance: a key of adapter_config.json, or hilo_export.json (merged models). */
export const PROVENANCE_FILE = 'hilo_export.json';

export function readProvenance(dir: string): Provenance | null {
  for (const [file, key] of [['adapter_config.json', 'hilo_export'], [PROVENANCE_FILE, null]] as const) {
    const f = path.join(dir, file);
    if (!fs.existsSync(f)) continue;
    try {
      const j = JSON.parse(fs.readFileSync(f, 'utf8'));
      const p = key ? j[key] : j;
      if (p && typeof p.format === 'string' && typeof p.source === 'string') return { format: p.format, source: p.source };
    } catch {
      return null;
    }
  }
  return null;
}

function isEmptyDir(dir: string): boolean {
  return !fs.existsSync(dir) || (fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length === 0);
}

function refuse(out: string, why: string): HiloError {
  return new HiloError(`export: ${out} already holds ${why}; nothing was changed. Pass --force to replace it, or --out another folder`);
}

/** Fail early (before any work) when `out` holds something this export would not reproduce. */
export function checkOutDir(out: string, want: Provenance, force: boolean): void {
  if (isEmptyDir(out) || force) return;
  if (!fs.statSync(out).isDirectory()) throw refuse(out, 'a file');
  const have = readProvenance(out);
  if (!have) throw refuse(out, 'files that are not a hilo export');
  if (have.format !== want.format || have.source !== want.source) {
    throw refuse(out, `a different export (${have.format} from ${have.source})`);
  }
}

/**
 * A fresh temporary folder next to `out` (same file system, so the final rename is atomic),
 * made by mkdir so the export gets the modes the user's umask gives (mkdtemp's are 0700).
 */
export function tempDirFor(out: string): string {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  for (;;) {
    const tmp = path.join(path.dirname(out), `.${path.basename(out)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.mkdirSync(tmp); // fails on a name already taken: never shares a folder with another export
      return tmp;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function sameFiles(a: string, b: string): boolean {
  const names = (d: string) => fs.readdirSync(d).sort();
  const na = names(a);
  const nb = names(b);
  if (na.join('\n') !== nb.join('\n')) return false;
  return na.every((n) => {
    const [fa, fb] = [path.join(a, n), path.join(b, n)];
    if (fs.statSync(fa).isDirectory() || fs.statSync(fb).isDirectory()) return false;
    return fs.readFileSync(fa).equals(fs.readFileSync(fb));
  });
}

/**
 * Move the finished `tmp` to `out`. Returns 'written', 'replaced' (--force) or 'unchanged' (out
 * already held these exact bytes). A different existing export is refused without --force.
 */
export function commitOutDir(tmp: string, out: string, force: boolean): 'written' | 'replaced' | 'unchanged' {
  try {
    if (isEmptyDir(out)) {
      fs.rmSync(out, { recursive: true, force: true });
      fs.renameSync(tmp, out);
      return 'written';
    }
    if (fs.statSync(out).isDirectory() && sameFiles(tmp, out)) {
      fs.rmSync(tmp, { recursive: true, force: true });
      return 'unchanged';
    }
    if (!force) throw refuse(out, 'a different export (same source, other contents: retrained, or other options)');
    const old = `${tmp}.old`;
    fs.renameSync(out, old);
    try {
      fs.renameSync(tmp, out);
    } catch (e) {
      fs.renameSync(old, out); // put the previous export back
      throw e;
    }
    fs.rmSync(old, { recursive: true, force: true });
    return 'replaced';
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

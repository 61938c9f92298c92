/**
 * Every import in src/ must be one docs/architecture.md's `layering` block allows: a stage may
 * import itself, the shared root files and the stages listed for it. Crossings still in the code
 * are listed in KNOWN_BREAKS with their reason; an entry that no longer occurs fails too, so
 * the list only shrinks.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'src');

/** `importer file -> stage` for each crossing the docs do not allow yet, with its reason. */
const KNOWN_BREAKS: Record<string, string> = {};

interface Rules {
  allowed: Map<string, Set<string>>;
}

/** The `layering` block of docs/architecture.md: `stage: allowed stages`. */
function readRules(): Rules {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/architecture.md'), 'utf8');
  const block = /```layering\n([\s\S]*?)```/.exec(doc);
  if (!block) throw new Error('docs/architecture.md has no ```layering block');
  const allowed = new Map<string, Set<string>>();
  for (const line of block[1].split('\n').map((l) => l.trim()).filter(Boolean)) {
    const m = /^([\w-]+):\s*(.*)$/.exec(line);
    if (!m) throw new Error(`docs/architecture.md layering: cannot read "${line}"`);
    allowed.set(m[1], new Set([m[1], 'root', ...m[2].split(/\s+/).filter(Boolean)]));
  }
  return { allowed };
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** Relative specifiers of every static, re-export and dynamic import in `text`. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const patterns = [/\b(?:import|export)\s[^;]*?\sfrom\s*['"](\.[^'"]+)['"]/g, /\bimport\s*['"](\.[^'"]+)['"]/g, /\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/** The stage of a path relative to src/: its first folder, or `root` for files directly in src/. */
const stageOf = (rel: string) => (rel.includes('/') ? rel.split('/')[0] : 'root');

function crossings(): Array<{ edge: string; from: string; to: string }> {
  const out: Array<{ edge: string; from: string; to: string }> = [];
  for (const file of sourceFiles(SRC)) {
    const rel = path.relative(SRC, file);
    for (const spec of importsOf(fs.readFileSync(file, 'utf8'))) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) continue; // outside src/ (package.json and the like)
      out.push({ edge: `${rel} -> ${stageOf(target)}`, from: stageOf(rel), to: stageOf(target) });
    }
  }
  return out;
}

describe('layering (docs/architecture.md)', () => {
  const { allowed } = readRules();
  const edges = crossings();

  it('the import scanner sees static, type, re-export, side-effect and dynamic imports', () => {
    const text = "import a from './a.ts';\nimport type { B } from '../b.ts';\nexport { c } from './c.ts';\nimport './d.ts';\nconst e = await import('../e/f.ts');\nimport x from 'zod';";
    expect(importsOf(text)).toEqual(['./a.ts', '../b.ts', './c.ts', './d.ts', '../e/f.ts']);
  });

  it('names every stage folder of src/', () => {
    const folders = fs.readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.filter((f) => !allowed.has(f))).toEqual([]);
  });

  it('every import in src/ is allowed (or a known break)', () => {
    const bad = edges.filter((e) => !allowed.get(e.from)!.has(e.to) && !(e.edge in KNOWN_BREAKS)).map((e) => e.edge);
    // each entry: importer -> the stage it may not import; fix the import or, with a reason, list it
    expect(bad).toEqual([]);
  });

  it('every known break still occurs (remove fixed ones from the list)', () => {
    const seen = new Set(edges.map((e) => e.edge));
    expect(Object.keys(KNOWN_BREAKS).filter((k) => !seen.has(k))).toEqual([]);
  });
});

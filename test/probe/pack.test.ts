// The alpha-hill workers start from a file of their own (spectrum-boot.mjs) that nothing imports
// statically: a package that left it, or anything it loads, out would fail only on big models,
// when the workers start. npm's own file list is checked against what the workers load.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/fixtures.ts';

/** Every repository file `entry` loads through relative imports, itself included (paths from ROOT). */
function relativeImports(entry: string): string[] {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      walk(path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), m[1])));
    }
  };
  walk(entry);
  return [...seen].sort();
}

describe('npm pack carries what the alpha-hill workers load', () => {
  it('spectrum-boot.mjs, the worker and every file they import; tsx (the boot file\'s loader) is a dependency', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const packed = new Set((JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path));
    const needed = relativeImports('src/probe/spectrum-boot.mjs');
    // the walk itself found the chain: boot -> worker -> the fit -> LAPACK's binding
    expect(needed).toEqual(expect.arrayContaining(['src/probe/spectrum-boot.mjs', 'src/probe/spectrum-worker.ts', 'src/probe/alpha-hill-dir.ts', 'src/probe/spectrum.ts', 'src/backend/lapack.ts', 'src/backend/blas.ts']));
    expect(needed.filter((f) => !packed.has(f))).toEqual([]);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies).toHaveProperty('tsx');
    expect(fs.readFileSync(path.join(ROOT, 'src/probe/alpha-hill-dir.ts'), 'utf8')).toContain("new URL('./spectrum-boot.mjs', import.meta.url)");
  }, 180_000);
});

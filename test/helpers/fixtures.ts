/**
 * Where the tests' committed fixtures are: found from this file, not from the working
 * directory, and all inside the repository, so a fresh clone with nothing beside it passes.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A path under test/fixtures/. */
export const fixture = (...parts: string[]): string => path.join(ROOT, 'test/fixtures', ...parts);

/** stories260K: a real pretrained TinyStories Llama (260K parameters, MIT; provenance in its README). */
export const STORIES260K = fixture('models/stories260K');

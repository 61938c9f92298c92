import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cachedProbe, probeCacheDir, probeCacheFile } from '../../src/probe/cache.ts';
import { modelFingerprint } from '../../src/probe/fingerprint.ts';
import { probeForRecipe } from '../../src/probe/for-recipe.ts';
import { readModelConfig } from '../../src/model/load.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-probe-cache-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { HILO_PROBE_CACHE: path.join(tmp, 'cache') };

function recipe(model: string, outputDir: string): ReturnType<typeof loadRecipe> {
  const file = path.join(tmp, `r${fs.readdirSync(tmp).length}.yaml`);
  fs.writeFileSync(file, `model: {path: ${model}}\noutput_dir: ${outputDir}\ndata: {task: sentiment}\nadapter: {method: hilo, probe: alpha-hill}\n`);
  return loadRecipe(file);
}

/** stories260K with every weight byte at `at` flipped: same config, header and size, other values. */
function alteredWeights(at: number): string {
  const dir = path.join(tmp, `altered-${at}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(MODEL, 'config.json'), path.join(dir, 'config.json'));
  const bytes = fs.readFileSync(path.join(MODEL, 'model.safetensors'));
  bytes[bytes.length - at] ^= 0x40;
  fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
  return dir;
}

describe('probe cache', () => {
  it.each([
    [{}, path.join(os.homedir(), '.cache', 'hilo', 'probes')],
    [{ XDG_CACHE_HOME: '/x/cache' }, '/x/cache/hilo/probes'],
    [{ HILO_PROBE_CACHE: '/y/probes', XDG_CACHE_HOME: '/x/cache' }, '/y/probes'],
    [{ HILO_PROBE_CACHE: 'off' }, null],
  ])('%j -> %s', (e, want) => expect(probeCacheDir(e)).toBe(want));

  it('a second run dir reuses the first one\'s measurement; another model does not', async () => {
    const silent = { env, onProgress: null };
    const a = await probeForRecipe(recipe(MODEL, path.join(tmp, 'run-a')), silent);
    expect(a.reused).toBe(false);
    expect(a.cache).toBe(probeCacheFile(env.HILO_PROBE_CACHE, 'alpha-hill', a.result.fingerprint, a.result.settings));
    expect(fs.existsSync(a.cache!)).toBe(true);

    const b = await probeForRecipe(recipe(MODEL, path.join(tmp, 'run-b')), silent);
    expect(b).toEqual({ result: a.result, file: path.join(tmp, 'run-b', 'probe.json'), reused: true, cache: a.cache });
    expect(JSON.parse(fs.readFileSync(b.file, 'utf8'))).toEqual(a.result); // run-b has its own probe.json now

    const other = alteredWeights(100);
    const c = await probeForRecipe(recipe(other, path.join(tmp, 'run-c')), silent);
    expect(c.reused).toBe(false);
    expect(c.cache).not.toBe(a.cache);

    const off = await probeForRecipe(recipe(MODEL, path.join(tmp, 'run-d')), { env: { HILO_PROBE_CACHE: 'off' }, onProgress: null });
    expect(off).toMatchObject({ reused: false, cache: null });
  });

  it('a broken cache entry is a miss, not an error', () => {
    const config = readModelConfig(MODEL);
    const fp = modelFingerprint(MODEL);
    const settings = { evals_thresh: 1e-5, xmin_candidates: 'all eigenvalues but the largest', layer_score: 'mean over the layer linears' };
    const file = probeCacheFile(env.HILO_PROBE_CACHE, 'alpha-hill', fp, settings);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{');
    expect(cachedProbe('alpha-hill', { config, dir: MODEL }, fp, {}, env)).toBeNull();
  });

  it('the fingerprint tells apart weights that share config, header and size', () => {
    const fp = modelFingerprint(MODEL);
    expect(modelFingerprint(alteredWeights(100))).not.toBe(fp);
    expect(modelFingerprint(alteredWeights(4000))).not.toBe(fp);
  });
});

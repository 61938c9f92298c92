/**
 * A probe cache shared by every run on a machine, keyed by model fingerprint, kind and settings:
 * `plan`, `train` and each cell of `compare` (all with their own output_dir) measure a model once.
 *
 * HILO_PROBE_CACHE: unset = $XDG_CACHE_HOME/hilo/probes (else ~/.cache/hilo/probes); `off` = no
 * cache; anything else = that folder. Entries are probe.json files, checked as output_dir's are
 * (run.ts's reusableProbe) before use, so a stale or foreign entry is measured again.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { canonical, probeSettings, reusableProbe, writeProbeFile, type ProbeModel, type ProbeOptions } from './run.ts';
import type { ProbeKind, ProbeResult } from './types.ts';

export function probeCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = env.HILO_PROBE_CACHE?.trim();
  if (set === 'off') return null;
  if (set) return path.resolve(set);
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'hilo', 'probes');
}

/** <dir>/<kind>-<first 24 hex of sha256(fingerprint, settings)>.json */
export function probeCacheFile(dir: string, kind: ProbeKind, fingerprint: string, settings: Record<string, unknown>): string {
  const key = createHash('sha256').update(`${fingerprint}\n${canonical(settings)}`).digest('hex').slice(0, 24);
  return path.join(dir, `${kind}-${key}.json`);
}

/** The cached probe of `model` if there is one that matches, with its file. */
export function cachedProbe(
  kind: ProbeKind, model: ProbeModel, fingerprint: string, opts: ProbeOptions = {}, env: NodeJS.ProcessEnv = process.env,
): { result: ProbeResult; file: string } | null {
  const dir = probeCacheDir(env);
  if (!dir) return null;
  const file = probeCacheFile(dir, kind, fingerprint, probeSettings(kind, model.config, opts));
  try {
    const result = reusableProbe(file, kind, model, opts);
    return result ? { result, file } : null;
  } catch {
    return null; // an unreadable entry is a miss; measuring again rewrites it
  }
}

/** Save `result` for later runs; returns the file, or null with the cache off. */
export function cacheProbe(result: ProbeResult, env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = probeCacheDir(env);
  if (!dir) return null;
  const file = probeCacheFile(dir, result.kind, result.fingerprint, result.settings);
  writeProbeFile(file, result);
  return file;
}

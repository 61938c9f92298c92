/**
 * W&B settings: the recipe's `wandb:` section merged with the WANDB_* environment (env wins,
 * as with the official clients), the API key from WANDB_API_KEY or ~/.netrc, and the URLs
 * derived from WANDB_BASE_URL. Pure apart from reading the netrc file.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { fieldError } from '../../errors.ts';

export const WANDB_MODES = ['online', 'offline', 'disabled'] as const;
export type WandbMode = (typeof WANDB_MODES)[number];

/** The recipe's `wandb:` section as the recipe stage hands it over (snake_case, nulls allowed). */
export interface WandbRecipeSection {
  mode?: string | null;
  project?: string | null;
  entity?: string | null;
  name?: string | null;
  group?: string | null;
  tags?: readonly string[] | null;
  notes?: string | null;
}

export interface WandbSettings {
  mode: WandbMode;
  /** null only when mode is not online (offline runs need no key until `hilo wandb sync`). */
  apiKey: string | null;
  /** API origin, no trailing slash, e.g. https://api.wandb.ai */
  baseUrl: string;
  /** UI origin the run URL is built on, e.g. https://wandb.ai */
  appUrl: string;
  project: string;
  /** null: the key's default entity, asked from the server (Viewer query). */
  entity: string | null;
  /** Display name; null lets the server invent one ("dandy-sun-3"). */
  name: string | null;
  /** Run id; null: a fresh 8-char id (or the one already in the run folder when resuming). */
  runId: string | null;
  group: string | null;
  tags: string[];
  notes: string | null;
  jobType: string;
  /** WANDB_DIR: where the local queue lives instead of RUN_DIR/wandb. */
  dir: string | null;
}

export type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_BASE_URL = 'https://api.wandb.ai';
/** W&B rejects these in project and entity names. */
const NAME_RE = /^[^/\\#?%:\s][^/\\#?%:]{0,127}$/;
const RUN_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Resolve settings; throws a fieldError naming the env variable or recipe field at fault. */
export function resolveWandbSettings(
  section: WandbRecipeSection | null | undefined,
  env: Env = process.env,
  home: string = homedir(),
): WandbSettings {
  const s = section ?? {};
  // The env variable wins; the error names whichever source the value came from.
  const pick = (envName: string, field: keyof WandbRecipeSection): [unknown, string] => {
    const e = env[envName];
    if (e !== undefined && e !== '') return [e, envName];
    const r = s[field];
    return [r === '' || r === undefined ? null : r, `recipe.wandb.${field}`];
  };

  const [modeRaw, modeField] = pick('WANDB_MODE', 'mode');
  const mode = (modeRaw ?? 'disabled') as WandbMode;
  if (!WANDB_MODES.includes(mode)) throw fieldError(modeField, modeRaw, WANDB_MODES);

  const baseRaw = (env.WANDB_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, '');
  let base: URL;
  try {
    base = new URL(baseRaw);
  } catch {
    throw fieldError('WANDB_BASE_URL', env.WANDB_BASE_URL, 'an http(s) URL such as "https://api.wandb.ai"');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw fieldError('WANDB_BASE_URL', env.WANDB_BASE_URL, 'an http(s) URL such as "https://api.wandb.ai"');
  }

  const named = (envName: string, field: keyof WandbRecipeSection, re: RegExp, what: string) => {
    const [v, where] = pick(envName, field);
    if (v !== null && (typeof v !== 'string' || !re.test(v))) throw fieldError(where, v, what);
    return v as string | null;
  };
  const project = named('WANDB_PROJECT', 'project', NAME_RE, 'a W&B project name (1-128 chars, none of / \\ # ? % :)');
  const entity = named('WANDB_ENTITY', 'entity', NAME_RE, 'a W&B user or team name (none of / \\ # ? % :)');
  const runId = env.WANDB_RUN_ID || null;
  if (runId !== null && !RUN_ID_RE.test(runId)) throw fieldError('WANDB_RUN_ID', runId, '1-64 of A-Z a-z 0-9 _ . -');
  const text = (envName: string, field: keyof WandbRecipeSection) => {
    const [v, where] = pick(envName, field);
    if (v !== null && typeof v !== 'string') throw fieldError(where, v, 'a string or null');
    return v as string | null;
  };

  const apiKey = env.WANDB_API_KEY || netrcApiKey(base, env, home);
  if (mode === 'online' && !apiKey) {
    throw fieldError('WANDB_API_KEY', undefined,
      `a key from ${appUrlFor(base.origin, env)}/authorize (or "machine ${base.hostname} login user password KEY" in ~/.netrc), ` +
      'or WANDB_MODE=offline and `hilo wandb sync RUN_DIR` later');
  }

  return {
    mode,
    apiKey: apiKey || null,
    baseUrl: base.origin + base.pathname.replace(/\/+$/, ''),
    appUrl: appUrlFor(baseRaw, env),
    project: project ?? 'hilo', // the recipe schema documents this default
    entity,
    name: text('WANDB_NAME', 'name'),
    runId,
    group: text('WANDB_RUN_GROUP', 'group'),
    tags: resolveTags(env.WANDB_TAGS, s.tags),
    notes: text('WANDB_NOTES', 'notes'),
    jobType: env.WANDB_JOB_TYPE || 'train',
    dir: env.WANDB_DIR || null,
  };
}

/** WANDB_TAGS is comma-separated; W&B limits a tag to 64 characters. */
function resolveTags(envTags: string | undefined, recipeTags: readonly string[] | null | undefined): string[] {
  const fromEnv = envTags !== undefined && envTags !== '';
  const tags = fromEnv ? envTags.split(',').map((t) => t.trim()).filter((t) => t !== '') : [...(recipeTags ?? [])];
  for (const t of tags) {
    if (typeof t !== 'string' || t.length === 0 || t.length > 64) {
      throw fieldError(fromEnv ? 'WANDB_TAGS' : 'recipe.wandb.tags', t, 'tags of 1-64 characters');
    }
  }
  return tags;
}

/** The UI origin for an API origin, as wandb's `app_url`: api.wandb.ai -> wandb.ai, api.X -> app.X. */
export function appUrlFor(baseUrl: string, env: Env = {}): string {
  if (env.WANDB_APP_URL) return env.WANDB_APP_URL.replace(/\/+$/, '');
  const b = baseUrl.replace(/\/+$/, '');
  if (b.includes('://api.wandb.test')) return b.replace('://api.', '://app.');
  if (b.includes('://api.wandb.')) return b.replace('://api.', '://');
  if (b.includes('://api.')) return b.replace('://api.', '://app.');
  return b; // self-hosted servers serve UI and API from one origin
}

export function runUrl(appUrl: string, entity: string, project: string, runId: string): string {
  return `${appUrl}/${encodeURIComponent(entity)}/${encodeURIComponent(project)}/runs/${encodeURIComponent(runId)}`;
}

/** 8 random lowercase base-36 characters, like wandb's `generate_id`. */
export function newRunId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  for (let i = 0; i < 8; i++) id += alphabet[randomInt(36)];
  return id;
}

export interface NetrcEntry {
  login: string | null;
  password: string | null;
}

/**
 * Parse a .netrc: whitespace-separated tokens `machine H login L password P`, a `default`
 * entry, `account` (ignored) and `macdef NAME` bodies that run to the next blank line.
 * Returns machine name -> entry; `default` is stored under the empty string.
 */
export function parseNetrc(text: string): Map<string, NetrcEntry> {
  const out = new Map<string, NetrcEntry>();
  // macdef bodies end at an empty line; drop them before tokenising.
  const cleaned = text.replace(/(^|\s)macdef\s+\S+[^\n]*\n(?:[^\n]+\n?)*/g, '$1');
  const tokens = cleaned.split(/\s+/).filter((t) => t !== '' && !t.startsWith('#'));
  let current: NetrcEntry | null = null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === 'machine' && i + 1 < tokens.length) {
      current = { login: null, password: null };
      out.set(tokens[++i], current);
    } else if (t === 'default') {
      current = { login: null, password: null };
      out.set('', current);
    } else if (current && (t === 'login' || t === 'password' || t === 'account') && i + 1 < tokens.length) {
      const v = tokens[++i];
      if (t === 'login') current.login = v;
      if (t === 'password') current.password = v;
    }
  }
  return out;
}

/** The key stored for the base URL's host (host:port first, then the bare host, then `default`). */
export function netrcApiKey(base: URL, env: Env, home: string): string | null {
  const file = env.NETRC || join(home, process.platform === 'win32' ? '_netrc' : '.netrc');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const entries = parseNetrc(text);
  for (const host of [base.host, base.hostname, '']) {
    const p = entries.get(host)?.password;
    if (p) return p;
  }
  return null;
}

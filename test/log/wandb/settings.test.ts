/** Settings: env over recipe, netrc lookup by the base URL's host, URLs, and errors that name the source. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appUrlFor, newRunId, parseNetrc, resolveWandbSettings, runUrl, type Env, type WandbRecipeSection } from '../../../src/log/wandb/settings.ts';
import { backoffMs, isRetryableStatus, retryDelayMs, serverWaitMs } from '../../../src/log/wandb/retry.ts';
import { fromWandbJson, toWandbJson, encodeMetric, wrapConfig } from '../../../src/log/wandb/encode.ts';

const home = mkdtempSync(join(tmpdir(), 'hilo-wandb-home-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const KEY = 'k'.repeat(40);

describe('parseNetrc', () => {
  it.each([
    ['machine api.wandb.ai login user password abc', 'api.wandb.ai', { login: 'user', password: 'abc' }],
    ['machine a login x password 1\nmachine api.wandb.ai\n  login user\n  password xyz\n', 'api.wandb.ai', { login: 'user', password: 'xyz' }],
    ['machine localhost:8080 login u password p1 machine localhost password p2', 'localhost:8080', { login: 'u', password: 'p1' }],
    ['macdef init\ncd /tmp\nmachine evil password no\n\nmachine api.wandb.ai password good', 'api.wandb.ai', { login: null, password: 'good' }],
    ['default login anon password dflt', '', { login: 'anon', password: 'dflt' }],
  ])('%j -> %s', (text, host, entry) => {
    expect(parseNetrc(text).get(host)).toEqual(entry);
  });

  it('macdef bodies are not read as entries', () => {
    expect(parseNetrc('macdef init\ncd /tmp\nmachine evil password no\n\nmachine a password b').has('evil')).toBe(false);
  });
});

describe('resolveWandbSettings', () => {
  const recipe: WandbRecipeSection = { mode: 'online', project: 'rp', entity: 're', name: 'rn', group: 'rg', tags: ['a', 'b'], notes: 'rnote' };

  it.each<[string, Env, Partial<ReturnType<typeof resolveWandbSettings>>]>([
    ['recipe values when env is silent', { WANDB_API_KEY: KEY },
      { mode: 'online', project: 'rp', entity: 're', name: 'rn', group: 'rg', tags: ['a', 'b'], notes: 'rnote', baseUrl: 'https://api.wandb.ai', appUrl: 'https://wandb.ai', apiKey: KEY, runId: null, jobType: 'train' }],
    ['env wins over the recipe', { WANDB_API_KEY: KEY, WANDB_MODE: 'offline', WANDB_PROJECT: 'ep', WANDB_ENTITY: 'ee', WANDB_NAME: 'en', WANDB_RUN_GROUP: 'eg', WANDB_TAGS: 'x, y,,z', WANDB_NOTES: 'enote', WANDB_RUN_ID: 'abc12345', WANDB_JOB_TYPE: 'eval', WANDB_DIR: '/tmp/w' },
      { mode: 'offline', project: 'ep', entity: 'ee', name: 'en', group: 'eg', tags: ['x', 'y', 'z'], notes: 'enote', runId: 'abc12345', jobType: 'eval', dir: '/tmp/w' }],
    ['empty env values do not count', { WANDB_API_KEY: KEY, WANDB_PROJECT: '', WANDB_MODE: '' }, { project: 'rp', mode: 'online' }],
    ['self-hosted base URL: UI on the same origin', { WANDB_API_KEY: KEY, WANDB_BASE_URL: 'http://127.0.0.1:8080/' }, { baseUrl: 'http://127.0.0.1:8080', appUrl: 'http://127.0.0.1:8080' }],
    ['api.<host> maps to app.<host>', { WANDB_API_KEY: KEY, WANDB_BASE_URL: 'https://api.example.com' }, { appUrl: 'https://app.example.com' }],
  ])('%s', (_what, env, expected) => {
    expect(resolveWandbSettings(recipe, env, home)).toMatchObject(expected);
  });

  it('defaults: disabled, project "hilo", no key needed', () => {
    expect(resolveWandbSettings(null, { NETRC: '/nonexistent' }, home)).toMatchObject({ mode: 'disabled', project: 'hilo', apiKey: null, tags: [] });
  });

  it('finds the key in ~/.netrc under the base URL host (host:port first), env key first', () => {
    writeFileSync(join(home, '.netrc'), `machine api.wandb.ai login user password ${'a'.repeat(40)}\nmachine 127.0.0.1:9999 login user password ${'b'.repeat(40)}\nmachine 127.0.0.1 login user password ${'c'.repeat(40)}\n`);
    const key = (env: Env) => resolveWandbSettings({ mode: 'online' }, env, home).apiKey;
    expect(key({})).toBe('a'.repeat(40));
    expect(key({ WANDB_BASE_URL: 'http://127.0.0.1:9999' })).toBe('b'.repeat(40));
    expect(key({ WANDB_BASE_URL: 'http://127.0.0.1:7777' })).toBe('c'.repeat(40));
    expect(key({ WANDB_API_KEY: 'envkey' })).toBe('envkey');
    expect(key({ NETRC: join(home, 'missing') , WANDB_MODE: 'offline' })).toBe(null);
  });

  it.each<[string, WandbRecipeSection | null, Env, string]>([
    ['bad WANDB_MODE', recipe, { WANDB_API_KEY: KEY, WANDB_MODE: 'dryrunn' }, 'WANDB_MODE: got "dryrunn"; allowed: "online" | "offline" | "disabled"'],
    ['bad recipe mode', { mode: 'on' }, {}, 'recipe.wandb.mode: got "on"; allowed: "online" | "offline" | "disabled"'],
    ['project with a slash', { project: 'a/b' }, {}, 'recipe.wandb.project: got "a/b"'],
    ['env entity with a colon', null, { WANDB_ENTITY: 'x:y' }, 'WANDB_ENTITY: got "x:y"'],
    ['bad run id', null, { WANDB_RUN_ID: 'has space' }, 'WANDB_RUN_ID: got "has space"; allowed: 1-64 of A-Z a-z 0-9 _ . -'],
    ['bad base URL', null, { WANDB_BASE_URL: 'ftp://x' }, 'WANDB_BASE_URL: got "ftp://x"'],
    ['long tag', { tags: ['t'.repeat(65)] }, {}, 'recipe.wandb.tags: got'],
    ['online without a key', { mode: 'online' }, { NETRC: '/nonexistent' }, 'WANDB_API_KEY: got nothing; allowed: a key from https://wandb.ai/authorize'],
  ])('%s', (_what, section, env, message) => {
    expect(() => resolveWandbSettings(section, env, home)).toThrow(message);
  });
});

describe('urls and ids', () => {
  it.each([
    ['https://api.wandb.ai', 'https://wandb.ai'],
    ['https://api.wandb.test', 'https://app.wandb.test'],
    ['https://wandb.corp.example', 'https://wandb.corp.example'],
  ])('%s -> %s', (base, app) => expect(appUrlFor(base)).toBe(app));
  it('run URL and run id', () => {
    expect(runUrl('https://wandb.ai', 'me', 'my proj', 'ab12cd34')).toBe('https://wandb.ai/me/my%20proj/runs/ab12cd34');
    expect(newRunId()).toMatch(/^[a-z0-9]{8}$/);
    expect(appUrlFor('https://api.wandb.ai', { WANDB_APP_URL: 'https://ui.x/' })).toBe('https://ui.x');
  });
});

describe('retry policy', () => {
  it.each([[400, false], [401, false], [403, false], [404, false], [409, false], [410, false], [408, true], [429, true], [500, true], [503, true]])(
    'status %i retryable: %s', (status, want) => expect(isRetryableStatus(status)).toBe(want));
  it('backoff doubles up to the cap, jitter in the upper half', () => {
    const p = { minMs: 2000, maxMs: 60_000 };
    expect([0, 1, 2, 5, 10].map((a) => backoffMs(a, p, () => 0))).toEqual([1000, 2000, 4000, 30_000, 30_000]);
    expect([0, 1, 10].map((a) => backoffMs(a, p, () => 1))).toEqual([2000, 4000, 60_000]);
    expect(retryDelayMs(0, p, 7000, () => 0)).toBe(7000);
  });
  it.each<[Record<string, string>, number | null]>([
    [{ 'ratelimit-reset': '3' }, 3000],
    [{ 'ratelimit-reset': '1.5', 'retry-after': '9' }, 1500],
    [{ 'retry-after': '4' }, 4000],
    [{ 'retry-after': new Date(1_000_000 + 5000).toUTCString() }, 5000],
    [{ 'ratelimit-reset': '99999' }, 300_000],
    [{ 'ratelimit-reset': 'soon' }, null],
    [{}, null],
  ])('server wait %j -> %s', (h, want) => expect(serverWaitMs((n) => h[n], 1_000_000)).toBe(want));
});

describe('history encoding', () => {
  it('writes NaN/Infinity as W&B bare tokens and reads them back', () => {
    const line = toWandbJson({ a: NaN, b: Infinity, c: -Infinity, s: 'NaN in a string', d: 1.5 });
    expect(line).toBe('{"a":NaN,"b":Infinity,"c":-Infinity,"s":"NaN in a string","d":1.5}');
    const back = fromWandbJson(line);
    expect(back.a).toBeNaN();
    expect(back).toMatchObject({ b: Infinity, c: -Infinity, s: 'NaN in a string', d: 1.5 });
  });
  it('tables and histograms', () => {
    expect(encodeMetric('t', { columns: ['e', 'n'], data: [[0, 3]] })).toEqual({ _type: 'table', columns: ['e', 'n'], data: [[0, 3]] });
    expect(encodeMetric('h', { bins: [0, 1, 2], values: [5, 6] })).toEqual({ _type: 'histogram', bins: [0, 1, 2], values: [5, 6] });
    expect(() => encodeMetric('h', { bins: [0, 1], values: [5, 6] })).toThrow('wandb metric "h": a histogram needs');
    expect(() => encodeMetric('t', { columns: ['a'], data: [[1, 2]] })).toThrow('wandb metric "t": a table needs');
    expect(wrapConfig({ lr: 0.1, m: { a: 1 } })).toEqual({ lr: { value: 0.1 }, m: { value: { a: 1 } } });
  });
});

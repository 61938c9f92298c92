/** The generate and score commands, run as a user would: `node bin/hilo.js ...`. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkIdsInVocab, parseIdList } from '../../src/cli/model-input.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const stories = STORIES260K;
const noTokenizer = path.join(root, 'test/fixtures/models/tiny-llama');
const reference = JSON.parse(fs.readFileSync(path.join(stories, 'reference.json'), 'utf8'));

function hilo(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/hilo.js', ...args], { cwd: root, encoding: 'utf8', timeout: 90_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('hilo generate / score', () => {
  it('generate reproduces the run.c continuation of "Once upon a time"', () => {
    const r = hilo('generate', '--model', stories, '--prompt', 'Once upon a time', '--max-new-tokens', '32', '--temperature', '0', '--backend', 'wasm');
    expect(r.stderr).not.toMatch(/hilo:/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe(reference.prompts[0].full_text);
  });

  it('score --ids works on a directory without tokenizer.json, --text there says what is missing', () => {
    expect(fs.existsSync(path.join(noTokenizer, 'tokenizer.json'))).toBe(false);
    const ok = hilo('score', '--model', noTokenizer, '--ids', '5,17,3,44', '--json', '--backend', 'wasm');
    expect(ok.code).toBe(0);
    const out = JSON.parse(ok.stdout.trim().split('\n').pop()!);
    expect(out.ids).toEqual([5, 17, 3, 44]);
    expect(out.logprobs[0]).toBeNull();
    expect(out.logprobs.slice(1).every((x: number) => x < 0 && x > -20)).toBe(true);
    const bad = hilo('score', '--model', noTokenizer, '--text', 'hello', '--backend', 'wasm');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('has no tokenizer.json: --text needs tokenizer.json');
  });

  it.each([
    ['5,17', [5, 17]], [' 0, 3 ', [0, 3]],
  ])('parseIdList(%j)', (text, want) => expect(parseIdList('--ids', text)).toEqual(want));

  it.each(['', '5,x', '1,,2', '-1', '1.5'])('parseIdList refuses %j', (text) => {
    expect(() => parseIdList('--ids', text)).toThrow(`--ids: got ${JSON.stringify(text)}; allowed: comma-separated non-negative token ids`);
  });

  it('refuses ids outside the vocabulary', () => {
    expect(() => checkIdsInVocab('--ids', [5, 999], 128)).toThrow("--ids: got 999; allowed: token ids below the model's vocab_size (128)");
    expect(() => checkIdsInVocab('--ids', [5, 127], 128)).not.toThrow();
  });
});

/**
 * The command line as a user meets it (issue 27, items 5 and 6), run as `node bin/hilo.js ...`:
 * results and written paths on stdout, progress and logs on stderr; `--version`; each fault a
 * one-line message on stderr that names what to change (no stack); export folders with the
 * user's umask modes; `npm run bench` without its model; `generate` / `score --adapter` running
 * the exact mixture; top-k / top-p sampling.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { argmax, checkSampling, sampleIndex, samplingWeights } from '../../src/model/sampling.ts';
import { loadModel } from '../../src/model/load.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { saveAdapters } from '../../src/adapters/io.ts';
import { makeRun, planOf, randomise, writeCheckpoint, type FakeRun } from '../export/helpers.ts';
import { fixture, ROOT, STORIES260K } from '../helpers/fixtures.ts';
import { sentimentLines } from '../helpers/sentences.ts';

const HILO = path.join(ROOT, 'bin/hilo.js');
const PEFT = fixture('peft/stories260K-lora');
const storiesRef = JSON.parse(fs.readFileSync(path.join(STORIES260K, 'reference.json'), 'utf8'));
const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

interface Ran { code: number | null; stdout: string; stderr: string }

/** `hilo ARGS` in the repository root, under `umask` (a shell sets it; Node cannot for a child). */
function hilo(args: string[], opts: { umask?: string; cwd?: string } = {}): Ran {
  const quoted = [process.execPath, HILO, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('sh', ['-c', `umask ${opts.umask ?? '022'} && exec ${quoted}`], { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: exit 2, one `hilo: ...` line on stderr holding `message`, nothing on stdout, no stack. */
function expectUserError(r: Ran, message: string | RegExp): void {
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^hilo: /);
  if (typeof message === 'string') expect(r.stderr).toContain(message);
  else expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.code).toBe(2);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('faults of generate / score: one sentence on stderr that names the option', () => {
  const S = STORIES260K;
  it.each<[string, () => string[], string | RegExp]>([
    ['generate: a --model folder that does not exist', () => ['generate', '--model', path.join(tmp, 'nope'), '--prompt', 'hi'], `--model: ${path.join(tmp, 'nope')} does not exist`],
    ['score: a --model folder that does not exist', () => ['score', '--model', path.join(tmp, 'nope'), '--text', 'hi'], `--model: ${path.join(tmp, 'nope')} does not exist`],
    ['score --ids: a --model folder that does not exist', () => ['score', '--model', path.join(tmp, 'nope'), '--ids', '1,2'], `--model: ${path.join(tmp, 'nope')} does not exist`],
    ['a --model that is a file', () => ['generate', '--model', path.join(S, 'config.json'), '--prompt', 'hi'], 'config.json is a file; give the folder that holds config.json'],
    ['a --model folder without config.json', () => ['score', '--model', tmp, '--text', 'hi'], `${tmp}: no config.json`],
    ['no --model and no --adapter', () => ['generate', '--prompt', 'hi'], '--model: not given; give --model DIR'],
    ['an --adapter that does not exist', () => ['generate', '--model', S, '--adapter', path.join(tmp, 'nope'), '--prompt', 'hi'], `--adapter: ${path.join(tmp, 'nope')} does not exist; give a run folder`],
    ['a PEFT --adapter whose base is not here, without --model', () => ['score', '--adapter', PEFT, '--text', 'hi'], '--model: not given; ' + PEFT + ' was trained on "stories260K", which is not here'],
    ['an --adapter folder that is no adapter or run', () => ['score', '--model', S, '--adapter', S, '--text', 'hi'], `--adapter: ${S} has no adapter_config.json (an adapter) and no recipe.json (a run folder)`],
    ['--top-p with greedy decoding (the other sampling faults: below)', () => ['generate', '--model', S, '--prompt', 'hi', '--top-p', '0.9'], '--top-p 0.9 shapes sampling, but --temperature is 0 (greedy); give --temperature > 0'],
  ])('%s', (_, args, message) => {
    const r = hilo(args());
    expectUserError(r, message);
    expect(r.stderr).not.toContain('--text needs tokenizer.json');
  });
});

describe('sampling options, checked before anything loads', () => {
  it.each<[Parameters<typeof checkSampling>[0], string]>([
    [{ topK: 5 }, '--top-k 5 shapes sampling, but --temperature is 0 (greedy); give --temperature > 0, e.g. 1'],
    [{ temperature: 1, topK: 1.5 }, '--top-k: got 1.5; allowed: an integer >= 0 (0 = off)'],
    [{ temperature: 1, topK: -1 }, '--top-k: got -1; allowed: an integer >= 0 (0 = off)'],
    [{ temperature: 1, topP: 0 }, '--top-p: got 0; allowed: a number in (0, 1] (1 = off)'],
    [{ temperature: 1, topP: 1.5 }, '--top-p: got 1.5; allowed: a number in (0, 1] (1 = off)'],
    [{ temperature: -1 }, '--temperature: got -1; allowed: a number >= 0 (0 = greedy)'],
  ])('%j', (s, message) => expect(() => checkSampling(s)).toThrow(message));

  it.each([{}, { temperature: 0 }, { temperature: 0.5, topK: 0, topP: 1 }, { temperature: 2, topK: 40, topP: 0.95 }])('%j is allowed', (s) => {
    expect(() => checkSampling(s)).not.toThrow();
  });
});

describe('top-k / top-p (transformers: temperature, then top-k, then top-p)', () => {
  const kept = (w: Float64Array) => [...w].flatMap((x, i) => (x > 0 ? [i] : []));
  it.each<[number[], { temperature?: number; topK?: number; topP?: number }, number[]]>([
    [[1, 3, 2, 0], { temperature: 1, topK: 1 }, [1]],
    [[1, 3, 2, 0], { temperature: 1, topK: 2 }, [1, 2]],
    [[1, 3, 3, 0], { temperature: 1, topK: 1 }, [1, 2]], // ties with the k-th stay
    [[1, 3, 2, 0], { temperature: 1, topK: 9 }, [0, 1, 2, 3]],
    [[0, 0, Math.log(2)], { temperature: 1, topP: 0.5 }, [2]], // p = 1/4, 1/4, 1/2: the top token alone reaches 0.5
    [[0, 0, Math.log(2)], { temperature: 1, topP: 0.51 }, [0, 2]], // ... 0.5 < 0.51: one more, the first of the tie
    [[0, 0, Math.log(2)], { temperature: 1, topP: 1 }, [0, 1, 2]],
    [[0, Math.log(9)], { temperature: 1, topP: 0.85 }, [1]], // p = 0.1, 0.9
    [[0, Math.log(9)], { temperature: 4, topP: 0.85 }, [0, 1]], // T = 4 flattens to 0.37 / 0.63
    [[5, 1, 4, 3], { temperature: 1, topK: 3, topP: 0.5 }, [0]], // top-p on what top-k left
  ])('kept of %j with %j: %j', (row, s, want) => expect(kept(samplingWeights(row, s))).toEqual(want));

  it('top-p keeps the fewest most likely tokens whose mass reaches p, on random rows', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let trial = 0; trial < 200; trial++) {
      const row = Array.from({ length: 50 }, () => 6 * rand() - 3);
      const topP = 0.05 + 0.9 * rand();
      const temperature = 0.3 + 2 * rand();
      const all = samplingWeights(row, { temperature });
      const total = all.reduce((a, b) => a + b, 0);
      const w = samplingWeights(row, { temperature, topP });
      const keep = kept(w);
      const mass = keep.reduce((a, i) => a + all[i], 0) / total;
      const smallest = Math.min(...keep.map((i) => all[i])) / total;
      expect(mass).toBeGreaterThanOrEqual(topP); // reaches p
      expect(mass - smallest).toBeLessThan(topP); // and no token fewer would
      const cut = Math.min(...keep.map((i) => row[i]));
      expect(row.every((x, i) => keep.includes(i) || x <= cut)).toBe(true); // the most likely ones
      keep.forEach((i) => expect(w[i]).toBe(all[i])); // the kept are not reweighted before normalising
    }
  });

  it('top-k 1 draws the argmax for every u; a cut token is never drawn', () => {
    const row = [0.3, 2.5, -1, 2.4, 0];
    for (let u = 0; u < 1; u += 0.01) {
      expect(sampleIndex(row, 3, u, { topK: 1 })).toBe(argmax(row));
      expect([1, 3]).toContain(sampleIndex(row, 3, u, { topK: 2 }));
    }
    expect(sampleIndex(row, 1, 0.999999999, { topP: 0.3 })).toBe(1);
  });
});

describe('streams and modes', () => {
  it('--version prints package.json\'s version on stdout', () => {
    const r = hilo(['--version']);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `${version}\n`, '']);
  });

  it('npm run bench without its model says so in one sentence (no tfjs source, no stack)', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'scripts/bench-train.ts', '--models', 'stories'], {
      cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, HILO_SHARED: path.join(tmp, 'no-shared') },
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      `bench: no stories260K at ${path.join(tmp, 'no-shared/models/stories260K')} (no config.json there): ` +
        'HILO_SHARED points there; unset it to use the copy in test/fixtures/models, or leave it out with --models tiny',
    );
  });

  describe('a run: train, eval, eval --base, export', () => {
    let recipe: string;
    let runDir: string;
    let trained: Ran;
    beforeAll(() => {
      const rows = sentimentLines('yelp');
      fs.writeFileSync(path.join(tmp, 'train.jsonl'), rows.slice(0, 16).join('\n'));
      fs.writeFileSync(path.join(tmp, 'test.jsonl'), rows.slice(600, 608).join('\n'));
      runDir = path.join(tmp, 'run');
      recipe = path.join(tmp, 'recipe.yaml');
      fs.writeFileSync(recipe, `model: {path: ${STORIES260K}}
backend: wasm
output_dir: ${runDir}
data: {train_path: train.jsonl, test_path: test.jsonl, format: classification, label_words: {negative: " bad", positive: " good"}, max_length: 24, eval_fraction: 0}
adapter: {method: moe-uniform, target_modules: [q_proj, v_proj], experts: {per_layer: 2}, rank: {r: 2}, top_k: 1}
train: {batch_size: 4, max_steps: 2, save_steps: 0, eval_steps: 0, logging_steps: 1, learning_rate: 0.01}
`);
      trained = hilo(['train', recipe]);
    });

    it('train: the results and where they went on stdout; progress on stderr', () => {
      expect(trained.code, trained.stderr).toBe(0);
      const out = trained.stdout.trim().split('\n');
      expect(out[0]).toMatch(/^finished after 2 steps in [\d.]+ s/);
      expect(out).toContain(`trained weights: ${path.join(runDir, 'adapter')}`);
      expect(out).toContain(`results: ${path.join(runDir, 'results.json')}`);
      expect(out.some((l) => /^test accuracy: [\d.]+$/.test(l))).toBe(true);
      expect(trained.stderr).toContain(`run folder ${runDir}`);
      expect(trained.stderr).toMatch(/\] 2\/2 loss /); // the progress line
      expect(trained.stderr).not.toContain('trained weights:');
    });

    it('plan: the table and the written path on stdout', () => {
      const r = hilo(['plan', recipe, `output_dir=${path.join(tmp, 'plan')}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`wrote ${path.join(tmp, 'plan', 'plan.json')}`);
      expect(r.stdout).toMatch(/^layer\s+experts\s+rank/m);
      expect(r.stderr).not.toContain('wrote');
    });

    it('eval: metrics on stdout; eval --base says the model is frozen, not "trainable (100.000%)"', () => {
      const r = hilo(['eval', runDir]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^test accuracy: [\d.]+$/m);
      expect(r.stderr).toContain('evaluating adapter');
      const base = hilo(['eval', runDir, '--base']);
      expect(base.code, base.stderr).toBe(0);
      expect(base.stdout).toMatch(/^test accuracy: [\d.]+$/m);
      expect(base.stderr).toContain('params: 260,032, all frozen (no adapter)');
      expect(base.stderr).not.toContain('trainable');
    });

    it.each([['022', 0o755], ['027', 0o750]])('export under umask %s: a folder of mode %o, its path on stdout', (umask, mode) => {
      const out = path.join(tmp, `export-${umask}`);
      const r = hilo(['export', runDir, '--out', out], { umask });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(`hilo export written: ${out}`);
      expect(fs.statSync(out).mode & 0o777).toBe(mode);
      expect(fs.readdirSync(path.dirname(out)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  });
});

/** Greedy continuation by full forward passes (no KV cache), one token at a time. */
function greedyByForward(model: CausalLM, prompt: number[], n: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    const row = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).slice([0, ids.length - 1, 0], [1, 1, -1]).dataSync()) as Float32Array;
    ids.push(argmax(row));
  }
  return ids.slice(prompt.length);
}

/** log p(ids[t] | ids[<t]) for t >= 1 by one forward pass, in float64 from the float32 logits. */
function logprobsByForward(model: CausalLM, ids: number[]): number[] {
  const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync()) as Float32Array;
  const V = logits.length / ids.length;
  return ids.slice(1).map((id, t) => {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    return row[id] - lse;
  });
}

describe('generate / score --adapter: the frozen base with the exact mixture', () => {
  const prompt = storiesRef.prompts[0];
  const N = 16;
  let model: CausalLM;
  let run: FakeRun;
  let want: { ids: number[]; logprobs: number[] };
  let base: number[];
  beforeAll(async () => {
    await initBackend('wasm');
    model = await loadModel(STORIES260K);
    base = logprobsByForward(model, prompt.prompt_ids);
    // 1-4 experts per layer, top-2 routing, random B and routers: a mixture no LoRA folds into
    // exactly, with B large enough (0.1) to change the greedy text
    run = makeRun(tmp, 'mixture', model, planOf([1, 2, 3, 4, 2], [2, 4, 4, 6, 8]), 5);
    randomise(run.adapters, 77, 0.1);
    saveAdapters(run.adapters, path.join(run.runDir, 'adapter'), { base_model_name_or_path: STORIES260K });
    await writeCheckpoint(run, 3);
    want = { ids: greedyByForward(model, prompt.prompt_ids, N), logprobs: logprobsByForward(model, prompt.prompt_ids) };
  });
  afterAll(() => {
    run?.adapters.dispose();
    model?.dispose();
  });

  it('the reference itself differs from the base model', () => {
    expect(want.ids).not.toEqual(prompt.generated_ids.slice(0, N));
  });

  it.each<[string, () => string[]]>([
    ['a run folder (base model from its recipe)', () => ['--adapter', run.runDir]],
    ['its adapter/ folder, a hilo adapter package', () => ['--model', STORIES260K, '--adapter', path.join(run.runDir, 'adapter')]],
    ['its checkpoint-3 folder', () => ['--model', STORIES260K, '--adapter', path.join(run.runDir, 'checkpoint-3')]],
  ])('generate with %s equals the model forward with the adapter injected', (_, adapterArgs) => {
    const r = hilo(['generate', ...adapterArgs(), '--ids', prompt.prompt_ids.join(','), '--max-new-tokens', String(N), '--json', '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).generated_ids).toEqual(want.ids);
    expect(r.stderr).toMatch(/: [\d,]+ adapter parameters, the exact mixture \(nothing folded\)\n/);
  });

  it('score --adapter gives the adapted log-probabilities (1e-4), not the base model\'s', () => {
    const r = hilo(['score', '--adapter', run.runDir, '--ids', prompt.prompt_ids.join(','), '--json', '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout).logprobs.slice(1) as number[];
    got.forEach((lp, t) => expect(Math.abs(lp - want.logprobs[t])).toBeLessThan(1e-4));
    expect(Math.max(...base.map((lp, t) => Math.abs(lp - got[t])))).toBeGreaterThan(0.1);
  });

  it('score --adapter PEFT_FOLDER matches the PyTorch (PEFT) logits of that adapter', () => {
    const ref = JSON.parse(fs.readFileSync(path.join(PEFT, 'reference.json'), 'utf8')) as { input_ids: number[][]; logits: number[][][] };
    const ids = ref.input_ids[0];
    const r = hilo(['score', '--model', STORIES260K, '--adapter', PEFT, '--ids', ids.join(','), '--logits', '--json', '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const logits = JSON.parse(r.stdout).logits as number[][];
    let worst = 0;
    logits.forEach((row, t) => row.forEach((x, v) => (worst = Math.max(worst, Math.abs(x - ref.logits[0][t][v])))));
    expect(worst).toBeLessThan(1e-4);
  });
});

describe('sampling through the CLI', () => {
  const prompt = storiesRef.prompts[0];
  it('--top-k 1 at any temperature is greedy: the run.c continuation', () => {
    const r = hilo(['generate', '--model', STORIES260K, '--ids', prompt.prompt_ids.join(','), '--max-new-tokens', '32', '--temperature', '1.7', '--top-k', '1', '--seed', '9', '--json', '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).generated_ids).toEqual(prompt.generated_ids);
  });

  it('--top-p sampling is reproducible by seed and differs from greedy', () => {
    const args = ['generate', '--model', STORIES260K, '--ids', prompt.prompt_ids.join(','), '--max-new-tokens', '24', '--temperature', '1', '--top-p', '0.9', '--json', '--backend', 'wasm'];
    const [a, b] = [hilo([...args, '--seed', '1']), hilo([...args, '--seed', '1'])];
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(JSON.parse(a.stdout).generated_ids).not.toEqual(prompt.generated_ids.slice(0, 24));
  });
});

/**
 * The command as a user runs it: `hilo export RUN --format peft --json`, then
 * `hilo export --from-peft` back into a hilo package that reloads to the adapted logits.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadAdapters } from '../../src/adapters/io.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadModel } from '../../src/model/load.ts';
import type { CausalLM } from '../../src/model/types.ts';
import { HILO, logitsOf, makeRun, maxAbsDiff, MODEL_DIR, planOf, tmpDir } from './helpers.ts';

let model: CausalLM;
beforeAll(async () => {
  await initBackend('wasm');
  model = await loadModel(MODEL_DIR);
});
afterAll(() => model?.dispose());

const hilo = (...args: string[]) => spawnSync(process.execPath, [HILO, ...args], { encoding: 'utf8' });

it('exports a run to PEFT and imports it back with --from-peft', { timeout: 180_000 }, () => {
  const dir = tmpDir();
  const run = makeRun(dir, 'cli', model, planOf([1, 1, 1, 1, 1], [4, 4, 2, 2, 2], ['self_attn.q_proj', 'mlp.up_proj']), 3);
  const adapted = logitsOf(model);
  run.adapters.dispose();

  const peftDir = path.join(dir, 'peft');
  const exp = hilo('export', run.runDir, '--format', 'peft', '--out', peftDir, '--json');
  expect(exp.status, exp.stderr).toBe(0);
  const r = JSON.parse(exp.stdout);
  expect(r).toMatchObject({ out: peftDir, format: 'peft', status: 'written', exact: true });
  expect(r.error.relative).toBeLessThan(1e-6);

  const back = path.join(dir, 'back');
  const imp = hilo('export', '--from-peft', peftDir, '--out', back);
  expect(imp.status, imp.stderr).toBe(0);
  expect(imp.stdout).toBe(`imported 10 LoRA modules into ${back} (written)\n`);
  const cfg = JSON.parse(fs.readFileSync(path.join(back, 'adapter_config.json'), 'utf8'));
  expect(cfg).toMatchObject({ method: 'peft', base_model_name_or_path: MODEL_DIR, imported_from: { peft_type: 'LORA', dir: peftDir } });
  const adapters = loadAdapters(model, back);
  try {
    expect(maxAbsDiff(logitsOf(model), adapted)).toBeLessThan(1e-6);
  } finally {
    adapters.dispose();
  }
});

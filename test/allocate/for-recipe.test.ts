import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countPlan } from '../../src/adapters/params.ts';
import { planForRecipe } from '../../src/allocate/for-recipe.ts';
import { writePlanFile } from '../../src/allocate/plan-file.ts';
import { moduleShapes } from '../../src/model/families.ts';
import { withModelTargets } from '../../src/allocate/targets.ts';
import { readModelConfig } from '../../src/model/folder.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { stories260K } from './fixtures.ts';
import { fixture, STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-for-recipe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(adapter: string, model = MODEL): string {
  const file = path.join(tmp, `r${fs.readdirSync(tmp).length}.yaml`);
  fs.writeFileSync(file, `model: {path: ${model}}\noutput_dir: ${tmp}/run\ndata: {task: sentiment}\nadapter: ${adapter}\n`);
  return file;
}

describe('planForRecipe (what hilo plan and training use)', () => {
  it('hilo + alpha-hill: measures once, writes probe.json, then reuses it', async () => {
    const r = loadRecipe(recipe('{method: hilo, probe: alpha-hill}'));
    const a = await planForRecipe(r);
    expect(a.probe?.kind).toBe('alpha-hill');
    expect(fs.existsSync(path.join(tmp, 'run', 'probe.json'))).toBe(true);
    // stories260K alpha per layer 3.34, 2.91, 3.97, 3.71, 2.95: rank groups by score -> 4, 2, 8, 6, 2
    expect(a.plan.layers.map((m) => m['self_attn.q_proj'].rank)).toEqual([4, 2, 8, 6, 2]);
    expect(a.plan.layers.map((m) => m['self_attn.q_proj'].experts).reduce((x, y) => x + y, 0)).toBe(25);
    const before = fs.statSync(path.join(tmp, 'run', 'probe.json')).mtimeMs;
    const b = await planForRecipe(r);
    expect(b.plan).toEqual(a.plan);
    expect(fs.statSync(path.join(tmp, 'run', 'probe.json')).mtimeMs).toBe(before);
  });

  it('depth needs no probe file; budgets apply', async () => {
    const { plan, probe } = await planForRecipe(loadRecipe(recipe('{method: hilo, budget: {trainable: 50000}}')));
    expect(probe).toBeNull();
    expect(countPlan(plan, moduleShapes(stories260K)).trainable).toBeLessThanOrEqual(50_000);
  });

  it('manual: reads plan_path and checks it against the model', async () => {
    const { plan } = await planForRecipe(loadRecipe(recipe('{method: lora}')));
    const file = path.join(tmp, 'manual.json');
    writePlanFile(file, { ...plan, method: 'manual' });
    expect((await planForRecipe(loadRecipe(recipe(`{method: manual, plan_path: ${file}}`)))).plan).toEqual({ ...plan, method: 'manual' });
    writePlanFile(file, { ...plan, layers: plan.layers.slice(1) });
    await expect(planForRecipe(loadRecipe(recipe(`{method: manual, plan_path: ${file}}`)))).rejects.toThrow(`${file}.layers: got "4 layers"; allowed: exactly 5 layers`);
  });
});

describe('adapter.target_modules absent: the model family\'s targets', () => {
  const GPT2 = fixture('models/tiny-gpt2');
  const LLAMA_PATHS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

  it.each([
    ['a Llama folder (stories260K)', STORIES260K, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], LLAMA_PATHS],
    ['a GPT-2 folder (tiny-gpt2)', GPT2, ['c_attn', 'c_proj', 'c_fc'], ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']],
  ])('%s: every attention and MLP projection, named as its family names them', async (_name, model, targets, paths) => {
    const r = loadRecipe(recipe('{method: lora}', model));
    const { plan } = await planForRecipe(r);
    expect(plan.targetModules).toEqual(targets);
    for (const layer of plan.layers) expect(Object.keys(layer)).toEqual(paths);
    // what a run records (recipe.json) and `hilo validate` prints: the recipe as if it had written the list
    const written = loadRecipe(recipe(`{method: lora, target_modules: [${targets.join(', ')}]}`, model));
    expect(JSON.stringify(withModelTargets(r, readModelConfig(model)))).toBe(JSON.stringify(written));
  });

  it('an explicit list is kept as written, on either family', async () => {
    const r = loadRecipe(recipe('{method: lora, target_modules: [c_attn]}', GPT2));
    expect((await planForRecipe(r)).plan.targetModules).toEqual(['c_attn']);
    expect(withModelTargets(r, readModelConfig(GPT2))).toBe(r);
    expect((await planForRecipe(loadRecipe(recipe('{method: lora, target_modules: all-linear}', GPT2)))).plan.layers[0]).toHaveProperty(['mlp.c_proj']);
  });

  it('a target the model lacks names that family\'s modules and its defaults', async () => {
    await expect(planForRecipe(loadRecipe(recipe('{method: lora, target_modules: [q_proj]}', GPT2)))).rejects.toThrow(
      'recipe.adapter.target_modules: got "q_proj"; allowed: "c_attn" | "attn.c_attn" | "c_proj" | "attn.c_proj" | "c_fc" | "mlp.c_fc" | "mlp.c_proj" ' +
        '(the GPT-2 family\'s linears; by default c_attn, c_proj, c_fc)');
    await expect(planForRecipe(loadRecipe(recipe('{method: lora, target_modules: [c_attn]}')))).rejects.toThrow(
      /got "c_attn"; allowed: "q_proj" \| .* \(the Llama family's linears; by default q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj\)$/);
  });
});

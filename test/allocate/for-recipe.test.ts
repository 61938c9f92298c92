import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countPlan } from '../../src/adapters/params.ts';
import { planForRecipe } from '../../src/allocate/for-recipe.ts';
import { writePlanFile } from '../../src/allocate/plan-file.ts';
import { moduleShapes } from '../../src/model/families.ts';
import { loadRecipe } from '../../src/recipe/load.ts';
import { stories260K } from './fixtures.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const MODEL = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-for-recipe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(adapter: string): string {
  const file = path.join(tmp, `r${fs.readdirSync(tmp).length}.yaml`);
  fs.writeFileSync(file, `model: {path: ${MODEL}}\noutput_dir: ${tmp}/run\ndata: {task: sentiment}\nadapter: ${adapter}\n`);
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

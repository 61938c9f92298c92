import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planFromRecipe } from '../../src/allocate/methods.ts';
import { readPlan, summarizePlan, writePlanFile } from '../../src/allocate/plan-file.ts';
import { planTable } from '../../src/cli/plan.ts';
import { adapterSection, llama7b, stories260K } from './fixtures.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-plan-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('plan.json', () => {
  const plan = planFromRecipe(adapterSection({ method: 'hilo', experts: { pattern: '2468', total: null, beta: 2.5, groups: 4, per_layer: 4 } }), stories260K);

  it('round-trips and is checked against the model', () => {
    const file = path.join(tmp, 'run', 'plan.json');
    writePlanFile(file, plan);
    expect(readPlan(file, stories260K)).toEqual(plan);
    expect(() => readPlan(file, llama7b)).toThrow(`${file}.layers: got "5 layers"; allowed: exactly 32 layers`);
  });

  it.each([
    ['strategy', 'topK', /strategy: got "topK"; allowed: "topk" \| "topp" \| "dense"/],
    ['alpha', 'sixteen', /alpha: got "sixteen"; allowed: a finite number/],
    ['scaling', 'alpha', /scaling: got "alpha"; allowed: "alpha\/r"/],
  ])('names a bad %s', (key, value, msg) => {
    const file = path.join(tmp, `bad-${key}.json`);
    fs.writeFileSync(file, JSON.stringify({ ...plan, [key]: value }));
    expect(() => readPlan(file, stories260K)).toThrow(msg);
  });

  it('summary: per-layer sizes, totals and % of base (Llama-2-7B, experts and ranks 2468)', () => {
    const p = planFromRecipe(adapterSection({ method: 'hilo', experts: { pattern: '2468', total: null, beta: 2.5, groups: 4, per_layer: 4 } }), llama7b);
    const s = summarizePlan(p, llama7b);
    expect(s.trainable).toBe(80_650_240);
    expect(s.active).toBe(30_679_040);
    expect(s.baseParams).toBe(6_738_415_616);
    expect(s.percentOfBase).toBeCloseTo(1.19687, 4);
    // layer 0: 2 experts of rank 2 -> 2 * 2 * 78,080 + 2 * 35,584 router weights
    expect(s.rows[0]).toEqual({ layer: 0, experts: '2', rank: '2', topK: '2', trainable: 383_488, active: 383_488 });
    expect(s.rows.reduce((a, r) => a + r.trainable, 0)).toBe(s.trainable);
    const table = planTable(s).split('\n');
    expect(table[0]).toMatch(/^layer\s+experts\s+rank\s+top-k\s+trainable\s+active\/token$/);
    expect(table).toHaveLength(34);
    expect(table[33]).toBe('trainable 80,650,240 (1.20% of 6,738,415,616 base parameters); active per token 30,679,040');
  });
});

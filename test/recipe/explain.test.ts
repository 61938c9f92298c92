import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { allowedText, defaultOf, docOf, listFields } from '../../src/recipe/describe.ts';
import { explainRecipe, summarizeRecipe } from '../../src/recipe/explain.ts';
import { parseRecipe } from '../../src/recipe/load.ts';
import { ALIASES } from '../../src/recipe/schema.ts';
import { makeRecipeDir, minimal } from './fixture.ts';

const dir = makeRecipeDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fields = listFields();

describe('the schema documents itself', () => {
  it('lists every field, sections first, in declaration order', () => {
    expect(fields.length).toBe(79);
    expect(fields.slice(0, 6).map((f) => f.path)).toEqual(['model', 'model.path', 'model.dtype', 'backend', 'seed', 'output_dir']);
    expect(fields.filter((f) => f.isSection).map((f) => f.path)).toEqual([
      'model', 'data', 'adapter', 'adapter.experts', 'adapter.rank', 'adapter.budget', 'adapter.calibration', 'train', 'wandb',
    ]);
  });

  it.each(fields.map((f) => [f.path, f] as const))('%s has a doc', (_p, f) => {
    expect(docOf(f.schema).length).toBeGreaterThan(10);
  });

  it('every alias points at a real field', () => {
    const paths = new Set(fields.map((f) => f.path));
    for (const target of Object.values(ALIASES)) expect(paths.has(target)).toBe(true);
  });

  it('the defaults --explain prints are the ones a recipe gets', () => {
    const r = parseRecipe(minimal(), { baseDir: dir, name: 'x.yaml' }) as unknown as Record<string, any>;
    const derived = new Set(['output_dir', 'data.task', 'data.format']); // set by the file or filled in by loadRecipe
    for (const f of fields) {
      const def = defaultOf(f.schema);
      if (def === undefined || derived.has(f.path)) continue;
      expect([f.path, f.path.split('.').reduce((v, k) => v[k], r)]).toEqual([f.path, def.value]);
    }
  });

  it('allowed values in words', () => {
    const at = (p: string) => allowedText(fields.find((f) => f.path === p)!.schema);
    expect([at('adapter.strategy'), at('train.max_steps'), at('data.eval_fraction'), at('train.resume'), at('wandb.tags'), at('adapter.budget')]).toEqual([
      '"topk" | "topp" | "dense"', '-1 or an integer >= 1', 'a number >= 0 and < 1',
      'true | false or a path (relative to the recipe\'s folder)', 'a list of strings', 'a map with keys trainable, percent, active or null',
    ]);
  });
});

describe('explainRecipe', () => {
  const text = explainRecipe();
  it('prints type, default, doc and aliases of a field', () => {
    expect(text).toContain([
      '  train.learning_rate: a number > 0; default 0.0003',
      '      Peak learning rate of AdamW.',
      '      aliases: lr, learning_rate, train.lr',
    ].join('\n'));
    expect(text).toContain('\n  model.path: a path (relative to the recipe\'s folder); required\n');
    expect(text).toContain('\nadapter: The adapter: method, experts, ranks, router and budget.\n');
  });

  it('with a recipe, shows each resolved value under its field', () => {
    const r = parseRecipe({ ...minimal(), adapter: { top_k: 1 } }, { baseDir: dir, name: 'x.yaml' });
    expect(explainRecipe(r)).toContain('  adapter.top_k: an integer >= 1; default 2\n      Experts per token under topk (clipped to each layer\'s expert count).\n      value: 1\n');
  });
});

describe('summarizeRecipe', () => {
  const adapterLine = (adapter: Record<string, unknown>) =>
    summarizeRecipe(parseRecipe({ ...minimal(), adapter }, { baseDir: dir, name: 'x.yaml' })).split('\n')[2];
  it.each([
    // validate passes the recipe with its model's targets (cli.test.ts); alone it cannot know them
    [{}, 'adapter  hilo probe depth, T=5xL ranks 2..8, top-2 on the model family\'s targets'],
    [{ method: 'mola', strategy: 'topp', target_modules: 'all-linear' }, 'adapter  mola pattern 2468 r=8, top-p 0.8 on all-linear'],
    [{ method: 'moe-uniform', strategy: 'dense', budget: { percent: 2 }, target_modules: ['q_proj'] }, 'adapter  moe-uniform 4 experts/layer r=8, dense, budget percent 2 on q_proj'],
    [{ method: 'none' }, 'adapter  none (full-parameter training of the base model)'],
  ])('%j', (adapter, line) => {
    expect(adapterLine(adapter)).toBe(line);
  });
});

import { describe, expect, it } from 'vitest';
import { countPlan } from '../../src/adapters/params.ts';
import { planFromRecipe } from '../../src/allocate/methods.ts';
import { checkPlanFitsModel, resolveTargets } from '../../src/allocate/targets.ts';
import { baseParams, moduleShapes } from '../../src/model/families.ts';
import type { ProbeResult } from '../../src/probe/types.ts';
import { adapterSection, gpt2, llama7b, stories260K } from './fixtures.ts';

const shapes7b = moduleShapes(llama7b);
const perLayer = (plan: ReturnType<typeof planFromRecipe>, key: 'experts' | 'rank' | 'topK') =>
  plan.layers.map((m) => Object.values(m)[0][key]);
const byQuarter = (v: number[]) => v.flatMap((x) => Array(8).fill(x));
const probe = (kind: ProbeResult['kind'], layers: number[]): ProbeResult => ({ kind, settings: {}, layers, fingerprint: 'x' });

describe('base model size from config alone', () => {
  it.each([
    ['Llama-2-7B', llama7b, 6_738_415_616],
    ['gpt2', gpt2, 124_439_808],
    ['stories260K', stories260K, 260_032], // = the sum of its safetensors shapes
  ])('%s', (_n, c, want) => expect(baseParams(c).total).toBe(want));
});

describe('methods on Llama-2-7B (from config.json)', () => {
  it('hilo, depth probe, experts "2468": ranks 2468, 80,650,240 trainable (params.test.ts pins it)', () => {
    const plan = planFromRecipe(adapterSection({ method: 'hilo', experts: { pattern: '2468', total: null, beta: 2.5, groups: 4, per_layer: 4 } }), llama7b);
    expect(perLayer(plan, 'rank')).toEqual(byQuarter([2, 4, 6, 8]));
    expect(perLayer(plan, 'experts')).toEqual(byQuarter([2, 4, 6, 8]));
    expect(perLayer(plan, 'topK')).toEqual(byQuarter([2, 2, 2, 2]));
    expect(Object.keys(plan.layers[0])).toHaveLength(7);
    const c = countPlan(plan, shapes7b);
    expect(c.trainable).toBe(80_650_240);
    expect(c.active).toBe(30_679_040);
  });

  it.each([
    ['lora', {}, 19_988_480, [1], [8]],
    ['moe-uniform', { experts: { pattern: null, total: null, beta: 2.5, groups: 4, per_layer: 5 } }, 105_635_840, [5], [8]],
    ['mola (default pattern 2468)', {}, 105_635_840, [2, 4, 6, 8], [8]],
  ] as const)('%s', (name, over, trainable, experts, ranks) => {
    const plan = planFromRecipe(adapterSection({ method: name.split(' ')[0], ...over }), llama7b);
    expect(countPlan(plan, shapes7b).trainable).toBe(trainable);
    expect(perLayer(plan, 'experts')).toEqual(byQuarter(experts.length === 1 ? Array(4).fill(experts[0]) : [...experts]));
    expect(perLayer(plan, 'rank')).toEqual(Array(32).fill(ranks[0]));
  });

  it('alphalora: proportional to alpha-hill scores, T = 5L, uniform rank, top-k AlphaLoRA style', () => {
    const alphas = Array.from({ length: 32 }, (_, l) => 2 + ((l * 7) % 5) / 2);
    const plan = planFromRecipe(adapterSection({ method: 'alphalora' }), llama7b, probe('alpha-hill', alphas));
    const n = perLayer(plan, 'experts');
    expect(n.reduce((a, b) => a + b, 0)).toBe(160);
    expect(perLayer(plan, 'topK')).toEqual(n.map((x) => (x > 1 ? 2 : 1)));
    expect(new Set(perLayer(plan, 'rank'))).toEqual(new Set([8]));
  });

  it('hilo on probe scores: experts proportional AND ranks by score group', () => {
    const scores = Array.from({ length: 32 }, (_, l) => 31 - l); // complexity falling with depth
    const plan = planFromRecipe(adapterSection({ method: 'hilo', probe: 'grad-sensitivity' }), llama7b, probe('grad-sensitivity', scores));
    expect(perLayer(plan, 'rank')).toEqual(byQuarter([8, 6, 4, 2]));
    const n = perLayer(plan, 'experts');
    expect(n.reduce((a, b) => a + b, 0)).toBe(160);
    expect(n[0]).toBeGreaterThan(n[31]);
  });

  it('topp plans keep p; top-k is still min(k, n_l) per layer', () => {
    const plan = planFromRecipe(adapterSection({ method: 'mola', strategy: 'topp', top_p: 0.7, top_k: 3 }), llama7b);
    expect(plan.strategy).toBe('topp');
    expect(plan.topP).toBe(0.7);
    expect(perLayer(plan, 'topK')).toEqual(byQuarter([2, 3, 3, 3]));
  });

  it('is deterministic', () => {
    const a = adapterSection({ method: 'hilo' });
    expect(planFromRecipe(a, llama7b)).toEqual(planFromRecipe(a, llama7b));
  });

  it('none adapts nothing; gpt2 targets resolve to its module paths', () => {
    expect(planFromRecipe(adapterSection({ method: 'none' }), llama7b).layers).toEqual(Array(32).fill({}));
    const plan = planFromRecipe(adapterSection({ method: 'lora', target_modules: ['c_attn', 'mlp.c_proj'] }), gpt2);
    expect(Object.keys(plan.layers[11])).toEqual(['attn.c_attn', 'mlp.c_proj']);
    expect(resolveTargets(gpt2, 'all-linear')).toEqual(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']);
  });
});

describe('budget solver', () => {
  const rankUnit = 32 * 78_080; // one rank of plain LoRA over 32 layers x 7 modules
  it.each([
    ['lora, exactly r8', 'lora', { trainable: 19_988_480 }, 'trainable', 19_988_480],
    ['lora, one short of r8 -> r7', 'lora', { trainable: 19_988_479 }, 'trainable', 7 * rankUnit],
    ['lora, 1% of 6.74B -> r26', 'lora', { percent: 1 }, 'trainable', 26 * rankUnit],
    ['hilo pattern 2468 at 80.65M stays "2468"', 'hilo-2468', { trainable: 80_650_240 }, 'trainable', 80_650_240],
    ['moe-uniform under an active budget: 2 experts top-2 do not fit, 1 does', 'moe-uniform', { active: 30_000_000 }, 'active', 19_988_480],
    ['alphalora under a trainable budget', 'alphalora', { trainable: 50_000_000 }, 'trainable', null],
    ['hilo proportional under a trainable budget', 'hilo', { trainable: 60_000_000 }, 'trainable', null],
    ['mola pattern 2468 shrinks ranks to fit (r1 = 18,186,240)', 'mola', { trainable: 20_000_000 }, 'trainable', 18_186_240],
  ] as const)('%s', (_n, m, budget, measure, exact) => {
    const pattern = m === 'hilo-2468' ? '2468' : null;
    const a = adapterSection({ method: m.replace('-2468', ''), budget, experts: { pattern, total: null, beta: 2.5, groups: 4, per_layer: 4 } });
    const alphas = Array.from({ length: 32 }, (_, l) => 2 + (l % 3));
    const plan = planFromRecipe(a, llama7b, m === 'alphalora' ? probe('alpha-hill', alphas) : undefined);
    const c = countPlan(plan, shapes7b);
    const limit = 'percent' in budget ? Math.floor(0.01 * 6_738_415_616) : Object.values(budget)[0];
    expect(c[measure]).toBeLessThanOrEqual(limit);
    if (exact !== null) expect(c[measure]).toBe(exact);
    else expect(c[measure]).toBeGreaterThan(0.8 * limit); // the largest plan within, not a tiny one
  });

  it.each([
    ['lora', { trainable: 1000 }, /recipe\.adapter\.budget\.trainable: got 1000 .*allowed: at least 2,498,560 trainable parameters/],
    ['moe-uniform', { active: 100 }, /budget\.active: got 100 .*allowed: at least 2,498,560 active parameters.*1 expert per layer at rank 1/],
    ['mola', { percent: 0.0001 }, /budget\.percent: got 0\.0001 .*allowed: at least 18,186,240 trainable.*experts.pattern "2468" at rank 1/],
    ['lora', { trainable: 1, active: 2 }, /recipe\.adapter\.budget: got .*allowed: exactly one of/],
    ['lora', { trainable: -5 }, /recipe\.adapter\.budget\.trainable: got -5; allowed: a finite number > 0/],
  ] as const)('impossible or malformed budget for %s: %j', (m, budget, msg) => {
    expect(() => planFromRecipe(adapterSection({ method: m, budget }), llama7b)).toThrow(msg);
  });
});

describe('errors name the field, the value and what is allowed', () => {
  it.each([
    [{ method: 'adalora' }, undefined, /recipe\.adapter\.method: got "adalora"; allowed: "none" \| "lora" \| "moe-uniform" \| "mola" \| "alphalora" \| "hilo" \| "manual"/],
    [{ target_modules: ['q_proj', 'qkv'] }, undefined, /recipe\.adapter\.target_modules: got "qkv"; allowed: "q_proj" \| .*"mlp\.down_proj"/],
    [{ probe: 'alpha-hill' }, undefined, /recipe\.adapter\.probe: method "hilo" needs "alpha-hill" scores; run `hilo probe RECIPE`/],
    [{ method: 'alphalora' }, probe('depth', Array(32).fill(1)), /recipe\.adapter\.probe: got "depth"; allowed: "alpha-hill" \(alphalora always uses alpha-hill\)/],
    [{ probe: 'grad-sensitivity' }, probe('grad-sensitivity', [1, 2, 3]), /probe\.layers: got 3 layer scores; allowed: exactly 32/],
    [{ method: 'mola', experts: { pattern: '24x8', total: null, beta: 2.5, groups: 4, per_layer: 4 } }, undefined, /experts\.pattern: got "24x8"/],
    [{ rank: { r: 8, min: 9, max: 8 } }, undefined, /recipe\.adapter\.rank\.min: got 9; allowed: at most rank\.max \(8\)/],
  ] as const)('%j', (over, p, msg) => {
    expect(() => planFromRecipe(adapterSection(over as never), llama7b, p)).toThrow(msg);
  });

  it('plans that do not match the model', () => {
    const plan = planFromRecipe(adapterSection({ method: 'lora' }), stories260K);
    expect(() => checkPlanFitsModel(plan, llama7b)).toThrow('plan.layers: got "5 layers"; allowed: exactly 32 layers');
    const bad = { ...plan, layers: plan.layers.map((m, l) => (l === 3 ? { ...m, 'self_attn.qkv_proj': m['self_attn.q_proj'] } : m)) };
    expect(() => checkPlanFitsModel(bad, stories260K)).toThrow(/plan\.layers\[3\] module: got "self_attn\.qkv_proj"; allowed: "self_attn\.q_proj"/);
    const zero = { ...plan, layers: plan.layers.map((m) => ({ ...m, 'mlp.up_proj': { experts: 0, rank: 2, topK: 1 } })) };
    expect(() => checkPlanFitsModel(zero, stories260K)).toThrow('plan.layers[0]["mlp.up_proj"].experts: got 0; allowed: an integer >= 1');
  });
});

describe('budget sweep: never over, and the next size up would be', () => {
  const shapes = moduleShapes(stories260K);
  const alphas = [3.3, 2.9, 4.0, 3.7, 2.95];
  it.each(['lora', 'moe-uniform', 'mola', 'alphalora', 'hilo'])('%s on stories260K', (m) => {
    for (const measure of ['trainable', 'active'] as const) {
      for (const limit of [6_000, 9_999, 20_000, 33_333, 80_000, 150_000, 400_000]) {
        const a = adapterSection({ method: m, budget: { [measure]: limit } });
        const p = m === 'alphalora' ? probe('alpha-hill', alphas) : undefined;
        let plan;
        try {
          plan = planFromRecipe(a, stories260K, p);
        } catch (e) {
          // only when even the smallest plan is over, and the message says how small that is
          expect(String(e)).toMatch(new RegExp(`budget\\.${measure}: got ${limit} .*allowed: at least [0-9,]+ ${measure} parameters`));
          const least = Number(/at least ([0-9,]+)/.exec(String(e))![1].replace(/,/g, ''));
          expect(least).toBeGreaterThan(limit);
          continue;
        }
        const c = countPlan(plan, shapes);
        expect(c[measure]).toBeLessThanOrEqual(limit);
        // the largest plan: every bigger setting of the knob the solver turned is over the limit (or no bigger)
        const first = (k: 'experts' | 'rank') => plan.layers.map((x) => Object.values(x)[0][k]);
        const T = first('experts').reduce((x, y) => x + y, 0);
        const rankTop = Math.max(...first('rank'));
        const unbudgeted = { ...a, budget: null };
        const sizeAt = (over: Partial<typeof a>) => countPlan(planFromRecipe({ ...unbudgeted, ...over }, stories260K, p), shapes)[measure];
        const turnedExperts = (m === 'moe-uniform' || m === 'alphalora' || m === 'hilo') && rankTop === (m === 'hilo' ? 8 : 8);
        if (turnedExperts) {
          for (let more = 1; more <= 10 && T + 5 * more <= 64 * 5; more++) { // the solver stops at 64 experts per layer
            const over = m === 'moe-uniform'
              ? { experts: { ...a.experts, per_layer: T / 5 + more } }
              : { experts: { ...a.experts, total: T + more } };
            const size = sizeAt(over);
            expect(size > limit || size <= c[measure], `${measure} ${limit}: T ${T} + ${more} -> ${size} (chose ${c[measure]})`).toBe(true);
          }
        } else if (rankTop < 32) {
          const fewest = m === 'moe-uniform' ? { experts: { ...a.experts, per_layer: 1 } } : m === 'lora' || m === 'mola' ? {} : { experts: { ...a.experts, total: 5 } };
          const rank = m === 'hilo' ? { min: Math.max(1, Math.round((2 * (rankTop + 1)) / 8)), max: rankTop + 1, r: 8 } : { ...a.rank, r: rankTop + 1 };
          expect(sizeAt({ ...fewest, rank })).toBeGreaterThan(limit);
        }
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import { countPlan, formatParamTable, paramRows } from '../../src/adapters/params.ts';
import type { AdapterPlan, ModulePlan } from '../../src/adapters/plan.ts';
import { moduleShapes } from '../../src/model/families.ts';
import type { ModelConfig } from '../../src/model/types.ts';

// Llama-2-7B from its config.json alone.
const llama7b: ModelConfig = {
  arch: 'llama', modelType: 'llama', vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32,
  numKvHeads: 32, headDim: 128, intermediateSize: 11008, maxPositions: 4096, tieWordEmbeddings: false,
  ropeTheta: 10000, ropeScaling: null, rmsNormEps: 1e-5, attentionBias: false, mlpBias: false,
  hiddenAct: 'silu', layerNormEps: 1e-5, scaleAttnByInverseLayerIdx: false, bosTokenId: 1, eosTokenId: 2,
  padTokenId: null,
};
const ALL = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

function plan(perLayer: (l: number) => ModulePlan): Pick<AdapterPlan, 'layers' | 'strategy'> {
  return {
    strategy: 'topk',
    layers: Array.from({ length: 32 }, (_, l) => Object.fromEntries(ALL.map((m) => [m, perLayer(l)]))),
  };
}
const quarter = (l: number, v: number[]) => v[Math.floor((l * 4) / 32)];

describe('countPlan on Llama-2-7B (closed form sum_l n_l (r_l sum(in+out) + sum in))', () => {
  const shapes = moduleShapes(llama7b);
  it.each([
    ['LoRA r8, all modules', () => ({ experts: 1, rank: 8, topK: 1 }), 19_988_480, 19_988_480],
    ['uniform 5 experts r8 top-2', () => ({ experts: 5, rank: 8, topK: 2 }), 105_635_840, 45_670_400],
    ['experts 2468 x ranks 2468', (l: number) => ({ experts: quarter(l, [2, 4, 6, 8]), rank: quarter(l, [2, 4, 6, 8]), topK: 2 }), 80_650_240, 30_679_040],
  ] as const)('%s', (_name, f, trainable, active) => {
    const c = countPlan(plan(f), shapes);
    expect(c.trainable).toBe(trainable);
    expect(c.active).toBe(active);
    // closed form for the trainable count
    let closed = 0;
    for (let l = 0; l < 32; l++) {
      const m = f(l);
      const router = m.experts > 1 ? m.experts * (6 * 4096 + 11008) : 0;
      closed += m.experts * m.rank * 78_080 + router;
    }
    expect(c.trainable).toBe(closed);
  });

  it('names the module when a plan does not match the model', () => {
    expect(() => countPlan({ strategy: 'topk', layers: [{ 'self_attn.qq_proj': { experts: 1, rank: 1, topK: 1 } }] }, shapes))
      .toThrow(/qq_proj/);
  });
});

describe('paramRows / formatParamTable', () => {
  const shapes = moduleShapes(llama7b);
  it('rows add up to countPlan and split out the router', () => {
    const p = plan((l) => ({ experts: quarter(l, [2, 4, 6, 8]), rank: quarter(l, [2, 4, 6, 8]), topK: 2 }));
    const rows = paramRows(p, shapes);
    expect(rows.length).toBe(32 * 7);
    expect(rows.reduce((s, r) => s + r.trainable, 0)).toBe(80_650_240);
    expect(rows.reduce((s, r) => s + r.active, 0)).toBe(30_679_040);
    // layer 31 down_proj: 8 experts of rank 8 on 11008 -> 4096, router 8 x 11008
    const down = rows.find((r) => r.layer === 31 && r.module === 'mlp.down_proj')!;
    expect(down).toMatchObject({ experts: 8, rank: 8, activeExperts: 2, router: 88_064, trainable: 8 * 8 * 15_104 + 88_064, active: 2 * 8 * 15_104 + 88_064 });
  });
  it('the table ends with the total', () => {
    const text = formatParamTable(plan(() => ({ experts: 1, rank: 8, topK: 1 })), shapes);
    expect(text.split('\n').at(-1)).toMatch(/^all\s+\(total\)\s+19,988,480\s+19,988,480$/);
    expect(text.split('\n').length).toBe(1 + 32 * 7 + 32 + 1);
  });
});

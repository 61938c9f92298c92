/** The merge and fold rules as pure functions, on hand-worked values. */
import { describe, expect, it } from 'vitest';
import { addDelta, loraDeltaWeight, type Matrix } from '../../src/export/delta.ts';
import { loraScale } from '../../src/adapters/plan.ts';
import { foldExperts } from '../../src/export/fold.ts';
import { patternValue } from '../../src/export/peft-import.ts';

const m = (rows: number[][]): Matrix => ({ shape: [rows.length, rows[0].length], data: Float32Array.from(rows.flat()) });
const rowsOf = (x: Matrix) => Array.from({ length: x.shape[0] }, (_, i) => Array.from(x.data.slice(i * x.shape[1], (i + 1) * x.shape[1])));

describe('loraDeltaWeight (PEFT get_delta_weight)', () => {
  // A [r=2, in=3], B [out=2, r=2]: B·A = [[1*1+2*4, 1*2+2*5, 1*3+2*6], [3*1+4*4, 3*2+4*5, 3*3+4*6]] = [[9,12,15],[19,26,33]]
  const A = m([[1, 2, 3], [4, 5, 6]]);
  const B = m([[1, 2], [3, 4]]);
  it('is scaling · B·A in nn.Linear layout [out, in]', () => {
    const d = loraDeltaWeight(A, B, 0.5, false);
    expect(d.shape).toEqual([2, 3]);
    expect(rowsOf(d)).toEqual([[4.5, 6, 7.5], [9.5, 13, 16.5]]);
  });
  it('is transposed to [in, out] for Conv1D (fan_in_fan_out)', () => {
    const d = loraDeltaWeight(A, B, 2, true);
    expect(d.shape).toEqual([3, 2]);
    expect(rowsOf(d)).toEqual([[18, 38], [24, 52], [30, 66]]);
  });
  it('refuses a B that does not fit A, and addDelta adds elementwise', () => {
    expect(() => loraDeltaWeight(A, m([[1, 2, 3]]), 1, false)).toThrow(/does not fit/);
    expect(rowsOf(addDelta(m([[1, 1, 1], [2, 2, 2]]), loraDeltaWeight(A, B, 1, false)))).toEqual([[10, 13, 16], [21, 28, 35]]);
  });
});

const PEFT_ALPHA_16 = { alpha: 16, scaling: 'alpha/r', fixedScale: 0 } as const;

describe('foldExperts', () => {
  const e1 = { A: m([[1, 0], [0, 1]]), B: m([[1, 2], [3, 4], [5, 6]]), scale: 8, weight: 0.75 };
  const e2 = { A: m([[2, 1]]), B: m([[1], [0], [-1]]), scale: 16, weight: 0.25 };
  it('stacks A rows, puts each B side by side scaled by w·s_e/s, so s·B·A = Σ w s_e B_e A_e', () => {
    const s = loraScale(PEFT_ALPHA_16, 3); // alpha 16 over the folded rank 3
    const { A, B } = foldExperts([e1, e2], s);
    expect(rowsOf(A)).toEqual([[1, 0], [0, 1], [2, 1]]);
    const c1 = (0.75 * 8) / s;
    const c2 = (0.25 * 16) / s;
    expect(rowsOf(B).map((r) => r.map((v) => Number(v.toFixed(5))))).toEqual(
      [[c1, 2 * c1, c2], [3 * c1, 4 * c1, 0], [5 * c1, 6 * c1, -c2]].map((r) => r.map((v) => Number(Math.fround(v).toFixed(5)))));
    const folded = loraDeltaWeight(A, B, s, false);
    // Σ_e w_e s_e B_e A_e by hand: 6·B1 + 4·[[2,1],[0,0],[-2,-1]]
    expect(rowsOf(folded).flat().map((v) => Number(v.toFixed(4)))).toEqual([14, 16, 18, 24, 22, 32]);
  });
  it('copies one expert with weight 1 and matching scale bit for bit', () => {
    const one = { ...e1, weight: 1, scale: 4 };
    const { A, B } = foldExperts([one], 4);
    expect(A.data).toEqual(one.A.data);
    expect(B.data).toEqual(one.B.data);
  });
  it('loraScale is PEFT scaling: alpha/r, or alpha/√r with use_rslora', () => {
    expect(loraScale(PEFT_ALPHA_16, 4)).toBe(4);
    expect(loraScale({ ...PEFT_ALPHA_16, scaling: 'alpha/sqrt(r)' }, 4)).toBe(8);
  });
});

describe("patternValue (PEFT's rank_pattern / alpha_pattern lookup)", () => {
  it.each([
    [{ 'model.layers.1.self_attn.q_proj': 4 }, 'model.layers.1.self_attn.q_proj', 4],
    [{ 'model.layers.1.self_attn.q_proj': 4 }, 'model.layers.11.self_attn.q_proj', undefined],
    [{ q_proj: 6 }, 'model.layers.3.self_attn.q_proj', 6],
    [{ q_proj: 6 }, 'model.layers.3.self_attn.xq_proj', undefined],
    [{ 'layers.0.mlp.down_proj': 2, down_proj: 8 }, 'model.layers.0.mlp.down_proj', 2],
    [{}, 'model.layers.0.mlp.down_proj', undefined],
  ])('%j on %s -> %s', (pattern, name, want) => {
    expect(patternValue(pattern, name)).toBe(want);
  });
});

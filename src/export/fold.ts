/**
 * Folding a module's LoRA experts into one LoRA of rank Σ r_e, as pure functions.
 *
 * A mixture computes Σ_e g_e(x) · s_e · B_e A_e x with input-dependent gates g. Replacing each
 * gate by its mean w_e over calibration tokens gives a static sum, which is exactly one LoRA with
 *
 *   A = [A_1; A_2; ...]                      rows stacked: [Σr, in]
 *   B = [c_1 B_1, c_2 B_2, ...]              columns side by side: [out, Σr]
 *   c_e = w_e · s_e / s                      s = the folded LoRA's own scaling
 *
 * so s · B A = Σ_e w_e s_e B_e A_e. One expert (w = 1, s_e = s) is copied unchanged: exact.
 */
import type { Matrix } from './delta.ts';

export interface ExpertWeights {
  /** [r, in] */
  A: Matrix;
  /** [out, r] */
  B: Matrix;
  /** The expert's LoRA scale (loraScale(plan, r)). */
  scale: number;
  /** Its mean routing weight (1 for a module with one expert). */
  weight: number;
}

/** One LoRA (A [Σr, in], B [out, Σr]) whose `scaling` · B·A equals Σ_e w_e s_e B_e A_e. */
export function foldExperts(experts: readonly ExpertWeights[], scaling: number): { A: Matrix; B: Matrix } {
  if (experts.length === 0) throw new Error('foldExperts: no experts');
  const din = experts[0].A.shape[1];
  const dout = experts[0].B.shape[0];
  const R = experts.reduce((s, e) => s + e.A.shape[0], 0);
  const A = new Float32Array(R * din);
  const B = new Float32Array(dout * R);
  let at = 0;
  for (const e of experts) {
    const r = e.A.shape[0];
    if (e.A.shape[1] !== din || e.B.shape[0] !== dout || e.B.shape[1] !== r) {
      throw new Error(`foldExperts: expert shapes A [${e.A.shape}] B [${e.B.shape}] do not fit [${R}, ${din}] / [${dout}, ${R}]`);
    }
    A.set(e.A.data, at * din);
    // one expert keeps its B bit for bit; otherwise scale by w_e·s_e/s
    const c = experts.length === 1 && e.weight === 1 && e.scale === scaling ? 1 : (e.weight * e.scale) / scaling;
    for (let o = 0; o < dout; o++) for (let k = 0; k < r; k++) B[o * R + at + k] = c === 1 ? e.B.data[o * r + k] : c * e.B.data[o * r + k];
    at += r;
  }
  return { A: { shape: [R, din], data: A }, B: { shape: [dout, R], data: B } };
}

/**
 * Analytic matmul FLOPs of one step of the benchmark (scripts/bench-train.ts), so achieved
 * GFLOP/s can be set against the backend's own matmul rate. Only products count (2·m·k·n each);
 * norms, RoPE, softmax, routing and the optimizer are elementwise and left out, so the figure
 * is a lower bound on the work done.
 *
 *   forward F = Σ_layers [ Σ_proj 2·N·in·out  +  attention 4·B·Hq·T²·d ]  +  head 2·N·H·V
 *   adapters  A = Σ_modules 2·N·(in·E·r + E·r·out + in·E·[E > 1])
 *   train step = 2·F_frozen-weight products + 3·F_attention + 3·A
 *
 * Why 2 and 3: a product with a frozen weight needs only its input gradient in backward
 * (dX = dY·Wᵀ, one more product of the same size); a product whose operands both need
 * gradients (attention's Q·Kᵀ and P·V, the adapters' A and B) needs two (dX and dW).
 */
import type { AdapterPlan } from '../src/adapters/plan.ts';
import { moduleShapes } from '../src/model/families.ts';
import type { ModelConfig } from '../src/model/types.ts';

export interface StepFlops {
  /** Frozen-weight projections and the LM head, forward. */
  frozen: number;
  /** Q·Kᵀ and P·V, forward. */
  attention: number;
  /** Adapter products (A, B, router), forward. */
  adapters: number;
}

/** Forward FLOPs by kind for a batch of B sequences of T tokens. */
export function forwardFlops(c: ModelConfig, B: number, T: number, plan: AdapterPlan | null): StepFlops {
  const N = B * T;
  const shapes = moduleShapes(c);
  let frozen = 2 * N * c.hiddenSize * c.vocabSize; // LM head
  let adapters = 0;
  shapes.forEach((layer, l) => {
    for (const [path, { in: din, out: dout }] of Object.entries(layer)) {
      frozen += 2 * N * din * dout;
      const m = plan?.layers[l]?.[path];
      if (!m || m.experts < 1 || m.rank < 1) continue;
      const er = m.experts * m.rank;
      adapters += 2 * N * (din * er + er * dout + (m.experts > 1 ? din * m.experts : 0));
    }
  });
  const attention = c.numLayers * 4 * B * c.numHeads * T * T * c.headDim;
  return { frozen, attention, adapters };
}

/** FLOPs of one training step (forward + backward of the trainable path), see the header. */
export function trainStepFlops(f: StepFlops): number {
  return 2 * f.frozen + 3 * f.attention + 3 * f.adapters;
}

/** FLOPs of a frozen forward pass. */
export function forwardStepFlops(f: StepFlops): number {
  return f.frozen + f.attention + f.adapters;
}

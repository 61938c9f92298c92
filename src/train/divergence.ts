/**
 * When a run has gone bad and further steps only waste time: a loss or gradient norm that is
 * not finite, or gradients that vanished while the loss got worse. The last is what a far too
 * large learning rate does to a softmax model: the first steps throw the weights into
 * saturation, where every gradient is ~0 and the loss stays high, so the run would "finish"
 * with a useless adapter and no NaN to stop it (lr=1e6 on stories260K: grad_norm 13 -> 3e-6
 * from step 4 on, loss 4.3 -> 9).
 */

/** What the judgement remembers between steps (kept in the trainer state, so a resumed run knows its start). */
export interface RunHealth {
  /** Loss and gradient norm of the run's first step (before any update), the reference. */
  firstLoss: number | null;
  firstGradNorm: number | null;
  /** Consecutive steps whose gradients vanished while the loss was above its start. */
  vanishedSteps: number;
}

export type StepFault = 'loss' | 'grad_norm' | 'vanished' | null;

/** A gradient norm this far below the first step's means the weights no longer respond. */
export const VANISHED_RATIO = 1e-4;
/** Steps in a row that must look vanished before the run is stopped (one odd batch is not enough). */
export const VANISHED_STEPS = 3;

export const freshHealth = (): RunHealth => ({ firstLoss: null, firstGradNorm: null, vanishedSteps: 0 });

/** Judge one optimizer step from its loss and gradient norm (before clipping). */
export function judgeStep(h: RunHealth, loss: number, gradNorm: number): { health: RunHealth; fault: StepFault } {
  if (!Number.isFinite(loss)) return { health: h, fault: 'loss' };
  if (!Number.isFinite(gradNorm)) return { health: h, fault: 'grad_norm' };
  if (h.firstLoss === null || h.firstGradNorm === null) {
    return { health: { firstLoss: loss, firstGradNorm: gradNorm, vanishedSteps: 0 }, fault: null };
  }
  const vanished = h.firstGradNorm > 0 && gradNorm <= h.firstGradNorm * VANISHED_RATIO && loss >= h.firstLoss;
  const vanishedSteps = vanished ? h.vanishedSteps + 1 : 0;
  return { health: { ...h, vanishedSteps }, fault: vanishedSteps >= VANISHED_STEPS ? 'vanished' : null };
}

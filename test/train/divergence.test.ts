import { describe, expect, it } from 'vitest';
import { freshHealth, judgeStep, VANISHED_STEPS, type RunHealth, type StepFault } from '../../src/train/divergence.ts';

const started: RunHealth = { firstLoss: 4.3, firstGradNorm: 13, vanishedSteps: 0 };

describe('judgeStep', () => {
  it.each<[string, RunHealth, number, number, StepFault, number]>([
    // name, health before, loss, grad norm, fault, vanished steps after
    ['the first step sets the reference', freshHealth(), 4.3, 13, null, 0],
    ['a NaN loss', started, NaN, 13, 'loss', 0],
    ['an infinite loss', started, Infinity, NaN, 'loss', 0],
    ['a NaN gradient norm at a finite loss', started, 6.4, NaN, 'grad_norm', 0],
    ['an infinite gradient norm', started, 6.4, Infinity, 'grad_norm', 0],
    ['a normal step', started, 3.9, 9, null, 0],
    ['vanished gradients, loss above its start: counted', started, 9.1, 2.7e-6, null, 1],
    ['a zero gradient norm, loss above its start: counted', { ...started, vanishedSteps: 1 }, 6.2, 0, null, 2],
    ['the third vanished step in a row stops the run', { ...started, vanishedSteps: VANISHED_STEPS - 1 }, 9.1, 1e-6, 'vanished', VANISHED_STEPS],
    ['a small norm with the loss below its start is convergence, not a fault', { ...started, vanishedSteps: 2 }, 0.01, 1e-6, null, 0],
    ['a step that recovers resets the count', { ...started, vanishedSteps: 2 }, 9.1, 0.5, null, 0],
    ['no reference when the first step had no gradient (no labelled tokens)', { firstLoss: 0, firstGradNorm: 0, vanishedSteps: 0 }, 5, 0, null, 0],
  ])('%s', (_name, before, loss, norm, fault, vanished) => {
    const { health, fault: got } = judgeStep(before, loss, norm);
    expect(got).toBe(fault);
    if (!fault || fault === 'vanished') expect(health.vanishedSteps).toBe(vanished);
  });

  it('keeps the first step as the reference', () => {
    let h = freshHealth();
    for (const [loss, norm] of [[4.3, 13], [3.6, 11], [10.6, 67]]) h = judgeStep(h, loss, norm).health;
    expect(h).toEqual({ firstLoss: 4.3, firstGradNorm: 13, vanishedSteps: 0 });
  });
});

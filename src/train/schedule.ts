/**
 * Learning-rate schedules as pure functions of the optimizer step (HF semantics: linear warmup
 * from 0, then cosine to 0, linear to 0, or constant).
 */
export type SchedulerType = 'cosine' | 'linear' | 'constant';

export interface Schedule {
  type: SchedulerType;
  baseLr: number;
  /** Warmup in optimizer steps (already resolved from a ratio). */
  warmupSteps: number;
  totalSteps: number;
}

/**
 * Learning rate used by optimizer step `step` (0-based), exactly as transformers'
 * get_{cosine,linear,constant}_schedule_with_warmup: the first warmup step runs at lr 0.
 */
export function lrAt(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return (s.baseLr * step) / Math.max(1, s.warmupSteps);
  if (s.type === 'constant') return s.baseLr;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  if (s.type === 'linear') return s.baseLr * Math.max(0, (s.totalSteps - step) / decaySteps);
  const progress = (step - s.warmupSteps) / decaySteps;
  return s.baseLr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** `warmup_steps` below 1 is a fraction of the total steps (HF convention). */
export function resolveWarmup(warmup: number, totalSteps: number): number {
  return warmup > 0 && warmup < 1 ? Math.round(warmup * totalSteps) : Math.round(warmup);
}

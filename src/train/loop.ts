/**
 * The training loop, in one visible function. Everything it touches was prepared by run.ts:
 * the frozen model with adapters injected (or made trainable), the encoded data, the list of
 * trainable variables. Per optimizer step:
 *
 *   for each of gradient_accumulation_steps micro-batches:
 *     loss = CE(next token, labelled positions) + Σ router losses (already weighted)
 *     grads += ∂loss/∂trainables / accumulation     from the run's GradientSource (gradients.ts):
 *                                                    this thread alone, or split over replicas
 *   clip to max_grad_norm; stop on a NaN/Inf loss or gradient, or gradients that vanished
 *   while the loss got worse (divergence.ts); the checkpoints written so far are kept
 *   AdamW(lr(step)); log; eval every eval_steps; checkpoint every save_steps
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatches, makeChoiceBatches, type BatchPosition } from '../data/batch.ts';
import { HiloError } from '../errors.ts';
import { MetricsFile } from '../log/metrics.ts';
import { Progress } from '../log/progress.ts';
import { AdamW } from './adamw.ts';
import { latestCheckpoint, restoreCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.ts';
import { clipFactor } from './clip.ts';
import { freshHealth, judgeStep, VANISHED_STEPS, type RunHealth, type StepFault } from './divergence.ts';
import { evaluateAccuracy, evaluateLoss, type EvalMetrics, type SequenceScorer } from './evaluate.ts';
import { startGradients } from './gradients.ts';
import type { Run } from './run.ts';
import { lrAt, resolveWarmup, type Schedule } from './schedule.ts';
import type { MicroBatch } from './shard.ts';

export interface TrainResult {
  steps: number;
  finalLoss: number | null;
  eval: EvalMetrics | null;
  tokensPerSecond: number;
  wallSeconds: number;
  /** Why the loop ended: finished, interrupted (SIGINT) or diverged (NaN/Inf loss or gradient, vanished gradients). */
  stopped: 'finished' | 'interrupted' | 'diverged';
}

/** Total optimizer steps: max_steps, or epochs over the training sequences. */
export function totalSteps(run: Pick<Run, 'recipe' | 'train'>): number {
  const t = run.recipe.train;
  if (t.max_steps > 0) return t.max_steps;
  const perEpoch = Math.ceil(run.train.length / t.batch_size);
  return Math.max(1, Math.ceil((perEpoch * t.num_train_epochs) / t.gradient_accumulation_steps));
}

/** Per-router expert usage as a W&B table: one row per (router, expert). */
export function usageTable(usage: Record<string, number[]>): { columns: string[]; data: Array<[string, number, number]> } {
  const data: Array<[string, number, number]> = [];
  for (const [router, fractions] of Object.entries(usage)) fractions.forEach((f, e) => data.push([router, e, f]));
  return { columns: ['router', 'expert', 'fraction'], data };
}

/** Evaluate on the run's eval data: loss/perplexity, accuracy when the task has candidates. */
export async function evaluateRun(run: Run, split: 'eval' | 'test' = 'eval'): Promise<EvalMetrics> {
  const seqs = split === 'eval' ? run.evalSeqs : run.testSeqs;
  const items = split === 'eval' ? run.evalItems : run.testItems;
  const bs = run.recipe.train.eval_batch_size;
  // once train() has started the gradient source, it scores (split over its replicas, if any)
  const source = run.gradientSource;
  const score: SequenceScorer | undefined = source ? (b, ctx) => source.score(b, ctx) : undefined;
  const metrics = seqs.length ? await evaluateLoss(run.model, seqs, bs, run.padId, score) : {};
  if (items && items.length) Object.assign(metrics, await evaluateAccuracy(run.model, items, bs, run.padId, score));
  return metrics;
}

const FAULT_NAMES: Record<NonNullable<StepFault>, string> = {
  loss: 'loss NaN/Inf', grad_norm: 'gradient norm NaN/Inf', vanished: 'gradients vanished',
};

/** The sentence a stopped run prints: what went wrong, the learning rate, and which checkpoint (if any) is there to go back to. */
function faultMessage(fault: NonNullable<StepFault>, at: { step: number; loss: number; gradNorm: number; lr: number; run: Run; health: RunHealth }): string {
  const t = at.run.recipe.train;
  const last = latestCheckpoint(at.run.runDir);
  const kept = last
    ? `The last checkpoint, ${last}, is kept (written before this step)`
    : `No checkpoint was written before this step (train.save_steps ${t.save_steps})`;
  const lrs = `train.learning_rate ${t.learning_rate} (${at.lr.toExponential(2)} at this step)`;
  if (fault === 'vanished') {
    return (
      `gradients vanished at step ${at.step}: grad_norm ${at.gradNorm.toExponential(1)} for ${VANISHED_STEPS} steps against ` +
      `${at.health.firstGradNorm!.toPrecision(3)} at the first step, while the loss (${at.loss.toFixed(4)}) stayed above its start ` +
      `(${at.health.firstLoss!.toFixed(4)}): the weights are saturated, most likely by ${lrs}; stopping. ` +
      `${kept}${last ? ', though its weights may be saturated already' : ''}; lower train.learning_rate and start over ` +
      'with train.overwrite_output_dir=true.'
    );
  }
  const what = fault === 'loss' ? `loss is ${at.loss}` : `gradient norm is ${at.gradNorm} (loss ${at.loss.toFixed(4)})`;
  return `${what} at step ${at.step}: stopping. ${kept}; lower ${lrs} or set train.max_grad_norm` +
    (last ? ', then continue from it with resume=true.' : ', then start over with train.overwrite_output_dir=true.');
}

export async function train(run: Run): Promise<TrainResult> {
  const t = run.recipe.train;
  const total = totalSteps(run);
  const schedule: Schedule = {
    type: t.lr_scheduler_type, baseLr: t.learning_rate, totalSteps: total,
    warmupSteps: resolveWarmup(t.warmup_steps, total),
  };
  const optimizer = new AdamW(run.trainables, { weightDecay: t.weight_decay });
  const progress = new Progress();
  const metrics = new MetricsFile(run.runDir, undefined, (m) => progress.message(m));

  // Resume: weights, optimizer moments, step and data position from the checkpoint.
  let state: TrainerState = { step: 0, data: { epoch: 0, index: 0 }, seed: run.recipe.seed, tokensSeen: 0, elapsedSeconds: 0, lastLoss: null };
  const resume = t.resume === true ? latestCheckpoint(run.runDir) : t.resume || null;
  if (t.resume === true && !resume) progress.message(`resume: no checkpoint in ${run.runDir} yet; starting from step 0`);
  if (resume) {
    state = restoreCheckpoint(resume, run.trainables, optimizer);
    progress.message(`resumed from ${resume} at step ${state.step}`);
  }
  // what a killed run logged past its checkpoint (or before its first one) is logged again
  metrics.truncateAfter(state.step);
  let health = state.health ?? freshHealth();
  const save = () =>
    saveCheckpoint(run.runDir, { trainables: run.trainables, optimizer, state, recipe: run.recipe, plan: run.plan });

  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);

  // One stream of micro-batches: label tokens (or text) by default, candidate sets for "choices".
  const batchOpts = { batchSize: t.batch_size, seed: run.recipe.seed, padId: run.padId };
  const items = run.trainItems;
  const batches: Iterator<{ micro: MicroBatch; position: BatchPosition }> = items
    ? (function* () {
        for (const { batch, answers, choices, position } of makeChoiceBatches(items, batchOpts, state.data as BatchPosition)) {
          yield { micro: { kind: 'choices', batch, answers, choices }, position };
        }
      })()
    : (function* () {
        for (const { batch, position } of makeBatches(run.train, batchOpts, state.data as BatchPosition)) yield { micro: { kind: 'tokens', batch }, position };
      })();
  const started = performance.now() - state.elapsedSeconds * 1000;
  let windowLoss = 0;
  let windowSteps = 0;
  let windowTokens = 0;
  let windowStart = performance.now();
  let lastEval: EvalMetrics | null = null;
  let stopped: TrainResult['stopped'] = 'finished';
  let fault: StepFault = null;

  try {
    // This thread alone, or train.data_parallel replicas in worker threads, each micro-batch split
    // over them (gradients.ts); kept for eval and the test split, until run.dispose().
    run.gradientSource ??= await startGradients(run.model, run.trainables, run.replicaSpec, run.dataParallel);
    const source = run.gradientSource;
    windowStart = performance.now();
    while (state.step < total) {
      const lr = lrAt(schedule, state.step);
      const accum = new Map<string, tf.Tensor>();
      let stepLoss = 0;
      let stepTokens = 0;
      let position = state.data as BatchPosition;
      for (let micro = 0; micro < t.gradient_accumulation_steps; micro++) {
        const { micro: batch, position: next } = batches.next().value!;
        position = next;
        // dropout seeds: (seed, step, micro-batch), and the shard when the source splits the batch
        const { loss, grads } = await source.gradients(batch, [run.recipe.seed, state.step, micro]);
        stepLoss += loss / t.gradient_accumulation_steps;
        for (const [key, g] of grads) {
          if (t.gradient_accumulation_steps === 1) {
            accum.set(key, g); // the mean of one: no kernel (a MoE model has ~100 gradients)
            continue;
          }
          const scaled = tf.tidy(() => (accum.has(key) ? accum.get(key)!.add(g.div(t.gradient_accumulation_steps)) : g.div(t.gradient_accumulation_steps)));
          accum.get(key)?.dispose();
          accum.set(key, scaled);
          g.dispose();
        }
        stepTokens += batch.batch.attentionMask.reduce((a: number, b: number) => a + b, 0);
      }
      // the clip coefficient goes to the optimizer, which scales as it reads (no kernel a gradient)
      const { norm: gradNorm, factor } = Number.isFinite(stepLoss) ? await clipFactor(accum, t.max_grad_norm) : { norm: NaN, factor: 1 };
      const judged = judgeStep(health, stepLoss, gradNorm);
      if (judged.fault) {
        tf.dispose([...accum.values()]);
        progress.message(faultMessage(judged.fault, { step: state.step + 1, loss: stepLoss, gradNorm, lr, run, health }));
        fault = judged.fault;
        stopped = 'diverged';
        break;
      }
      health = judged.health;
      optimizer.apply(accum, lr, factor);
      source.updated();
      tf.dispose([...accum.values()]);

      state = {
        ...state, step: state.step + 1, data: position, lastLoss: stepLoss, health,
        tokensSeen: state.tokensSeen + stepTokens, elapsedSeconds: (performance.now() - started) / 1000,
      };
      windowLoss += stepLoss;
      windowSteps += 1;
      windowTokens += stepTokens;
      const isLast = state.step === total;
      if (state.step % t.logging_steps === 0 || isLast) {
        const secs = (performance.now() - windowStart) / 1000;
        const record = {
          step: state.step, loss: windowLoss / windowSteps, lr, grad_norm: gradNorm,
          tokens_per_second: windowTokens / secs, elapsed_seconds: state.elapsedSeconds,
        };
        metrics.append(record);
        run.sink?.log(state.step, record);
        progress.update({ step: state.step, total, loss: record.loss, lr, tokensPerSecond: record.tokens_per_second, elapsedSeconds: state.elapsedSeconds }, true);
        windowLoss = windowSteps = windowTokens = 0;
        windowStart = performance.now();
      }
      if ((t.eval_steps > 0 && state.step % t.eval_steps === 0) || isLast) {
        lastEval = await evaluateRun(run);
        const { expertUsage, ...scalars } = lastEval;
        const record = { step: state.step, ...Object.fromEntries(Object.entries(scalars).map(([k, v]) => [`eval_${k}`, v])) };
        metrics.append({ ...record, ...(expertUsage && Object.keys(expertUsage).length ? { eval_expert_usage: expertUsage } : {}) });
        run.sink?.log(state.step, expertUsage && Object.keys(expertUsage).length ? { ...record, eval_expert_usage: usageTable(expertUsage) } : record);
        progress.message(`eval @ ${state.step}: ${Object.entries(scalars).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : Number(v).toFixed(4)}`).join(', ')}`);
      }
      if ((t.save_steps > 0 && state.step % t.save_steps === 0) || isLast || interrupted) await save();
      if (interrupted) {
        progress.message(`interrupted: checkpoint saved at step ${state.step} in ${run.runDir}; continue with resume=true`);
        stopped = 'interrupted';
        break;
      }
      // Let signals and logging I/O through between steps.
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    progress.done();
    optimizer.dispose();
  }
  const wall = (performance.now() - started) / 1000;
  if (stopped === 'diverged') throw new HiloError(`training diverged (${FAULT_NAMES[fault!]}) at step ${state.step + 1}; see the message above`);
  return {
    steps: state.step, finalLoss: state.lastLoss, eval: lastEval, wallSeconds: wall,
    tokensPerSecond: state.tokensSeen / Math.max(1e-9, wall), stopped,
  };
}

/**
 * The end of a run: the trained adapter (or full model) saved in the run folder, the test split
 * scored, and results.json written with everything a comparison needs (recipe, plan, trainable
 * and active parameters, metrics, wall time, tokens/s, backend).
 */
import fs from 'node:fs';
import path from 'node:path';
import { saveAdapters } from '../adapters/io.ts';
import { writeFileAtomic } from '../files.ts';
import { saveModel } from '../model/save.ts';
import { evaluateRun, type TrainResult } from './loop.ts';
import type { Run } from './run.ts';
import type { EvalMetrics } from './evaluate.ts';

export interface RunResults {
  recipe: Run['recipe'];
  plan: Run['plan'];
  params: Run['params'];
  data: Run['data'];
  backend: string;
  /** Data-parallel replicas the run trained on (train.data_parallel resolved). */
  data_parallel: number;
  steps: number;
  stopped: TrainResult['stopped'];
  final_loss: number | null;
  eval: Omit<EvalMetrics, 'expertUsage'> | null;
  test: Omit<EvalMetrics, 'expertUsage'> | null;
  expert_usage: Record<string, number[]> | null;
  wall_seconds: number;
  tokens_per_second: number;
  /** Where the trained weights are: an adapter folder, or a model folder for full training. */
  output: string;
}

/** Save what was trained into the run folder; returns its path. */
export async function saveTrained(run: Run): Promise<string> {
  if (run.adapters) {
    const dir = path.join(run.runDir, 'adapter');
    saveAdapters(run.adapters, dir, {
      base_model_name_or_path: run.recipe.model.path,
      method: run.recipe.adapter.method,
      trainable_params: run.params.trainable,
      active_params: run.params.active,
    });
    return dir;
  }
  const dir = path.join(run.runDir, 'model');
  await saveModel(run.model, dir, { tokenizerFrom: run.recipe.model.path });
  return dir;
}

export async function finishRun(run: Run, result: TrainResult): Promise<RunResults> {
  const output = await saveTrained(run);
  const strip = (m: EvalMetrics | null) => {
    if (!m) return null;
    const { expertUsage: _usage, ...rest } = m;
    return rest;
  };
  const test = run.testSeqs.length || run.testItems?.length ? await evaluateRun(run, 'test') : null;
  const results: RunResults = {
    recipe: run.recipe, plan: run.plan, params: run.params, data: run.data, backend: run.backend,
    data_parallel: run.dataParallel, steps: result.steps, stopped: result.stopped, final_loss: result.finalLoss,
    eval: strip(result.eval), test: strip(test), expert_usage: result.eval?.expertUsage ?? null,
    wall_seconds: result.wallSeconds, tokens_per_second: result.tokensPerSecond, output,
  };
  // One full turn of the event loop, through its I/O poll, before reporting: the test split can
  // run without one, and a process whose watcher is gone (a compare cell of a killed grid exits on
  // 'disconnect') must stop here rather than write results nobody collects. One setImmediate is
  // not enough: called from an I/O callback it runs in the same turn's check phase, before the
  // next poll reads the closed channel; the second one runs only after that poll.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  fs.mkdirSync(run.runDir, { recursive: true });
  writeFileAtomic(path.join(run.runDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const summary: Record<string, unknown> = { trainable_params: run.params.trainable, active_params: run.params.active };
  for (const [k, v] of Object.entries(results.test ?? {})) summary[`test_${k}`] = v;
  run.sink?.summary(summary);
  return results;
}

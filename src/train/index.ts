/** The train stage as the CLI and other stages use it: recipe file in, results out. */
import fs from 'node:fs';
import path from 'node:path';
import { fileError } from '../errors.ts';
import { loadRecipe } from '../recipe/load.ts';
import { finishRun, type RunResults } from './finish.ts';
import { latestCheckpoint } from './checkpoint.ts';
import { train } from './loop.ts';
import { prepareRun } from './run.ts';
import { formatMemory, type MemoryEstimate } from '../allocate/memory.ts';

/** The main thread's wasm heap as grown (its peak: it never shrinks) beside the estimate. */
async function heapAgainstEstimate(e: MemoryEstimate): Promise<string> {
  const tf = await import('@tensorflow/tfjs');
  const { wasmHeapBytes } = await import('../backend/wasm-heap.ts');
  const heap = wasmHeapBytes(tf);
  const rss = process.memoryUsage().rss;
  return `RSS now ${formatMemory(rss)}${heap === null ? '' : `, main wasm heap ${formatMemory(heap)} (estimated ${formatMemory(e.heap)})`}; estimated peak ${formatMemory(e.total)}`;
}

export { train, evaluateRun, totalSteps, type TrainResult } from './loop.ts';
export { prepareRun, type Run } from './run.ts';
export { finishRun, type RunResults } from './finish.ts';

function fmt(v: unknown): string {
  return typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(4)) : String(v);
}

/**
 * Load a recipe, train, evaluate on the test split, save. Progress goes to `log` (stderr), the
 * results and where everything went to `report` (stdout, so `> file` keeps just them). A
 * file-system fault (full disk, read-only folder) is reported as a sentence naming the file.
 */
export async function trainRecipe(
  file: string,
  overrides: readonly string[] = [],
  log = (m: string) => process.stderr.write(`${m}\n`),
  report: (m: string) => unknown = (m) => process.stdout.write(`${m}\n`),
): Promise<RunResults> {
  try {
    return await trainLoaded(file, overrides, log, report);
  } catch (e) {
    throw fileError(e) ?? e;
  }
}

async function trainLoaded(file: string, overrides: readonly string[], log: (m: string) => unknown, report: (m: string) => unknown): Promise<RunResults> {
  const recipe = loadRecipe(file, overrides);
  // `--resume RUN_DIR` means the run's latest checkpoint.
  const resume = recipe.train.resume;
  if (typeof resume === 'string' && fs.existsSync(path.join(resume)) && !fs.existsSync(path.join(resume, 'trainer_state.json'))) {
    const latest = latestCheckpoint(resume);
    if (latest) recipe.train.resume = latest;
  }
  log(`run folder ${recipe.output_dir}`);
  const run = await prepareRun(recipe, { log });
  try {
    const result = await train(run);
    const results = await finishRun(run, result);
    const lines = [
      `${result.stopped} after ${result.steps} steps in ${result.wallSeconds.toFixed(1)} s (${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s on ${run.backend}${run.dataParallel > 1 ? ` x${run.dataParallel} replicas` : ''})`,
      ...Object.entries(results.test ?? {}).map(([k, v]) => `test ${k}: ${fmt(v)}`),
      `trained weights: ${results.output}`,
      ...(run.memory ? [`memory: ${await heapAgainstEstimate(run.memory)}`] : []),
      `results: ${path.join(run.runDir, 'results.json')}`,
    ];
    for (const l of lines) report(l);
    await run.sink?.finish(result.stopped === 'finished' ? 0 : 1);
    return results;
  } catch (e) {
    await run.sink?.finish(1);
    throw e;
  } finally {
    run.dispose();
  }
}

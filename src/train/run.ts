/**
 * Everything a training run needs, prepared from a recipe: backend, frozen model (or a
 * trainable one for `adapter.method: none`), tokenizer, encoded data, probe, plan, injected
 * adapters, parameter counts and the run folder with the resolved recipe and plan beside it.
 */
import type * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { injectAdapters, type Adapters } from '../adapters/inject.ts';
import { loadAdapters } from '../adapters/io.ts';
import type { AdapterPlan } from '../adapters/plan.ts';
import { countPlan } from '../adapters/params.ts';
import { planForRecipe } from '../allocate/for-recipe.ts';
import { withModelTargets } from '../allocate/targets.ts';
import { checkRunMemory, planOfAdapterDir } from '../allocate/memory-for-recipe.ts';
import { memorySummary, type MemoryEstimate } from '../allocate/memory.ts';
import { writePlanFile } from '../allocate/plan-file.ts';
import { initBackend } from '../backend/index.ts';
import { encodeCandidates, encodeDataset, encodeOptions, loadDataset, padIdOf, summarizeDataset, type DatasetSummary } from '../data/index.ts';
import type { EncodedExample, ScoringItem } from '../data/encode.ts';
import { HiloError } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';
import { createRandomModel } from '../model/init.ts';
import { checkMaxLength } from '../model/check.ts';
import { loadModel, readModelConfig, storageFor } from '../model/load.ts';
import { baseParams, moduleShapes } from '../model/families.ts';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.ts';
import type { CausalLM } from '../model/types.ts';
import type { Recipe } from '../recipe/schema.ts';
import { createWandb, resolveWandbSettings, type MetricSink } from '../log/wandb/index.ts';
import type { GradientSource } from './gradients.ts';
import { resolveDataParallel, type ReplicaSpec } from './replicas.ts';
import { claimRunDir } from './run-dir.ts';

export interface ParamSummary {
  /** Parameters the optimizer updates. */
  trainable: number;
  /** Adapter parameters a token touches (all trainable ones for full training). */
  active: number;
  /** Parameters of the frozen base model. */
  base: number;
  /** trainable as a percentage of base. */
  trainablePercent: number;
}

export interface Run {
  recipe: Recipe;
  runDir: string;
  backend: string;
  model: CausalLM;
  tokenizer: ModelTokenizer;
  plan: AdapterPlan;
  adapters: Adapters | null;
  /** Variables the optimizer updates, by stable name (adapter keys, or HF weight names). */
  trainables: Map<string, tf.Variable>;
  params: ParamSummary;
  data: DatasetSummary;
  train: EncodedExample[];
  /** Training examples as candidate sets, when data.loss is "choices"; null otherwise. */
  trainItems: ScoringItem[] | null;
  evalSeqs: EncodedExample[];
  testSeqs: EncodedExample[];
  evalItems: ScoringItem[] | null;
  testItems: ScoringItem[] | null;
  padId: number;
  sink: MetricSink | null;
  /** Replicas each micro-batch is split over (train.data_parallel resolved; 1 = this thread alone). */
  dataParallel: number;
  /** How a data-parallel replica builds this run's model and adapters again. */
  replicaSpec: ReplicaSpec;
  /** The memory estimate checked before loading (null when the model was initialised at random). */
  memory: MemoryEstimate | null;
  /** Where the loop's gradients come from once train() has started it: this thread or the replicas (they score eval and test too); dispose() closes it. */
  gradientSource: GradientSource | null;
  dispose(): void;
}

function hasWeights(dir: string): boolean {
  return fs.readdirSync(dir).some((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json');
}

/** The plan of a run without adapters (full training or base-model evaluation). */
function emptyPlan(): AdapterPlan {
  return { method: 'none', targetModules: [], strategy: 'topk', topP: 1, alpha: 1, scaling: 'alpha/r', fixedScale: 1, dropout: 0, layers: [] };
}

export interface PrepareOptions {
  log?: (msg: string) => void;
  /** false: no W&B sink (evaluation-only runs). */
  sink?: boolean;
  /** Load this trained adapter instead of injecting fresh ones. */
  adapterDir?: string;
  /** Evaluation only: nothing is written to the run folder and nothing is made trainable. */
  evalOnly?: boolean;
}

export async function prepareRun(recipe: Recipe, opts: PrepareOptions = {}): Promise<Run> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const runDir = recipe.output_dir;
  const evalOnly = opts.evalOnly ?? false;
  const claim = evalOnly ? null : claimRunDir(runDir, {
    resuming: recipe.train.resume !== false, overwrite: recipe.train.overwrite_output_dir, log,
  });
  try {
    const run = await prepareClaimed(recipe, opts, log);
    const dispose = run.dispose;
    run.dispose = () => {
      dispose();
      claim?.release();
    };
    return run;
  } catch (e) {
    claim?.release({ failed: true });
    throw e;
  }
}

async function prepareClaimed(recipe: Recipe, opts: PrepareOptions, log: (m: string) => void): Promise<Run> {
  const runDir = recipe.output_dir;
  const evalOnly = opts.evalOnly ?? false;
  const full = recipe.adapter.method === 'none' && !evalOnly;
  // Replicas on every core want one kernel thread each; settled once the backend is known.
  const parallel = !evalOnly && resolveDataParallel(recipe.train.data_parallel, recipe.train.batch_size, { name: recipe.backend, hostMemory: true }) > 1;
  const backend = await initBackend(recipe.backend, { singleThreaded: parallel });
  const dataParallel = evalOnly ? 1 : resolveDataParallel(recipe.train.data_parallel, recipe.train.batch_size, backend);
  log(`backend ${backend.name}${backend.skipped.length ? ` (skipped ${backend.skipped.map((s) => s.name).join(', ')})` : ''}` +
    (dataParallel > 1 ? `, ${dataParallel} data-parallel replicas (train.data_parallel)` : ''));

  const dir = recipe.model.path;
  const config = readModelConfig(dir);
  recipe = withModelTargets(recipe, config); // the run records the modules it adapts
  const lengthWarning = checkMaxLength(recipe.data.max_length, config, dir);
  if (lengthWarning) log(lengthWarning);
  const weights = hasWeights(dir);
  if (!weights && !full) {
    throw new HiloError(`recipe.model.path: ${dir} has no *.safetensors weights; only adapter.method "none" (pretraining) starts from random weights`);
  }
  const startFrom = opts.adapterDir ?? recipe.adapter.init_from ?? undefined;
  // the plan before the model: its size belongs in the memory estimate, and a probe that loads
  // the model itself is done with it before this run loads its own
  const planned = startFrom || recipe.adapter.method === 'none' ? null : await planForRecipe(recipe, { backend: recipe.backend });
  const memory = weights
    ? checkRunMemory(recipe, config, planned?.plan ?? (startFrom ? planOfAdapterDir(startFrom) : null), {
      backend: backend.name, mode: evalOnly ? 'forward' : 'train', replicas: dataParallel, fullTraining: full,
      storage: storageFor(config, { trainable: full, dtype: recipe.model.dtype }),
    }, evalOnly ? 'evaluating' : 'training')
    : null;
  if (memory) log(`memory: ${memorySummary(memory)}`);
  let model: CausalLM;
  let source: ReplicaSpec['model'];
  if (weights) {
    const loaded = await loadModel(dir, { trainable: full, dtype: recipe.model.dtype });
    model = loaded;
    // replicas take the weights this thread holds in shared memory as they are: one copy in all
    source = { dir, storage: loaded.storage, shared: loaded.sharedTensors() };
  } else {
    log(`${dir} has no weights: pretraining from a random initialisation (seed ${recipe.seed})`);
    model = createRandomModel(config, recipe.seed, { trainable: true });
    source = { config, seed: recipe.seed };
  }
  const tokenizer = loadTokenizer(dir);
  const ds = loadDataset(recipe.data, runDir, recipe.seed);
  const enc = encodeDataset(ds, tokenizer, recipe.data);
  const scored = ds.format === 'classification' || ds.format === 'multiple_choice';
  if (recipe.data.loss === 'choices' && !scored) {
    throw new HiloError(`recipe.data.loss: got "choices"; allowed: "tokens" for ${ds.format} data ("choices" needs classification or multiple_choice)`);
  }
  const trainItems = recipe.data.loss === 'choices' ? ds.train.map((x) => encodeCandidates(x, tokenizer, encodeOptions(ds, recipe.data))) : null;

  let adapters: Adapters | null = null;
  let plan: AdapterPlan;
  if (startFrom) {
    adapters = loadAdapters(model, startFrom);
    plan = adapters.plan;
    if (!evalOnly) log(`adapter: continuing from ${startFrom} (${plan.method} plan, ${plan.layers.length} layers)`);
  } else if (!planned) {
    plan = { ...emptyPlan(), layers: Array.from({ length: config.numLayers }, () => ({})) };
  } else {
    if (planned.probe) log(`probe ${planned.probe.kind}: scores per layer ${planned.probe.layers.map((v) => v.toFixed(3)).join(' ')}`);
    plan = planned.plan;
    adapters = injectAdapters(model, plan, {
      seed: recipe.seed, balanceCoef: recipe.adapter.balance_coef, zLossCoef: recipe.adapter.z_loss_coef,
    });
  }
  const trainables = adapters ? adapters.variables : model.weights;
  const base = baseParams(config).total;
  const counted = countPlan(plan, moduleShapes(config));
  // a frozen model (eval without an adapter) trains nothing
  const trainable = adapters ? adapters.numParams() : full ? [...model.weights.values()].reduce((s, v) => s + v.size, 0) : 0;
  const params: ParamSummary = {
    trainable, active: adapters ? counted.active : trainable, base,
    trainablePercent: (100 * trainable) / base,
  };

  if (!evalOnly) {
    writeFileAtomic(path.join(runDir, 'recipe.json'), JSON.stringify(recipe, null, 2));
    writePlanFile(path.join(runDir, 'plan.json'), plan);
  }
  const data = summarizeDataset(ds);
  log(
    `data ${data.name}: ${data.sizes.train} train / ${data.sizes.eval} eval / ${data.sizes.test} test examples; ` +
      `${enc.train.length} training sequences`,
  );
  log(trainable === 0
    ? `params: ${base.toLocaleString('en-US')}, all frozen (no adapter)`
    : `params: ${trainable.toLocaleString('en-US')} trainable (${params.trainablePercent.toFixed(3)}% of ${base.toLocaleString('en-US')}), ${params.active.toLocaleString('en-US')} active per token`);

  const sink = opts.sink === false || evalOnly ? null : createWandb(resolveWandbSettings(recipe.wandb), runDir, {
    config: { recipe, plan, params, data }, log,
  });
  const run: Run = {
    recipe, runDir, backend: backend.name, model, tokenizer, plan, adapters, trainables, params, data,
    train: enc.train, trainItems, evalSeqs: enc.eval, testSeqs: enc.test, evalItems: enc.evalItems, testItems: enc.testItems,
    padId: padIdOf(tokenizer), sink, dataParallel,
    replicaSpec: { backend: backend.name, model: source, trainable: full, adapters: adapters ? { plan: adapters.plan, options: adapters.options } : null, checkpointLayers: recipe.train.gradient_checkpointing },
    memory,
    gradientSource: null,
    dispose() {
      void run.gradientSource?.close(); // terminating threads needs no waiting: nothing of theirs is kept
      run.gradientSource = null;
      adapters?.dispose();
      model.dispose();
    },
  };
  return run;
}

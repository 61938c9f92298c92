/**
 * The recipe: what a `hilo train` run does, as YAML. This file is the single source of truth for
 * every field: its type, default, allowed values and documentation live on the declaration, and
 * `hilo validate --explain` prints them from here. Everything else reads the `Recipe` type.
 *
 * Vocabulary follows HF TrainingArguments / torchtune / LLaMA-Factory; the aliases users bring
 * from those tools (lr, micro_batch_size, lora_r, ...) are listed in ALIASES below.
 */
import { z } from 'zod';
import { FORMATS, type Format } from '../data/formats.ts';
import { TASKS } from '../data/tasks/index.ts';
import { BACKENDS, LORA_SCALINGS, METHODS, PROBES, ROUTING_STRATEGIES, type Budget } from '../names.ts';

/** Built-in task names, from the data stage's registry (the one place tasks are defined). */
const TASK_NAMES = Object.keys(TASKS) as [string, ...string[]];

export const SCHEDULERS = ['cosine', 'linear', 'constant'] as const;
export const WANDB_MODES = ['disabled', 'online', 'offline'] as const;

const int = (min: number) => z.number().int().min(min);
const positive = () => z.number().gt(0);
const path = () => z.string().min(1).meta({ allowed: 'a path (relative to the recipe\'s folder)', isPath: true });
const optionalPath = (doc: string) => path().nullable().default(null).describe(doc);
const optionalString = (doc: string) => z.string().nullable().default(null).describe(doc);

/** YAML reads `pattern: 2468` as a number and `[10, 8]` as a list; both mean the string form. */
const patternString = z.preprocess(
  (v) => (typeof v === 'number' ? String(v) : Array.isArray(v) ? v.join(',') : v),
  z.string().regex(/^\s*([1-9]+|[1-9]\d*(\s*,\s*[1-9]\d*)+)\s*$/),
).meta({ allowed: 'a digit string such as "2468" or a comma list such as "10,8,6,4" (every count >= 1)' });

const model = z.strictObject({
  path: path().describe('HF model directory (config.json, model.safetensors, tokenizer.json).'),
  dtype: z.enum(['auto', 'bfloat16', 'float16', 'float32']).default('auto').describe(
    'dtype the frozen base weights are held in (HF torch_dtype): auto = as the checkpoint stores them. bfloat16 / ' +
      'float16 hold 2 bytes a weight; products still accumulate in float32, and adapters, router and optimizer ' +
      'state are float32. On wasm with a native BLAS, weight matrices over HILO_HEAP_WEIGHTS MiB (default 128) as ' +
      'float32 are held outside the wasm heap in this dtype, once for all data-parallel replicas.'),
}).describe('The frozen base model.');

const data = z.strictObject({
  task: z.enum(TASK_NAMES).nullable().default(null).describe(
    `A built-in task (${TASK_NAMES.map((t) => `${t}: ${TASKS[t].description}`).join('; ')}). Give either task or train_path.`),
  train_path: optionalPath('Your own training data as JSONL in `format`; instead of a task.'),
  eval_path: optionalPath('JSONL evaluated every train.eval_steps; null = carve eval_fraction from train_path.'),
  test_path: optionalPath('JSONL scored by `hilo eval`; null = no test split for your own data.'),
  format: z.enum(FORMATS).nullable().default(null).describe(
    'Record format of the JSONL: text (causal LM), instruction (alpaca), classification (text + label), ' +
    'multiple_choice (question + choices + answer). null = the task\'s format; required with train_path.'),
  template: optionalString('Prompt template with {field} slots filled from each record; null = the format\'s default.'),
  label_words: z.record(z.string(), z.string().min(1)).nullable().default(null).describe(
    'classification: the word the model should say for each label, e.g. {positive: " good", negative: " bad"}; ' +
    'labels are scored by comparing their log-likelihoods. null = the task\'s words (required for your own files).'),
  max_length: int(8).default(128).describe('Tokens per example after templating; longer examples are truncated.'),
  train_on_inputs: z.boolean().default(false).describe('Also put loss on prompt tokens (false: only on the response / label word).'),
  loss: z.enum(['tokens', 'choices']).default('tokens').describe(
    'classification / multiple_choice training loss. tokens: next-token cross-entropy on the label word (LM style). ' +
      'choices: cross-entropy over the candidates\' summed label-word log-likelihoods (verbalizer style), which trains ' +
      'the comparison accuracy is scored by even when the model spreads probability over its whole vocabulary. ' +
      'Eval reports both: loss/perplexity on the label tokens, and choice_loss (this objective) beside accuracy.'),
  eval_fraction: z.number().min(0).lt(1).default(0.1).describe('Fraction of the training data held out for eval when there is no eval split (seeded).'),
  max_train_examples: int(1).nullable().default(null).describe('Use at most this many training examples (seeded sample); null = all.'),
  max_eval_examples: int(1).nullable().default(null).describe('Evaluate on at most this many examples; null = all.'),
}).describe('What to train on: a built-in task or your own JSONL files.');

const experts = z.strictObject({
  pattern: patternString.nullable().default(null).describe(
    'Experts per depth group, shallow to deep, as in MoLA ("2468", "8642", "2662", "5555"); used by mola. null = "2468".'),
  total: int(1).nullable().default(null).describe('T, the experts shared out over layers by alphalora and hilo; null = 5 x layers.'),
  beta: positive().default(2.5).describe('Sharpness of the proportional rule n_l = round(T * s_l^beta / sum(s^beta)).'),
  groups: int(1).default(4).describe('Contiguous depth groups G that expert counts and ranks are quantised to (a pattern brings its own).'),
  per_layer: int(1).default(4).describe('Experts in every layer for moe-uniform.'),
}).prefault({}).describe('How many LoRA experts each layer gets.');

const rank = z.strictObject({
  r: int(1).default(8).describe('Rank of every expert for lora, moe-uniform, mola and alphalora.'),
  min: int(1).default(2).describe('hilo: rank of the least complex layers.'),
  max: int(1).default(8).describe('hilo: rank of the most complex layers (ranks are quantised over experts.groups from min to max).'),
}).prefault({}).describe('LoRA rank of the experts.');

/** A parameter budget's keys (names.ts Budget); recipes and compare grids both write it. */
export const budgetKeys = z.strictObject({
  trainable: int(1).optional().describe('Trainable adapter parameters (experts + routers).'),
  percent: positive().max(100).optional().describe('Trainable parameters as a percentage of the base model.'),
  active: int(1).optional().describe('Parameters used per token (active experts + routers).'),
});
const budget = budgetKeys.nullable().default(null).describe(
  'Parameter budget the allocation must fit; exactly one key. null = no budget, the method\'s sizes as given.');

const adapter = z.strictObject({
  method: z.enum(METHODS).default('hilo').describe(
    'none: no adapter, train every base weight (pretraining); lora: one rank-r LoRA per target; ' +
    'moe-uniform: experts.per_layer experts of rank r everywhere; mola: experts per depth group from experts.pattern; ' +
    'alphalora: experts proportional to alpha-hill scores; hilo: experts AND ranks from the probe scores; ' +
    'manual: the plan in plan_path.'),
  plan_path: optionalPath('manual: a plan.json (as written by `hilo plan`).'),
  init_from: optionalPath(
    'Continue from a trained adapter folder (hilo format: a run\'s adapter/, `hilo export`, or `hilo export --from-peft DIR` ' +
      'for a PEFT LoRA): its plan and weights are the starting point and the method\'s own allocation is skipped.'),
  // no default here: it is the model's, which the recipe alone does not know (allocate/targets.ts)
  target_modules: z.union([z.literal('all-linear'), z.array(z.string().min(1)).min(1)]).optional().describe(
    'Linear modules to adapt: short names (q_proj) or dotted suffixes (attn.c_proj), PEFT\'s suffix rule; ' +
    'all-linear = every linear in the decoder layers. Absent = the model family\'s targets: every attention and MLP ' +
    'projection (`hilo validate RECIPE` shows them for its model).'),
  probe: z.enum(PROBES).default('depth').describe(
    'Layer-complexity score for hilo/alphalora: depth (layer index), alpha-hill (heavy-tail exponent of the weights), ' +
    'grad-sensitivity (|w * dL/dw| on calibration batches), activation-rank (effective rank of layer inputs). ' +
    'alphalora defaults to alpha-hill.'),
  probe_path: optionalPath('Reuse a probe.json (from `hilo probe`) instead of measuring again.'),
  experts,
  rank,
  strategy: z.enum(ROUTING_STRATEGIES).default('topk').describe(
    'Router: topk (top_k experts per token, renormalised), topp (smallest set with probability >= top_p), dense (all, softmax-weighted).'),
  top_k: int(1).default(2).describe('Experts per token under topk (clipped to each layer\'s expert count).'),
  top_p: z.number().gt(0).max(1).default(0.8).describe('Cumulative router probability kept under topp.'),
  alpha: positive().default(16).describe('LoRA alpha.'),
  scaling: z.enum(LORA_SCALINGS).default('alpha/r').describe('LoRA scale: alpha/r (PEFT), alpha/sqrt(r) (rsLoRA) or fixed_scale.'),
  fixed_scale: positive().default(1.0).describe('The LoRA scale when scaling is fixed.'),
  dropout: z.number().min(0).lt(1).default(0.05).describe('Dropout on the LoRA input.'),
  balance_coef: z.number().min(0).default(0.01).describe('Weight of the router load-balance loss added to the task loss.'),
  z_loss_coef: z.number().min(0).default(0.0).describe('Weight of the router z-loss (mean squared log-sum-exp of router logits).'),
  budget,
  calibration: z.strictObject({
    batches: int(1).default(4).describe('Training batches the grad-sensitivity and activation-rank probes look at.'),
    batch_size: int(1).default(8).describe('Examples per calibration batch.'),
  }).prefault({}).describe('Data the probes measure on.'),
}).prefault({}).describe('The adapter: method, experts, ranks, router and budget.');

const train = z.strictObject({
  learning_rate: positive().default(3.0e-4).describe('Peak learning rate of AdamW.'),
  batch_size: int(1).default(8).describe('Examples per micro-batch.'),
  eval_batch_size: int(1).default(16).describe('Examples per eval batch.'),
  gradient_accumulation_steps: int(1).default(1).describe('Micro-batches summed into one optimizer step.'),
  max_steps: z.union([z.literal(-1), int(1)]).default(200).describe('Optimizer steps to run; -1 = run num_train_epochs.'),
  num_train_epochs: positive().default(1).describe('Passes over the training data when max_steps is -1.'),
  warmup_steps: z.number().min(0).default(10).describe('Linear warmup steps; a float < 1 is a fraction of the total steps.'),
  lr_scheduler_type: z.enum(SCHEDULERS).default('cosine').describe('Decay after warmup: cosine or linear to 0, or constant.'),
  weight_decay: z.number().min(0).default(0.0).describe('AdamW decoupled weight decay.'),
  max_grad_norm: z.number().min(0).default(1.0).describe('Clip the global gradient norm to this; 0 = no clipping.'),
  logging_steps: int(1).default(10).describe('Log loss, lr and speed every this many steps.'),
  eval_steps: int(0).default(50).describe('Evaluate every this many steps and at the end; 0 = only at the end.'),
  save_steps: int(0).default(100).describe('Write a checkpoint every this many steps and at the end; 0 = only at the end.'),
  data_parallel: z.union([z.literal('auto'), int(1)]).default('auto').describe(
    'Replicas that split every micro-batch on the CPU backends (wasm, cpu): one per thread, each with the whole model, ' +
      'gradients summed before one optimizer step (torch DDP on one machine). auto = one per core (HILO_DATA_PARALLEL ' +
      'overrides), at most 8 and batch_size, and 1 on webgpu / tensorflow; 1 = off. Each shard\'s loss is weighted by ' +
      'its share of the labelled tokens (items for choices), so the cross-entropy is the whole batch\'s; router losses ' +
      'become the weighted mean of each shard\'s own, and dropout masks depend on the count.'),
  gradient_checkpointing: z.boolean().default(false).describe(
    'Recompute each decoder layer in the backward pass instead of keeping its activations (HF\'s name): activation ' +
      'memory of one layer plus each layer\'s input, for one more forward per layer. Gradients are the same.'),
  resume: z.union([z.boolean(), path()]).default(false).describe(
    'true = continue from the latest checkpoint in output_dir; a path = from that checkpoint; false = start fresh ' +
      '(an output_dir that already holds a run is then refused, unless overwrite_output_dir).'),
  overwrite_output_dir: z.boolean().default(false).describe(
    'Start over in an output_dir that holds a previous run: its checkpoints, metrics, adapter and results are deleted ' +
      'first; probe.json, plan.json and files hilo does not write stay (HF TrainingArguments\' name). false = such a ' +
      'folder is refused unless the run resumes it.'),
}).prefault({}).describe('The optimisation loop.');

const wandb = z.strictObject({
  mode: z.enum(WANDB_MODES).default('disabled').describe('Weights & Biases logging (the WANDB_MODE variable overrides it).'),
  project: optionalString('W&B project; null = WANDB_PROJECT or "hilo".'),
  entity: optionalString('W&B team or user; null = the API key\'s default.'),
  name: optionalString('Run display name; null = chosen by W&B.'),
  group: optionalString('Group runs together (e.g. a comparison grid).'),
  tags: z.array(z.string()).default([]).describe('Run tags, for filtering runs in the W&B UI.'),
  notes: optionalString('Free-text run notes.'),
}).prefault({}).describe('Experiment tracking.');

export const recipeSchema = z.strictObject({
  model,
  backend: z.enum(BACKENDS).default('auto').describe('tfjs engine: auto takes the fastest that initialises (tensorflow, webgpu, wasm, cpu).'),
  seed: int(0).default(0).describe('Seeds data order, eval split, adapter init, dropout and routing noise.'),
  output_dir: path().nullable().default(null).describe(
    'Run folder for checkpoints, metrics and the resolved recipe; null = runs/<recipe file stem> under the current directory.'),
  data: data.prefault({}),
  adapter,
  train,
  wandb,
}).describe('A hilo recipe.');

/**
 * Keys users bring from other tools, as dotted paths, and the canonical key each one means.
 * Giving an alias and its canonical key (or two aliases of one key) is an error.
 */
export const ALIASES: Record<string, string> = {
  lr: 'train.learning_rate',
  learning_rate: 'train.learning_rate',
  'train.lr': 'train.learning_rate',
  per_device_train_batch_size: 'train.batch_size',
  micro_batch_size: 'train.batch_size',
  'train.per_device_train_batch_size': 'train.batch_size',
  'train.micro_batch_size': 'train.batch_size',
  num_epochs: 'train.num_train_epochs',
  epochs: 'train.num_train_epochs',
  'train.num_epochs': 'train.num_train_epochs',
  'train.epochs': 'train.num_train_epochs',
  lora_r: 'adapter.rank.r',
  lora_rank: 'adapter.rank.r',
  'adapter.lora_r': 'adapter.rank.r',
  'adapter.lora_rank': 'adapter.rank.r',
  lora_alpha: 'adapter.alpha',
  'adapter.lora_alpha': 'adapter.alpha',
  lora_dropout: 'adapter.dropout',
  'adapter.lora_dropout': 'adapter.dropout',
  resume: 'train.resume',
  overwrite_output_dir: 'train.overwrite_output_dir',
};

/** The recipe as the schema parses it (before loadRecipe fills in output_dir and data.format). */
export type ParsedRecipe = z.infer<typeof recipeSchema>;

/** A loaded recipe: paths absolute, output_dir and data.format always set. */
export type Recipe = Omit<ParsedRecipe, 'output_dir' | 'data'> & {
  output_dir: string;
  data: Omit<ParsedRecipe['data'], 'format'> & { format: Format };
};
/** Compile-time proof that the schema's budget is names.ts's Budget. */
export const budgetFits: z.infer<typeof budgetKeys> extends Budget ? (Budget extends z.infer<typeof budgetKeys> ? true : never) : never = true;

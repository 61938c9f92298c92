import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HiloError } from '../../src/errors.ts';
import { applyOverrides, loadRecipe, parseRecipe } from '../../src/recipe/load.ts';
import { RecipeError } from '../../src/recipe/problems.ts';
import { makeRecipeDir, minimal } from './fixture.ts';

const dir = makeRecipeDir();
const elsewhere = path.join(dir, 'elsewhere');
mkdirSync(elsewhere);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};

describe('defaults', () => {
  it('the smallest recipe resolves to every documented default', () => {
    const r = parseRecipe(minimal(), { baseDir: dir, name: 'tiny.yaml', cwd: elsewhere });
    expect(r).toEqual({
      model: { path: path.join(dir, 'model'), dtype: 'auto' },
      backend: 'auto',
      seed: 0,
      output_dir: path.join(elsewhere, 'runs', 'tiny'),
      data: {
        task: 'sentiment', train_path: null, eval_path: null, test_path: null, format: 'classification',
        template: null, label_words: null, max_length: 128, train_on_inputs: false, loss: 'tokens', eval_fraction: 0.1,
        max_train_examples: null, max_eval_examples: null,
      },
      adapter: {
        method: 'hilo', plan_path: null, init_from: null,
        probe: 'depth', probe_path: null,
        experts: { pattern: null, total: null, beta: 2.5, groups: 4, per_layer: 4 },
        rank: { r: 8, min: 2, max: 8 },
        strategy: 'topk', top_k: 2, top_p: 0.8, alpha: 16, scaling: 'alpha/r', fixed_scale: 1, dropout: 0.05,
        balance_coef: 0.01, z_loss_coef: 0, budget: null, calibration: { batches: 4, batch_size: 8 },
      },
      train: {
        learning_rate: 3e-4, batch_size: 8, eval_batch_size: 16, gradient_accumulation_steps: 1, max_steps: 200,
        num_train_epochs: 1, warmup_steps: 10, lr_scheduler_type: 'cosine', weight_decay: 0, max_grad_norm: 1,
        logging_steps: 10, eval_steps: 50, save_steps: 100, data_parallel: 'auto', gradient_checkpointing: false, resume: false, overwrite_output_dir: false,
      },
      wandb: { mode: 'disabled', project: null, entity: null, name: null, group: null, tags: [], notes: null },
    });
  });

  it('target_modules stays absent: its default is the model family\'s, known once the model is (allocate/targets.ts)', () => {
    const r = parseRecipe(minimal(), { baseDir: dir, name: 'tiny.yaml' });
    expect(Object.hasOwn(r.adapter, 'target_modules')).toBe(false);
  });

  it('defaults that depend on another field: the task\'s format, alphalora\'s probe', () => {
    const src = { baseDir: dir, name: 'x.yaml' };
    const moby = parseRecipe({ model: { path: 'model' }, data: { task: 'moby-lm' }, adapter: { method: 'alphalora' } }, src);
    expect([moby.data.format, moby.adapter.probe]).toEqual(['text', 'alpha-hill']);
    const chosen = parseRecipe({ model: { path: 'model' }, data: { task: 'spam' }, adapter: { method: 'alphalora', probe: 'depth' } }, src);
    expect([chosen.data.format, chosen.adapter.probe]).toEqual(['classification', 'depth']);
  });

  it('a section left empty in YAML (null) takes its defaults; a null budget stays "no budget"', () => {
    const r = parseRecipe({ ...minimal(), wandb: null, train: null, adapter: { rank: null, budget: null } }, { baseDir: dir, name: 'x.yaml' });
    expect([r.wandb.mode, r.train.max_steps, r.adapter.rank, r.adapter.budget]).toEqual(['disabled', 200, { r: 8, min: 2, max: 8 }, null]);
  });

  it('a task\'s label words may be replaced, label for label', () => {
    const r = parseRecipe({ ...minimal(), data: { task: 'sentiment', label_words: { positive: ' good', negative: ' bad' } } }, { baseDir: dir, name: 'x.yaml' });
    expect(r.data.label_words).toEqual({ positive: ' good', negative: ' bad' });
  });

  it('YAML spellings of an expert pattern become its string form', () => {
    const src = { baseDir: dir, name: 'x.yaml' };
    const pattern = (p: unknown) => parseRecipe({ ...minimal(), adapter: { experts: { pattern: p } } }, src).adapter.experts.pattern;
    expect([pattern(2468), pattern('8642'), pattern([10, 8, 6, 4]), pattern('10, 8')]).toEqual(['2468', '8642', '10,8,6,4', '10, 8']);
  });
});

describe('aliases land on their canonical keys', () => {
  const cases: Array<[Record<string, unknown>, string, unknown]> = [
    [{ lr: 0.01 }, 'train.learning_rate', 0.01],
    [{ learning_rate: 0.01 }, 'train.learning_rate', 0.01],
    [{ train: { lr: 0.01 } }, 'train.learning_rate', 0.01],
    [{ per_device_train_batch_size: 4 }, 'train.batch_size', 4],
    [{ micro_batch_size: 4 }, 'train.batch_size', 4],
    [{ train: { micro_batch_size: 4 } }, 'train.batch_size', 4],
    [{ num_epochs: 3 }, 'train.num_train_epochs', 3],
    [{ train: { epochs: 2 } }, 'train.num_train_epochs', 2],
    [{ lora_r: 4 }, 'adapter.rank.r', 4],
    [{ adapter: { lora_rank: 16 } }, 'adapter.rank.r', 16],
    [{ lora_alpha: 32 }, 'adapter.alpha', 32],
    [{ adapter: { lora_dropout: 0.1 } }, 'adapter.dropout', 0.1],
    [{ resume: true }, 'train.resume', true], // the spelling the README and the Ctrl-C message use
    [{ overwrite_output_dir: true }, 'train.overwrite_output_dir', true],
  ];
  it.each(cases)('%j -> %s', (extra, key, value) => {
    const r = parseRecipe({ ...minimal(), ...extra }, { baseDir: dir, name: 'x.yaml' }) as unknown as Record<string, any>;
    expect(key.split('.').reduce((v, k) => v[k], r)).toBe(value);
  });
});

describe('key=value overrides', () => {
  const base = { ...minimal(), lr: 0.1, adapter: { top_k: 2 } };
  const cases: Array<[string, string, unknown]> = [
    ['train.max_steps=50', 'train.max_steps', 50],
    ['train.eval_steps=0', 'train.eval_steps', 0],
    ['lr=3e-4', 'train.learning_rate', 3e-4],
    ['train.learning_rate=0.2', 'train.learning_rate', 0.2],
    ['recipe.adapter.top_k=1', 'adapter.top_k', 1],
    ['adapter.target_modules=[q_proj,v_proj]', 'adapter.target_modules', ['q_proj', 'v_proj']],
    ['adapter.target_modules=all-linear', 'adapter.target_modules', 'all-linear'],
    ['adapter.budget={percent: 1.5}', 'adapter.budget', { percent: 1.5 }],
    ['adapter.experts.pattern=8642', 'adapter.experts.pattern', '8642'],
    ['train.resume=true', 'train.resume', true],
    ['resume=true', 'train.resume', true],
    ['resume=runs/x/checkpoint-4', 'train.resume', path.join(elsewhere, 'runs/x/checkpoint-4')],
    ['overwrite_output_dir=true', 'train.overwrite_output_dir', true],
    ['data.train_on_inputs=yes', 'data.train_on_inputs', 'yes'],
    ['wandb.tags=[a, b c]', 'wandb.tags', ['a', 'b c']],
    ['wandb.name=run 1: lr sweep', 'wandb.name', 'run 1: lr sweep'],
    ['data.template=Review: {text}\\nSentiment:', 'data.template', 'Review: {text}\\nSentiment:'],
    ['data.template="{text}"', 'data.template', '{text}'],
    ['wandb.project=null', 'wandb.project', null],
    ['wandb.project=', 'wandb.project', null],
    ['model.path=other/model', 'model.path', path.join(elsewhere, 'other/model')],
    ['output_dir=runs/x', 'output_dir', path.join(elsewhere, 'runs/x')],
  ];
  it.each(cases)('%s', (arg, key, value) => {
    const { value: out, problems } = applyOverrides(base, [arg], elsewhere);
    expect(problems).toEqual([]);
    expect(key.split('.').reduce((v: any, k) => v[k], out)).toEqual(value);
  });

  it('an override replaces the key and every alias of it, so it never conflicts', () => {
    const { value } = applyOverrides(base, ['train.learning_rate=0.2'], elsewhere) as { value: Record<string, any> };
    expect(value.lr).toBeUndefined();
    expect(base.lr).toBe(0.1);
  });

  const bad: Array<[string, string]> = [
    ['max_steps', 'override 1: got "max_steps"; allowed: key=value with a dotted key, e.g. train.max_steps=100 or adapter.target_modules=[q_proj,v_proj]'],
    ['=5', 'override 1: got "=5"; allowed: key=value with a dotted key, e.g. train.max_steps=100 or adapter.target_modules=[q_proj,v_proj]'],
    ['train..max_steps=5', 'override 1: got "train..max_steps=5"; allowed: key=value with a dotted key, e.g. train.max_steps=100 or adapter.target_modules=[q_proj,v_proj]'],
    ['model.path.x=1', 'override 1: got "model.path.x=1"; allowed: a key under a map, but recipe.model.path is "model"'],
  ];
  it.each(bad)('%s is reported', (arg, message) => {
    expect(applyOverrides(base, [arg], elsewhere).problems.map((p) => p.message)).toEqual([message]);
  });
});

describe('loadRecipe', () => {
  it('resolves every path against the recipe\'s folder, whatever the current directory', () => {
    const file = write('paths.yaml', [
      'model: {path: model}',
      'output_dir: out/run',
      'data: {train_path: data/train.jsonl, eval_path: ./data/eval.jsonl, format: classification, label_words: {pos: " good", neg: " bad"}}',
      'adapter: {method: manual, plan_path: plan.json, probe_path: probe.json}',
      'train: {resume: ckpt}',
    ].join('\n'));
    const r = loadRecipe(path.relative(elsewhere, file), [], elsewhere);
    expect([r.model.path, r.output_dir, r.data.train_path, r.data.eval_path, r.adapter.plan_path, r.adapter.probe_path, r.train.resume])
      .toEqual(['model', 'out/run', 'data/train.jsonl', 'data/eval.jsonl', 'plan.json', 'probe.json', 'ckpt'].map((p) => path.join(dir, p)));
  });

  it('leaves absolute paths alone and defaults output_dir to runs/<stem> under the current directory', () => {
    const file = write('my-run.yaml', `model: {path: ${path.join(dir, 'model')}}\ndata: {task: spam}\n`);
    const r = loadRecipe(file, ['train.max_steps=5'], elsewhere);
    expect([r.model.path, r.output_dir, r.train.max_steps]).toEqual([path.join(dir, 'model'), path.join(elsewhere, 'runs', 'my-run'), 5]);
  });

  it('throws one RecipeError listing every problem, from the file and the overrides', () => {
    const file = write('bad.yaml', 'model: {path: model}\ndata: {task: sentiment}\nadapter: {strategy: topK}\n');
    let caught: unknown;
    try {
      loadRecipe(file, ['adapter.top_k=0', 'oops'], dir);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RecipeError);
    expect(caught).toBeInstanceOf(HiloError);
    expect((caught as Error).message).toBe([
      `${file}: 3 problems`,
      '  override 2: got "oops"; allowed: key=value with a dotted key, e.g. train.max_steps=100 or adapter.target_modules=[q_proj,v_proj]',
      '  recipe.adapter.strategy: got "topK"; allowed: "topk" | "topp" | "dense"',
      '  recipe.adapter.top_k: got 0; allowed: an integer >= 1',
    ].join('\n'));
  });

  it('YAML syntax errors name file:line:column; a missing file says so', () => {
    const file = write('syntax.yaml', 'model:\n  path: model\ndata: {task: sentiment\n');
    expect(() => loadRecipe(file, [], dir)).toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: `));
    const dup = write('dup.yaml', 'model: {path: model}\nseed: 1\nseed: 2\n');
    expect(() => loadRecipe(dup, [], dir)).toThrow(/dup\.yaml:3:1: Map keys must be unique/);
    expect(() => loadRecipe(path.join(dir, 'none.yaml'), [], dir)).toThrow(`recipe: got "${path.join(dir, 'none.yaml')}"; allowed: an existing YAML file`);
  });
});

/** `hilo validate` as a user runs it, with TensorFlow.js made impossible to load. */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { listFields } from '../../src/recipe/describe.ts';
import { makeRecipeDir } from './fixture.ts';

const root = path.resolve(import.meta.dirname, '../..');
const blocker = path.join(import.meta.dirname, 'block-tfjs.mjs');
const tsxApi = pathToFileURL(path.join(root, 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')).href;
const dir = makeRecipeDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', blocker, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const hilo = (...args: string[]) => run([path.join(root, 'bin', 'hilo.js'), 'validate', ...args]);

describe('hilo validate', () => {
  it('the blocker really stops tfjs imported from TypeScript through tsx, as bin/hilo.js runs it (control)', () => {
    const file = path.join(dir, 'imports-tfjs.mts');
    writeFileSync(file, "import * as tf from '@tensorflow/tfjs';\nconsole.log(typeof tf.tensor);\n");
    const r = run(['--input-type=module', '-e', `const { register } = await import(${JSON.stringify(tsxApi)}); register(); await import(${JSON.stringify(file)});`]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('BLOCKED tfjs import: @tensorflow/tfjs');
  });

  it('prints ok and a summary for a good recipe, overrides applied, without loading tfjs', () => {
    writeFileSync(path.join(dir, 'good.yaml'), 'model: {path: model}\ndata: {task: sentiment}\n');
    const r = hilo('good.yaml', 'adapter.method=lora', 'train.max_steps=20', 'lr=1e-3');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe([
      'ok good.yaml',
      `model    ${dir}/model`,
      'data     task sentiment, classification, max_length 128',
      'adapter  lora r=8 alpha=16 on q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj',
      'train    20 steps, lr 0.001 cosine, batch 8x1, seed 0, backend auto',
      `output   ${dir}/runs/good`,
      'wandb    disabled',
      'checked  data: 2,160 train / 240 eval / 600 test examples, every record read and well-formed',
      'checked  model: llama, 4 layers, hidden 128, vocab 4,096, 1,262,720 parameters in model.safetensors matching config.json; tokenizer.json read',
      '',
    ].join('\n'));
  });

  it('refuses a model folder whose config.json does not match its weights, naming both, without loading tfjs', () => {
    const broken = path.join(dir, 'broken');
    mkdirSync(broken);
    cpSync(path.join(root, 'models', 'hilo-base'), broken, { recursive: true });
    writeFileSync(path.join(broken, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(path.join(root, 'models', 'hilo-base', 'config.json'), 'utf8')), num_hidden_layers: 6 }));
    writeFileSync(path.join(dir, 'broken.yaml'), 'model: {path: broken}\ndata: {task: sentiment}\n');
    const r = hilo('broken.yaml');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^hilo: .*broken.*num_hidden_layers.*6.*model\.safetensors/s);
    expect(r.err).not.toContain('BLOCKED');
    rmSync(path.join(broken, 'tokenizer.json'));
    writeFileSync(path.join(broken, 'config.json'), readFileSync(path.join(root, 'models', 'hilo-base', 'config.json')));
    expect(hilo('broken.yaml').err).toBe(`hilo: ${broken}: no tokenizer.json; training encodes its data with the model's own tokenizer\n`);
  });

  it('prints every problem and exits 2', () => {
    writeFileSync(path.join(dir, 'bad.yaml'), 'model: {path: model}\ndata: {task: sentiment}\nadapter: {strategy: topK, top_k: 0}\n');
    const r = hilo('bad.yaml', 'train.max_step=5');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toBe([
      'hilo: bad.yaml: 3 problems',
      '  recipe.adapter.strategy: got "topK"; allowed: "topk" | "topp" | "dense"',
      '  recipe.adapter.top_k: got 0; allowed: an integer >= 1',
      '  recipe.train.max_step: got 5; allowed: known keys only; did you mean recipe.train.max_steps? (recipe.train keys: learning_rate, batch_size, eval_batch_size, gradient_accumulation_steps, max_steps, num_train_epochs, warmup_steps, lr_scheduler_type, weight_decay, max_grad_norm, logging_steps, eval_steps, save_steps, data_parallel, gradient_checkpointing, resume, overwrite_output_dir)',
      '',
    ].join('\n'));
  });

  it('--explain documents every field, and with a recipe shows the resolved values', () => {
    const plain = hilo('--explain');
    expect(plain.code).toBe(0);
    for (const f of listFields()) expect(plain.out).toContain(`${f.path}: `);
    expect(plain.out).not.toContain('value: ');
    writeFileSync(path.join(dir, 'explained.yaml'), 'model: {path: model}\ndata: {task: spam}\n');
    const withRecipe = hilo('explained.yaml', 'adapter.top_k=1', '--explain');
    expect(withRecipe.code).toBe(0);
    expect(withRecipe.out).toContain('  adapter.top_k: an integer >= 1; default 2\n');
    expect(withRecipe.out).toContain('      value: 1\n');
    expect(withRecipe.out).toContain('      value: "spam"\n');
  });

  it('--json-schema prints the schema as JSON', () => {
    const r = hilo('--json-schema');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).properties.train.properties.max_steps.default).toBe(200);
  });
});

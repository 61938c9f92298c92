/**
 * Human-readable views of the recipe: the documentation of every field (generated from the
 * schema, the one place a field is described) and a short summary of a loaded recipe.
 */
import { showValue } from '../errors.ts';
import { allowedText, defaultOf, docOf, listFields } from './describe.ts';
import { aliasesOf, getAt } from './raw.ts';
import type { Recipe } from './schema.ts';

const HEADER = `A hilo recipe is YAML with the sections below; unknown keys are errors.
Override any field after the recipe path as key=value with a dotted key, e.g.
  hilo train recipe.yaml train.max_steps=100 lr=1e-3 adapter.target_modules=[q_proj,v_proj]
Relative paths in the file resolve against the recipe's folder; paths given as overrides
resolve against the current directory.`;

function wrap(text: string, indent: string, width = 96): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/**
 * Every field with its allowed values, default and doc. Given a loaded recipe, each field also
 * shows the value it resolved to.
 */
export function explainRecipe(values?: Recipe): string {
  const out = [HEADER];
  for (const f of listFields()) {
    const depth = f.path.split('.').length - 1;
    const pad = '  '.repeat(depth);
    const def = defaultOf(f.schema);
    if (f.isSection && def === undefined) {
      out.push('', `${pad}${f.path}: ${docOf(f.schema)}`);
      continue;
    }
    const required = def === undefined && !f.schema.safeParse(undefined).success;
    const tail = def !== undefined ? `; default ${showValue(def.value)}` : required ? '; required' : '';
    out.push(`${pad}${f.path}: ${allowedText(f.schema)}${tail}`);
    out.push(...wrap(docOf(f.schema), `${pad}    `));
    const aliases = aliasesOf(f.path);
    if (aliases.length) out.push(`${pad}    aliases: ${aliases.join(', ')}`);
    if (values !== undefined && !f.isSection) out.push(`${pad}    value: ${showValue(getAt(values, f.path.split('.')))}`);
  }
  return out.join('\n');
}

function adapterSummary(a: Recipe['adapter']): string {
  const router = a.strategy === 'topk' ? `top-${a.top_k}` : a.strategy === 'topp' ? `top-p ${a.top_p}` : 'dense';
  const budget = a.budget ? `, budget ${Object.entries(a.budget).map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
  switch (a.method) {
    case 'none': return 'none (full-parameter training of the base model)';
    case 'manual': return `manual plan ${a.plan_path}`;
    case 'lora': return `lora r=${a.rank.r} alpha=${a.alpha}${budget}`;
    case 'moe-uniform': return `moe-uniform ${a.experts.per_layer} experts/layer r=${a.rank.r}, ${router}${budget}`;
    case 'mola': return `mola pattern ${a.experts.pattern ?? '2468'} r=${a.rank.r}, ${router}${budget}`;
    case 'alphalora': return `alphalora probe ${a.probe}, T=${a.experts.total ?? '5xL'} beta=${a.experts.beta} r=${a.rank.r}, ${router}${budget}`;
    case 'hilo': return `hilo probe ${a.probe}, T=${a.experts.total ?? '5xL'} ranks ${a.rank.min}..${a.rank.max}, ${router}${budget}`;
  }
}

/** A few lines saying what a loaded recipe will do. */
export function summarizeRecipe(r: Recipe): string {
  const d = r.data;
  const data = d.task ? `task ${d.task}` : `${d.train_path}${d.eval_path ? ` (eval ${d.eval_path})` : ''}`;
  const t = r.train;
  const length = t.max_steps === -1 ? `${t.num_train_epochs} epoch(s)` : `${t.max_steps} steps`;
  return [
    `model    ${r.model.path}`,
    `data     ${data}, ${d.format}, max_length ${d.max_length}`,
    `adapter  ${adapterSummary(r.adapter)}${r.adapter.method === 'none' ? '' : ` on ${[r.adapter.target_modules ?? 'the model family\'s targets'].flat().join(',')}`}`,
    `train    ${length}, lr ${t.learning_rate} ${t.lr_scheduler_type}, batch ${t.batch_size}x${t.gradient_accumulation_steps}, seed ${r.seed}, backend ${r.backend}`,
    `output   ${r.output_dir}`,
    `wandb    ${r.wandb.mode}${r.wandb.project ? ` (${r.wandb.project})` : ''}`,
  ].join('\n');
}

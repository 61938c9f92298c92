/**
 * Prompt templates: plain text with `{field}` slots filled from an example's string fields.
 * `{{` and `}}` write literal braces. Slots are checked against the data before a run starts,
 * so rendering itself never meets a missing field.
 */
import { HiloError } from '../errors.ts';

const SLOT = /\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** The slot names a template uses, in order of first use. */
export function templateSlots(template: string): string[] {
  const slots: string[] = [];
  for (const m of template.matchAll(SLOT)) {
    if (m[1] !== undefined && !slots.includes(m[1])) slots.push(m[1]);
  }
  return slots;
}

/** Fill every `{slot}` from `values`; a slot without a value is a programming error here. */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(SLOT, (whole, name: string | undefined) => {
    if (whole === '{{') return '{';
    if (whole === '}}') return '}';
    const v = values[name!];
    if (v === undefined) throw new HiloError(`template slot {${name}} has no value; fields: ${Object.keys(values).join(', ')}`);
    return v;
  });
}

// Alpaca (tatsu-lab/stanford_alpaca), the prompt most instruction data and tools expect.
export const ALPACA_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
export const ALPACA_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** Per-format default prompt (instruction picks one of the two Alpaca prompts per example). */
export const DEFAULT_TEMPLATES = {
  text: '{text}',
  instruction: ALPACA_WITH_INPUT,
  classification: 'Text: {text}\nLabel:',
  multiple_choice: 'Question: {question}\nAnswer:',
} as const;

/**
 * The four record formats and how one JSON record is checked against each. A check returns
 * the example or the reasons it is bad; the JSONL reader turns reasons into `file:line: reason`.
 *
 *   text             {"text": "..."}                                   causal LM, loss on every token
 *   instruction      {"instruction", "input"?, "output"}               Alpaca; loss on the output only
 *   classification   {"text", "label"}                                 prompt + label word; loss on the word
 *   multiple_choice  {"question", "choices": [..], "answer": 1 | "B"}  prompt + " " + choice; scored over choices
 *
 * Any other string field of a record is kept so a custom template can use it as a {slot}.
 */
export const FORMATS = ['text', 'instruction', 'classification', 'multiple_choice'] as const;
export type Format = (typeof FORMATS)[number];

export interface TextExample { format: 'text'; text: string; fields: Record<string, string> }
export interface InstructionExample {
  format: 'instruction'; instruction: string; input: string; output: string; fields: Record<string, string>;
}
export interface ClassificationExample { format: 'classification'; text: string; label: string; fields: Record<string, string> }
export interface MultipleChoiceExample {
  format: 'multiple_choice'; question: string; choices: string[]; answer: number; fields: Record<string, string>;
}
export type Example = TextExample | InstructionExample | ClassificationExample | MultipleChoiceExample;

/** What a record check needs besides the record. */
export interface RecordRules {
  format: Format;
  /** classification: the allowed labels (label_words keys); null = any label is accepted. */
  labels: readonly string[] | null;
  /** Slots of a custom template, which every record must provide as strings. */
  extraSlots: readonly string[];
}

/** A checked record: the example, or every reason it is bad. */
export type Checked<T> = T | { errors: string[] };

/** Check one parsed JSON value against the format; collects every reason, not just the first. */
export function checkRecord(value: unknown, rules: RecordRules): Checked<Example> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { errors: [`expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`] };
  }
  const rec = value as Record<string, unknown>;
  const errors: string[] = [];
  const str = (key: string, optional = false): string => {
    const v = rec[key];
    if (v === undefined || v === null) {
      if (!optional) errors.push(`missing field "${key}"`);
      return '';
    }
    if (typeof v !== 'string') { errors.push(`field "${key}" must be a string, got ${typeName(v)}`); return ''; }
    return v;
  };
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec)) if (typeof v === 'string') fields[k] = v;

  let ex: Example;
  switch (rules.format) {
    case 'text':
      ex = { format: 'text', text: str('text'), fields };
      break;
    case 'instruction': {
      const input = str('input', true);
      ex = { format: 'instruction', instruction: str('instruction'), input, output: str('output'), fields: { ...fields, input } };
      break;
    }
    case 'classification':
      ex = { format: 'classification', text: str('text'), label: checkLabel(rec.label, rules.labels, errors), fields };
      break;
    case 'multiple_choice': {
      const choices = checkChoices(rec.choices, errors);
      ex = { format: 'multiple_choice', question: str('question'), choices, answer: checkAnswer(rec.answer, choices, errors), fields };
      break;
    }
  }
  for (const slot of rules.extraSlots) {
    if (!(slot in ex.fields) && !(rules.format === 'multiple_choice' && slot === 'choices')) {
      errors.push(rec[slot] === undefined ? `missing field "${slot}" (used by the template)` : `field "${slot}" must be a string, got ${typeName(rec[slot])}`);
    }
  }
  return errors.length ? { errors } : ex;
}

export function isBad(c: Checked<Example>): c is { errors: string[] } {
  return 'errors' in c;
}

function checkLabel(v: unknown, labels: readonly string[] | null, errors: string[]): string {
  if (v === undefined || v === null) { errors.push('missing field "label"'); return ''; }
  // Integer labels (0/1) are common in exported data sets; they name label_words keys as strings.
  if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) {
    errors.push(`field "label" must be a string or an integer, got ${typeName(v)}`);
    return '';
  }
  const label = String(v);
  if (labels && !labels.includes(label)) {
    errors.push(`unknown label ${JSON.stringify(label)}; allowed: ${labels.map((l) => JSON.stringify(l)).join(' | ')}`);
  }
  return label;
}

function checkChoices(v: unknown, errors: string[]): string[] {
  if (v === undefined || v === null) { errors.push('missing field "choices"'); return []; }
  if (!Array.isArray(v) || v.some((c) => typeof c !== 'string')) {
    errors.push(`field "choices" must be an array of strings, got ${typeName(v)}`);
    return [];
  }
  if (v.length < 2) errors.push(`field "choices" needs at least 2 choices, got ${v.length}`);
  return v as string[];
}

/** An index (0-based) or a letter (A = first choice). */
function checkAnswer(v: unknown, choices: string[], errors: string[]): number {
  let index = -1;
  if (typeof v === 'number' && Number.isInteger(v)) index = v;
  else if (typeof v === 'string' && /^[A-Za-z]$/.test(v)) index = v.toUpperCase().charCodeAt(0) - 65;
  else {
    errors.push(v === undefined ? 'missing field "answer"' : `field "answer" must be a choice index or letter, got ${typeName(v)}`);
    return -1;
  }
  if (choices.length && (index < 0 || index >= choices.length)) {
    errors.push(`field "answer" ${JSON.stringify(v)} is out of range for ${choices.length} choices`);
  }
  return index;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}

/** The text a multiple-choice {choices} slot shows: "A. first\nB. second ...". */
export function letteredChoices(choices: readonly string[]): string {
  return choices.map((c, i) => `${String.fromCharCode(65 + i)}. ${c}`).join('\n');
}

/**
 * Examples -> token ids with an exact loss mask.
 *
 * The prompt and the response are encoded separately and concatenated, so the positions that
 * carry loss are exactly the response's tokens (no search for where the prompt ends).
 * `labels` follow the Hugging Face convention: aligned with `inputIds`, -100 where there is no
 * loss, and the shift (logits at t predict the token at t+1) happens in the loss (see
 * `nextTokenTargets` in batch.ts).
 *
 * Truncation to max_length keeps the response: the response keeps at most
 * max_length - min(prompt, ceil(max_length/4)) tokens (cut at its end), and the prompt is cut in
 * the MIDDLE, keeping its first half (BOS, the instruction or "Text:" header) and its last half
 * (the question the label answers, e.g. "\nSentiment:").
 */
import { HiloError } from '../errors.ts';
import type { TextTokenizer } from '../model/types.ts';
import type { Example, Format } from './formats.ts';
import { letteredChoices } from './formats.ts';
import { ALPACA_NO_INPUT, ALPACA_WITH_INPUT, DEFAULT_TEMPLATES, renderTemplate } from './template.ts';

export const IGNORE_INDEX = -100;

export interface EncodedExample {
  inputIds: number[];
  /** Same length as inputIds; the token id where it carries loss, else -100. */
  labels: number[];
}

/** A classification / multiple-choice example as candidates to score; the answer is an index into them. */
export interface ScoringItem {
  candidates: EncodedExample[];
  answer: number;
}

export interface EncodeOptions {
  format: Format;
  /** null: the format's default (instruction: Alpaca with or without its Input block). */
  template: string | null;
  /** classification: label -> the word that the model must continue the prompt with. */
  labelWords: Readonly<Record<string, string>> | null;
  maxLength: number;
  /** Also put loss on the prompt tokens (never on BOS). */
  trainOnInputs: boolean;
}

/** How a tokenizer behaves at a sequence start and inside a sequence, found by probing it once. */
export interface TokenizerTraits {
  /** Ids the tokenizer's post-processor puts before a text (e.g. BOS for Llama, none for GPT-2). */
  specialPrefix: number[];
  /**
   * Sentencepiece-style tokenizers (Llama "legacy") prepend "▁" to every text they encode, so a
   * continuation " positive" encoded alone would read as two spaces: for them one leading space
   * of a continuation is dropped before encoding.
   */
  dummyPrefix: boolean;
}

const traitsCache = new WeakMap<TextTokenizer, TokenizerTraits>();

export function tokenizerTraits(tok: TextTokenizer): TokenizerTraits {
  const cached = traitsCache.get(tok);
  if (cached) return cached;
  const plain = tok.encode('a', false);
  const special = tok.encode('a', true);
  let at = -1;
  for (let i = 0; i + plain.length <= special.length && at < 0; i++) {
    if (plain.every((id, j) => special[i + j] === id)) at = i;
  }
  const whole = tok.encode('a b', false);
  const spaced = [...tok.encode('a', false), ...tok.encode(' b', false)];
  const traits = { specialPrefix: at > 0 ? special.slice(0, at) : [], dummyPrefix: !sameIds(whole, spaced) };
  traitsCache.set(tok, traits);
  return traits;
}

const shortCache = new WeakMap<TextTokenizer, Map<string, number[]>>();

/** Ids of text that follows other text (a response after its prompt). Short ones (label words) are cached. */
export function encodeContinuation(tok: TextTokenizer, text: string): number[] {
  let cache = shortCache.get(tok);
  if (!cache) shortCache.set(tok, (cache = new Map()));
  const hit = cache.get(text);
  if (hit) return hit.slice();
  const t = tokenizerTraits(tok).dummyPrefix && text.startsWith(' ') ? text.slice(1) : text;
  const ids = t === '' ? [] : tok.encode(t, false);
  if (text.length <= 32 && cache.size < 4096) cache.set(text, ids.slice());
  return ids;
}

/** The prompt text of an example (classification and multiple choice: before the label/choice). */
export function promptText(ex: Example, template: string | null): string {
  switch (ex.format) {
    case 'text':
      return '';
    case 'instruction':
      return renderTemplate(template ?? (ex.input.trim() ? ALPACA_WITH_INPUT : ALPACA_NO_INPUT), ex.fields);
    case 'classification':
      return renderTemplate(template ?? DEFAULT_TEMPLATES.classification, ex.fields);
    case 'multiple_choice':
      return renderTemplate(template ?? DEFAULT_TEMPLATES.multiple_choice, { ...ex.fields, choices: letteredChoices(ex.choices) });
  }
}

/** The continuations a classification / multiple-choice example is scored over, in label order. */
export function continuations(ex: Example, labelWords: Readonly<Record<string, string>> | null): { texts: string[]; answer: number } {
  if (ex.format === 'classification') {
    if (!labelWords) throw new HiloError('classification needs label words (recipe.data.label_words or the task\'s)');
    const labels = Object.keys(labelWords);
    return { texts: labels.map((l) => labelWords[l]), answer: labels.indexOf(ex.label) };
  }
  if (ex.format === 'multiple_choice') return { texts: ex.choices.map((c) => ` ${c.trim()}`), answer: ex.answer };
  throw new HiloError(`format "${ex.format}" has no candidates to score; accuracy needs classification or multiple_choice`);
}

/**
 * Training sequences of one example. A text longer than max_length becomes several windows
 * (each starting with the tokenizer's BOS, if it has one) so no text is thrown away.
 */
export function encodeForTraining(ex: Example, tok: TextTokenizer, opts: EncodeOptions): EncodedExample[] {
  const { specialPrefix } = tokenizerTraits(tok);
  if (ex.format === 'text') {
    const ids = ex.text === '' ? [] : tok.encode(ex.text, false);
    const width = opts.maxLength - specialPrefix.length;
    if (width < 1) throw new HiloError(`recipe.data.max_length: got ${opts.maxLength}; allowed: more than ${specialPrefix.length}`);
    const out: EncodedExample[] = [];
    for (let s = 0; s < ids.length; s += width) {
      const chunk = ids.slice(s, s + width);
      out.push({ inputIds: [...specialPrefix, ...chunk], labels: [...specialPrefix.map(() => IGNORE_INDEX), ...chunk] });
    }
    return out;
  }
  let response: number[];
  if (ex.format === 'instruction') {
    response = encodeContinuation(tok, ex.output);
    // The end-of-sequence token teaches the model to stop after its answer.
    if (tok.eosId !== null) response.push(tok.eosId);
  } else {
    const { texts, answer } = continuations(ex, opts.labelWords);
    response = encodeContinuation(tok, texts[answer]);
  }
  const prompt = [...specialPrefix, ...tok.encode(promptText(ex, opts.template), false)];
  return [joinPromptResponse(prompt, response, specialPrefix.length, opts.maxLength, opts.trainOnInputs)];
}

/** Every candidate of a classification / multiple-choice example, with loss only on the candidate. */
export function encodeCandidates(ex: Example, tok: TextTokenizer, opts: EncodeOptions): ScoringItem {
  const { specialPrefix } = tokenizerTraits(tok);
  const { texts, answer } = continuations(ex, opts.labelWords);
  const prompt = [...specialPrefix, ...tok.encode(promptText(ex, opts.template), false)];
  const responses = texts.map((t) => encodeContinuation(tok, t));
  // One prompt cut for all candidates, sized by the longest, so they are scored on the same context.
  const longest = Math.max(...responses.map((r) => r.length));
  const promptKeep = Math.min(prompt.length, opts.maxLength - Math.min(longest, responseBudget(prompt.length, opts.maxLength)));
  const cut = middleCut(prompt, promptKeep);
  const candidates = responses.map((r) => joinPromptResponse(cut, r, specialPrefix.length, opts.maxLength, false));
  return { candidates, answer };
}

/** Most tokens a response may keep when the prompt has `promptLen` tokens. */
function responseBudget(promptLen: number, maxLength: number): number {
  return maxLength - Math.min(promptLen, Math.ceil(maxLength / 4));
}

/** Concatenate with truncation (see the file comment) and the loss mask. */
export function joinPromptResponse(
  prompt: number[], response: number[], nSpecial: number, maxLength: number, trainOnInputs: boolean,
): EncodedExample {
  let p = prompt;
  let r = response;
  if (p.length + r.length > maxLength) {
    r = r.slice(0, Math.min(r.length, responseBudget(p.length, maxLength)));
    p = middleCut(p, Math.min(p.length, maxLength - r.length));
  }
  const labels = p.map((id, i) => (trainOnInputs && i >= nSpecial ? id : IGNORE_INDEX));
  return { inputIds: [...p, ...r], labels: [...labels, ...r] };
}

/** Keep `keep` ids: the first ceil(keep/2) and the last floor(keep/2). */
export function middleCut(ids: number[], keep: number): number[] {
  if (keep >= ids.length) return ids;
  const head = Math.ceil(keep / 2);
  return [...ids.slice(0, head), ...ids.slice(ids.length - (keep - head))];
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

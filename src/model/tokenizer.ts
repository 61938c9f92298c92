/**
 * The text side of a model directory: tokenizer.json + tokenizer_config.json through
 * @huggingface/tokenizers (pure JS). A directory without tokenizer.json still loads, so that
 * id-only work (`--ids`) runs; anything that needs text then says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { fieldError, HiloError } from '../errors.ts';
import type { TextTokenizer } from './types.ts';

export interface ModelTokenizer extends TextTokenizer {
  /** False when the directory has no tokenizer.json (encode/decode then throw a HiloError). */
  readonly available: boolean;
  /** The string of one token id (for per-token listings), or null when unknown. */
  tokenText(id: number): string | null;
}

function readJson(file: string): Record<string, unknown> | null {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new HiloError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** A special token as tokenizer_config.json writes it: a string or {content: string}. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** Merges as pairs: tokenizer.json may hold "a b" strings (older files) or ["a", "b"] pairs. */
export function normaliseMerges(merges: unknown): Array<[string, string]> {
  if (!Array.isArray(merges)) return [];
  return merges.map((m, i) => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    if (typeof m === 'string') {
      const cut = m.indexOf(' ', 1); // a merge half may itself start with a space-like char, never be empty
      if (cut > 0) return [m.slice(0, cut), m.slice(cut + 1)];
    }
    throw new HiloError(`tokenizer.json model.merges[${i}]: got ${JSON.stringify(m)}; allowed: "a b" or ["a", "b"]`);
  });
}

class MissingTokenizer implements ModelTokenizer {
  readonly available = false;
  readonly vocabSize = 0;
  readonly bosId = null;
  readonly eosId = null;
  readonly padId = null;
  constructor(private readonly dir: string) {}
  private fail(): never {
    throw new HiloError(`${this.dir} has no tokenizer.json: --text needs tokenizer.json (text in or out needs a tokenizer); pass token ids instead, e.g. --ids 1,2,3`);
  }
  encode(): number[] { return this.fail(); }
  decode(): string { return this.fail(); }
  tokenText(): null { return null; }
}

class HfTokenizer implements ModelTokenizer {
  readonly available = true;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  private readonly tok: Tokenizer;

  constructor(json: Record<string, unknown>, config: Record<string, unknown>) {
    const model = json.model as Record<string, unknown> | undefined;
    if (model && Array.isArray(model.merges)) json = { ...json, model: { ...model, merges: normaliseMerges(model.merges) } };
    this.tok = new Tokenizer(json, config);
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const idOf = (key: string) => {
      const s = tokenString(config[key]);
      return s === null ? null : (this.tok.token_to_id(s) ?? null);
    };
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.padId = idOf('pad_token');
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    return this.tok.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  tokenText(id: number): string | null {
    return this.tok.id_to_token(id) ?? null;
  }
}

/** Model types @huggingface/tokenizers implements (a file without `type` is recognised by its fields). */
export const TOKENIZER_MODELS = ['BPE', 'WordPiece', 'Unigram'] as const;

/** Parts a tokenizers file may leave null; the library wants each key present. */
const OPTIONAL_PARTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;

/**
 * The checks the library leaves to stack traces, as `tokenizer.json <field>: ...` errors; the
 * parts a hand-written file may omit become null, as the Rust tokenizers reads them.
 */
export function checkTokenizerJson(json: unknown): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw fieldError('tokenizer.json', json, 'a JSON object as Hugging Face tokenizers saves it');
  }
  const t = json as Record<string, unknown>;
  const model = t.model;
  if (model === null || typeof model !== 'object' || Array.isArray(model)) {
    throw fieldError('tokenizer.json model', model, 'an object {type, vocab, ...} (is this a Hugging Face tokenizers file? save one with tokenizer.save_pretrained)');
  }
  const type = (model as Record<string, unknown>).type;
  if (type !== undefined && !(TOKENIZER_MODELS as readonly unknown[]).includes(type)) {
    throw fieldError('tokenizer.json model.type', type, `${TOKENIZER_MODELS.map((m) => `"${m}"`).join(' | ')} (what @huggingface/tokenizers implements)`);
  }
  const vocab = (model as Record<string, unknown>).vocab;
  if (vocab === null || typeof vocab !== 'object') throw fieldError('tokenizer.json model.vocab', vocab, 'an object {token: id} or, for Unigram, a list of [token, score]');
  const filled = { ...t };
  for (const k of OPTIONAL_PARTS) if (!(k in filled)) filled[k] = null;
  return filled;
}

/** The tokenizer of model directory `dir` (a placeholder that explains itself when there is none). */
export function loadTokenizer(dir: string): ModelTokenizer {
  const file = path.join(dir, 'tokenizer.json');
  const json = readJson(file);
  if (!json) return new MissingTokenizer(dir);
  const config = readJson(path.join(dir, 'tokenizer_config.json')) ?? {};
  try {
    return new HfTokenizer(checkTokenizerJson(json), config);
  } catch (e) {
    if (e instanceof HiloError) throw new HiloError(`${file}: ${e.message}`);
    throw new HiloError(`${file}: not a tokenizer hilo can read (@huggingface/tokenizers says: ${(e as Error).message})`);
  }
}

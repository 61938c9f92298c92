/** Fault matrix of data files: bytes that are not UTF-8, through readJsonl and loadDataset (what training reads). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDataset, type DataRecipe } from '../../src/data/dataset.ts';
import type { RecordRules } from '../../src/data/formats.ts';
import { decodeJsonl, readJsonl } from '../../src/data/jsonl.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-data-faults-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const text: RecordRules = { format: 'text', labels: null, extraSlots: [] };

function file(name: string, bytes: Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

describe('non-UTF-8 bytes in JSONL', () => {
  it('a Latin-1 line is named by file:line and column; the other lines still count', () => {
    const f = file('latin1.jsonl', Buffer.concat([
      Buffer.from('{"text": "fine"}\n'),
      Buffer.from('{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n'), // é in Latin-1
      Buffer.from('{"text": "also fine"}\n{"text": 5}\n'),
    ]));
    const { examples, problems } = readJsonl(f, text);
    expect(examples.map((e) => e.format === 'text' && e.text)).toEqual(['fine', 'also fine']);
    expect(problems).toEqual([
      `${f}:2: not UTF-8 text (an invalid byte at column 14); save the file as UTF-8`,
      `${f}:4: field "text" must be a string, got number 5`,
    ]);
  });

  it('training refuses it with the same line (loadDataset)', () => {
    const f = file('train.jsonl', Buffer.concat([Buffer.from('{"text": "a"}\n{"text": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]));
    const data: DataRecipe = {
      task: null, train_path: f, eval_path: null, test_path: null, format: 'text', template: null, label_words: null,
      max_length: 64, train_on_inputs: false, eval_fraction: 0, max_train_examples: null, max_eval_examples: null,
    };
    expect(() => loadDataset(data, tmp)).toThrow(`recipe.data: 1 problem; fix them before training:\n  ${f}:2: not UTF-8 text (an invalid byte at column 11); save the file as UTF-8`);
  });

  it('a file of nothing but bad lines is not called empty', () => {
    const f = file('all-bad.jsonl', Buffer.from([0x7b, 0xc0, 0x7d, 0x0a]));
    expect(readJsonl(f, text).problems).toEqual([`${f}:1: not UTF-8 text (an invalid byte at column 2); save the file as UTF-8`]);
  });

  it('valid UTF-8 (multi-byte characters, a BOM, CRLF) decodes unchanged', () => {
    const body = '\uFEFF{"text": "café ✓ 𝔘"}\r\n{"text": "b"}\n';
    expect(decodeJsonl(Buffer.from(body), 'x')).toEqual({ text: body.slice(1), badLines: new Map() });
    const f = file('ok.jsonl', Buffer.from(body));
    expect(readJsonl(f, text)).toMatchObject({ problems: [], examples: [{ text: 'café ✓ 𝔘' }, { text: 'b' }] });
  });
});

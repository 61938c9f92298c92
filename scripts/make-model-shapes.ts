/**
 * Random-init Hugging Face model folders in the exact shapes of real checkpoints (hilo's own
 * init and safetensors writer, no Python, nothing downloaded), so anyone can reproduce the
 * real-size measurements:
 *
 *   npx tsx scripts/make-model-shapes.ts --out /tmp/shapes qwen2.5-0.5b smollm2-135m
 *   npx tsx scripts/make-model-shapes.ts --list
 *
 * Each folder DIR/NAME holds config.json (the publisher's, torch_dtype and token ids adjusted),
 * model.safetensors (model-0000k-of-0000n.safetensors + index above 5 GB, as save_pretrained
 * shards) in --dtype (default bf16), and the tokenizer of --tokenizer (default models/hilo-base).
 * That tokenizer's ids are a prefix of the model's vocabulary: the extra embedding rows are
 * simply never looked up, which is fine for training on hilo's built-in tasks. Tensors are
 * generated and written one at a time, so a 7B folder (~13.5 GB) needs ~1 GB of memory.
 *
 * --as-llama writes each shape as a LlamaForCausalLM of the same sizes into DIR/NAME-llama (a
 * Qwen2 shape loses only its q/k/v biases). The PyTorch reference of `npm run bench --
 * --compare-torch` reads Llama and GPT-2 folders only, so a speed comparison at a Qwen2 shape
 * runs both sides on this folder: the same work, less the bias adds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { normaliseConfig } from '../src/model/config.ts';
import { baseParams } from '../src/model/families.ts';
import { REAL_SHAPES } from '../src/model/real-shapes.ts';
import { saveRandomModel } from '../src/model/save.ts';
import { loadTokenizer } from '../src/model/tokenizer.ts';

const DTYPES = { bf16: 'BF16', f16: 'F16', f32: 'F32' } as const;
const TORCH_DTYPE = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' } as const;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: 'models/shapes' },
    dtype: { type: 'string', default: 'bf16' },
    seed: { type: 'string', default: '0' },
    tokenizer: { type: 'string', default: 'models/hilo-base' },
    list: { type: 'boolean', default: false },
    'as-llama': { type: 'boolean', default: false },
  },
});

// as the memory estimate counts them: every tensor of the family's layout, tied embeddings once
const params = (raw: Record<string, unknown>): number => baseParams(normaliseConfig(raw)).total;

if (values.list || positionals.length === 0) {
  for (const [name, raw] of Object.entries(REAL_SHAPES)) {
    console.log(`${name.padEnd(16)} ${(params(raw) / 1e6).toFixed(0).padStart(5)}M  ${(raw.architectures as string[])[0]}`);
  }
  if (!values.list) console.log('\nusage: npx tsx scripts/make-model-shapes.ts [--out DIR] [--dtype bf16|f16|f32] [--seed N] [--as-llama] NAME...');
  process.exit(0);
}

const dtype = DTYPES[values.dtype as keyof typeof DTYPES];
if (!dtype) throw new Error(`--dtype: got "${values.dtype}"; allowed: ${Object.keys(DTYPES).join(' | ')}`);
const unknown = positionals.filter((n) => !(n in REAL_SHAPES));
if (unknown.length > 0) throw new Error(`unknown shape(s) ${unknown.join(', ')}; known: ${Object.keys(REAL_SHAPES).join(', ')}`);

const tok = loadTokenizer(values.tokenizer);
if (!tok.available) throw new Error(`--tokenizer ${values.tokenizer}: no tokenizer.json`);

for (const name of positionals) {
  const published = REAL_SHAPES[name];
  // the tokenizer's largest id must have an embedding row, or encoding could emit an id >= vocab
  if (tok.vocabSize > (published.vocab_size as number)) {
    throw new Error(`${name}: tokenizer ${values.tokenizer} has ids up to ${tok.vocabSize - 1}, beyond vocab_size ${published.vocab_size}`);
  }
  // special-token ids must be the tokenizer's, not those of the real model's tokenizer
  if (values['as-llama'] && published.model_type === 'gpt2') throw new Error(`--as-llama: ${name} is a GPT-2, not a Llama-like shape`);
  const asLlama = values['as-llama'] ? { architectures: ['LlamaForCausalLM'], model_type: 'llama' } : {};
  const raw = { ...published, ...asLlama, torch_dtype: TORCH_DTYPE[dtype], bos_token_id: tok.bosId, eos_token_id: tok.eosId, ...(tok.padId === null ? {} : { pad_token_id: tok.padId }) };
  const dir = path.join(values.out, values['as-llama'] ? `${name}-llama` : name);
  const t0 = Date.now();
  const files = saveRandomModel(raw, dir, { dtype, seed: Number(values.seed), tokenizerFrom: values.tokenizer });
  const bytes = files.reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  console.log(`${dir}: ${(params(raw) / 1e6).toFixed(0)}M params, ${files.length} file(s), ${(bytes / 1e9).toFixed(2)} GB ${values.dtype}, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

/**
 * Just what the alpha-hill probe reads, in real shapes: config.json and the seven projection
 * weights of every decoder layer (bf16, uniform random: a Marchenko-Pastur spectrum, which costs
 * the eigensolver what a trained one does), one safetensors file per layer, and zero embeddings
 * (sparse) for the model folder check. Minutes where a full
 * random model (scripts/make-model-shapes.ts, with embeddings, norms and a tokenizer) takes much
 * longer on a busy machine; for scripts/bench-probe.ts only.
 *
 *   npx tsx scripts/make-probe-shapes.ts llama-2-7b /tmp/shapes/probe-llama-2-7b [--layers 32]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

/** The published configs' fields the probe reads (vocabulary and embeddings are not read). */
const SHAPES: Record<string, Record<string, number | boolean | string>> = {
  'llama-3.2-1b': { hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true },
  'llama-2-7b': { hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, vocab_size: 32000, tie_word_embeddings: false },
};

const { values, positionals } = parseArgs({ allowPositionals: true, options: { layers: { type: 'string' } } });
const [name, out] = positionals;
const shape = SHAPES[name];
if (!shape || !out) throw new Error(`usage: make-probe-shapes.ts NAME OUT [--layers N]; NAME one of ${Object.keys(SHAPES).join(', ')}`);
const layers = Number(values.layers ?? shape.num_hidden_layers);
const h = shape.hidden_size as number;
const q = (shape.num_attention_heads as number) * (shape.head_dim as number);
const kv = (shape.num_key_value_heads as number) * (shape.head_dim as number);
const ffn = shape.intermediate_size as number;
/** [out, in] as torch stores nn.Linear weights. */
const PROJECTIONS: Array<[string, number, number]> = [
  ['self_attn.q_proj', q, h], ['self_attn.k_proj', kv, h], ['self_attn.v_proj', kv, h], ['self_attn.o_proj', h, q],
  ['mlp.gate_proj', ffn, h], ['mlp.up_proj', ffn, h], ['mlp.down_proj', h, ffn],
];

fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', ...shape, num_hidden_layers: layers,
  max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', torch_dtype: 'bfloat16',
}, null, 2));

/** Write one safetensors file: `fill` gives each tensor's bytes, or null for zeros (a sparse extent). */
function writeFile(file: string, tensors: Array<[string, number[]]>, fill: ((rows: number, cols: number) => Uint8Array) | null): void {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 2);
    header[name] = { dtype: 'BF16', shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const size = 8 + json.length + at;
  if (fs.existsSync(file) && fs.statSync(file).size === size) return; // made by an earlier run
  const fd = fs.openSync(file, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  if (fill) for (const [, [rows, cols]] of tensors) fs.writeSync(fd, fill(rows, cols));
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

let s = 0x2545f491;
/** [rows, cols] uniform random bf16 with variance ~ 1 / (12 cols). */
function randomBf16(rows: number, cols: number): Uint8Array {
  const scale = 1 / Math.sqrt(cols);
  const bits = new Uint16Array(rows * cols);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < bits.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5; // xorshift32
    f[0] = ((s >>> 0) / 4294967296 - 0.5) * scale;
    bits[i] = u[0] >>> 16; // bf16 by truncation
  }
  return new Uint8Array(bits.buffer);
}

const weightMap: Record<string, string> = {};
for (let l = 0; l < layers; l++) {
  const file = `layer-${String(l).padStart(3, '0')}.safetensors`;
  const tensors = PROJECTIONS.map(([p, rows, cols]): [string, number[]] => [`model.layers.${l}.${p}.weight`, [rows, cols]]);
  for (const [name] of tensors) weightMap[name] = file;
  writeFile(path.join(out, file), tensors, randomBf16);
  process.stderr.write(`\r${out}: layer ${l + 1}/${layers}`);
}
// The model folder check (src/model/check.ts) wants the embedding (and an untied head); the
// probe never reads them, so they are zeros, stored sparse.
const vocab = shape.vocab_size as number;
const rest: Array<[string, number[]]> = [['model.embed_tokens.weight', [vocab, h]], ['model.norm.weight', [h]]];
if (!shape.tie_word_embeddings) rest.push(['lm_head.weight', [vocab, h]]);
writeFile(path.join(out, 'embeddings.safetensors'), rest, null);
for (const [name] of rest) weightMap[name] = 'embeddings.safetensors';
fs.writeFileSync(path.join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1));
process.stderr.write('\n');

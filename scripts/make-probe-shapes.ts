/**
 * Just what the alpha-hill probe reads, in real shapes: config.json and the seven projection
 * weights of every decoder layer (bf16, uniform random: a Marchenko-Pastur spectrum, which costs
 * the eigensolver what a trained one does), one safetensors file per layer. Minutes where a full
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

let s = 0x2545f491;
const weightMap: Record<string, string> = {};
for (let l = 0; l < layers; l++) {
  const file = `layer-${String(l).padStart(3, '0')}.safetensors`;
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [p, rows, cols] of PROJECTIONS) {
    header[`model.layers.${l}.${p}.weight`] = { dtype: 'BF16', shape: [rows, cols], data_offsets: [at, at + rows * cols * 2] };
    weightMap[`model.layers.${l}.${p}.weight`] = file;
    at += rows * cols * 2;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = fs.openSync(path.join(out, file), 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  for (const [, rows, cols] of PROJECTIONS) {
    const scale = 1 / Math.sqrt(cols);
    const bits = new Uint16Array(rows * cols);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < bits.length; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5; // xorshift32
      f[0] = ((s >>> 0) / 4294967296 - 0.5) * scale;
      bits[i] = u[0] >>> 16; // bf16 by truncation
    }
    fs.writeSync(fd, new Uint8Array(bits.buffer));
  }
  fs.closeSync(fd);
  process.stderr.write(`\r${out}: layer ${l + 1}/${layers}`);
}
fs.writeFileSync(path.join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 1));
process.stderr.write('\n');

/**
 * What one training step really keeps in a wasm heap, set against the estimate
 * (src/allocate/memory.ts): per decoder layer and per token, measured as the difference between
 * models of 2 and 4 layers (so weights, logits and the runtime cancel), for the base model alone
 * and with MoE-LoRA adapters on all 7 projections (4 experts, rank 8, top-2).
 *
 *   npx tsx scripts/bench-memory.ts [--shape smollm2-135m] [--rows 2,4] [--seq 128]
 *
 * tf.profile's peakBytes is the largest sum of live tensor bytes during the step (what the heap
 * must hold, before the allocator's own slack); the heap column is the wasm memory as grown.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { injectAdapters } from '../src/adapters/inject.ts';
import type { AdapterPlan } from '../src/adapters/plan.ts';
import { layerFloats } from '../src/allocate/memory.ts';
import { adapterRowFloats } from '../src/allocate/memory-for-recipe.ts';
import { initBackend } from '../src/backend/index.ts';
import { wasmHeapBytes } from '../src/backend/wasm-heap.ts';
import { normaliseConfig } from '../src/model/config.ts';
import { createRandomModel } from '../src/model/init.ts';
import { REAL_SHAPES } from '../src/model/real-shapes.ts';
import { rowNll } from '../src/train/evaluate.ts';
import { microBatchGradients } from '../src/train/step.ts';

const { values } = parseArgs({ options: { shape: { type: 'string', default: 'smollm2-135m' }, rows: { type: 'string', default: '2,4' }, seq: { type: 'string', default: '128' } } });
await initBackend('wasm', { singleThreaded: true });
const MODS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const T = Number(values.seq);

/** Peak live bytes of one gradient step of a `layers`-layer model on `b` x T tokens. */
async function peak(layers: number, b: number, adapters: boolean, forward = false): Promise<number> {
  // a small vocabulary keeps the logits out of the per-layer difference
  const config = normaliseConfig({ ...REAL_SHAPES[values.shape!], num_hidden_layers: layers, vocab_size: 512, max_position_embeddings: T });
  const model = createRandomModel(config, 0, { trainable: !adapters && !forward });
  const plan: AdapterPlan = {
    method: 'moe-uniform', targetModules: MODS, strategy: 'topk', topP: 1, alpha: 16, scaling: 'alpha/r', fixedScale: 1, dropout: 0.05,
    layers: Array.from({ length: layers }, () => Object.fromEntries(MODS.map((m) => [m, { experts: 4, rank: 8, topK: 2 }]))),
  };
  const inj = adapters ? injectAdapters(model, plan, { seed: 0 }) : null;
  const vars = inj ? [...inj.variables.values()] : [...model.weights.values()];
  const ids = Int32Array.from({ length: b * T }, (_, i) => (i * 7919) % 512);
  const batch = { inputIds: ids, attentionMask: new Float32Array(b * T).fill(1), labels: ids, batchSize: b, seqLen: T };
  const before = tf.memory().numBytes;
  let grads: tf.NamedTensorMap = {};
  const info = await tf.profile(async () => {
    if (forward) await rowNll(model, batch);
    else grads = (await microBatchGradients(model, vars, { kind: 'tokens', batch }, { seedParts: [0] })).grads;
  });
  tf.dispose(grads);
  inj?.dispose();
  model.dispose();
  // full training's gradients are as large as the weights and are counted elsewhere: subtract them
  const gradBytes = adapters || forward ? 0 : vars.reduce((s, v) => s + v.size * 4, 0);
  return info.peakBytes - before - gradBytes;
}

const config = normaliseConfig(REAL_SHAPES[values.shape!]);
const counted = layerFloats(config, T);
const plan = { layers: [Object.fromEntries(MODS.map((m) => [m, { experts: 4, rank: 8, topK: 2 }]))] };
const adapterFloats = adapterRowFloats(plan, { ...config, numLayers: 1 });
console.log(`${values.shape}: floats kept per token per layer, measured (4 layers - 2 layers) / 2 / tokens, T = ${T}`);
console.log('rows x T | full training measured | base counted | base+MoE measured | base+MoE counted | MoE forward measured | heap after');
for (const b of values.rows!.split(',').map(Number)) {
  const n = b * T;
  const base = ((await peak(4, b, false)) - (await peak(2, b, false))) / 2 / 4 / n;
  const moe = ((await peak(4, b, true)) - (await peak(2, b, true))) / 2 / 4 / n;
  const fwd = ((await peak(4, b, true, true)) - (await peak(2, b, true, true))) / 2 / 4 / n;
  const countedBase = counted.perRow + counted.perSequence / T;
  console.log(`${b} x ${T} | ${base.toFixed(0)} | ${countedBase.toFixed(0)} | ${moe.toFixed(0)} | ${(countedBase + adapterFloats).toFixed(0)} | ${fwd.toFixed(0)} | ${((wasmHeapBytes(tf) ?? 0) / 2 ** 20).toFixed(0)} MiB`);
}

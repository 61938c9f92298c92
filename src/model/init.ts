/**
 * A randomly initialised model for pretraining from scratch, with transformers' _init_weights:
 * linear and embedding weights ~ N(0, initializer_range) (GPT-2 residual projections scaled
 * by 1/sqrt(2 n_layer)), biases 0, norm weights 1, the pad token's embedding row 0 (where the family's embedding has a padding_idx).
 * Seeded in JS, so the same seed gives the same weights on every backend.
 */
import { mulberry32 } from '../rng.ts';
import type { BaseCausalLM, HfTensorData } from './causal-lm.ts';
import { familyOf } from './families.ts';
import { buildModel } from './load.ts';
import type { ModelConfig } from './types.ts';

/** Standard normal draws (Box-Muller) from a seeded uniform source. */
export function seededNormal(seed: number): () => number {
  const u = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const theta = 2 * Math.PI * u();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}

/**
 * HF-initialised tensors of `config` one at a time, in the architecture's spec order (the
 * order the seeded stream is drawn in), so a caller can write each to disk and drop it: a 7B
 * checkpoint never has to sit in memory whole.
 */
export function* randomWeightStream(config: ModelConfig, seed: number): Generator<{ name: string; shape: number[]; data: Float32Array }> {
  const specs = familyOf(config).weightSpecs(config);
  const normal = seededNormal(seed);
  const std = config.initializerRange ?? 0.02;
  const pad = config.padTokenId;
  for (const s of specs) {
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.init === 'ones') data.fill(1);
    else if (s.init === 'normal') {
      const sd = std * (s.stdScale ?? 1);
      for (let i = 0; i < data.length; i++) data[i] = normal() * sd;
    }
    if (s.zeroPadRow && pad !== null && pad >= 0 && pad < config.vocabSize) {
      data.fill(0, pad * config.hiddenSize, (pad + 1) * config.hiddenSize);
    }
    yield { name: s.name, shape: s.shape, data };
  }
}

/** HF-initialised weights for `config`, in HF names and layouts. */
export function randomWeights(config: ModelConfig, seed: number): Map<string, HfTensorData & { data: Float32Array }> {
  const out = new Map<string, HfTensorData & { data: Float32Array }>();
  for (const { name, shape, data } of randomWeightStream(config, seed)) out.set(name, { shape, data });
  return out;
}

/** A new model with HF initialisation; trainable by default (it exists to be trained). */
export function createRandomModel(config: ModelConfig, seed: number, opts: { trainable?: boolean } = {}): BaseCausalLM {
  return buildModel(config, randomWeights(config, seed), { trainable: opts.trainable ?? true, source: 'random init' });
}

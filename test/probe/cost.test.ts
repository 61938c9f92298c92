import { describe, expect, it } from 'vitest';
import { readModelConfig } from '../../src/model/load.ts';
import { STORIES260K } from '../helpers/fixtures.ts';
import { flopText, forwardMacsPerToken, probeCost } from '../../src/probe/cost.ts';

const stories = readModelConfig(STORIES260K);
// Llama-2-7B's shapes (hidden 4096, 32 layers, 32 heads of 128, no GQA, MLP 11008, vocabulary 32000)
const llama7b = { ...stories, hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 128, intermediateSize: 11008, vocabSize: 32000 };

describe('probe cost', () => {
  it.each([
    // per layer q, o 64x64; k, v 64x32; gate, up, down 64x172; head 512x64
    [stories, 5 * (2 * 4096 + 2 * 2048 + 3 * 11008) + 512 * 64],
    [llama7b, 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 32000 * 4096],
  ])('forward multiply-adds per token', (config, want) => expect(forwardMacsPerToken(config)).toBe(want));

  it.each([
    [999, '999 FLOP'], [4.1e7, '41 MFLOP'], [2.7e8, '270 MFLOP'], [7.78e9, '7.8 GFLOP'], [5.41e13, '54 TFLOP'], [2e15, '2.0 PFLOP'],
  ])('flopText(%d) = %s', (x, want) => expect(flopText(x)).toBe(want));

  it.each([
    ['depth', stories, undefined, 'depth: the layer index, nothing measured'],
    // 2 x sum of matrixCost: 5 x (2 x 655,360 + 2 x 98,304 + 3 x 876,544) x 2 = 41.4M
    ['alpha-hill', stories, undefined, 'alpha-hill: 35 weight matrices read one at a time, Gram matrices 25 of width 64, 10 of width 32; about 41 MFLOP'],
    ['alpha-hill', llama7b, undefined, 'alpha-hill: 224 weight matrices read one at a time, Gram matrices 224 of width 4096; about 88 TFLOP'],
    // forward, dx and dW: 3 x 2 x 259,328 x 1,000 = 1.6 GFLOP
    ['grad-sensitivity', stories, { batches: 4, tokens: 1000 },
      'grad-sensitivity: one forward+backward per pass over 4 calibration batches (1,000 tokens) in passes of at most 1,024 tokens, every layer\'s weight gradients from each; about 1.6 GFLOP'],
    // 5 layers' 64-wide Grams in one forward that stops at layer 4's input: 2 x 4 x 45,312 x 1,000 + 64^2 x 1,000 x 5
    ['activation-rank', stories, { batches: 1, tokens: 1000 },
      'activation-rank: one forward over 1 calibration batch (1,000 tokens) in passes of at most 1,024 tokens, 5 Gram matrices of width 64; about 383 MFLOP'],
    // 4 of the 128 MiB Grams a forward: 8 forwards running 3 + 7 + ... + 31 = 136 layers of 202,375,168
    // multiply-adds a token, 2 x 202,375,168 x 136 x 4,096 + 4096^2 x 4,096 x 32 = 228 TFLOP
    ['activation-rank', llama7b, { batches: 1, tokens: 4096 },
      'activation-rank: 8 forwards (4 layers\' Grams each) over 1 calibration batch (4,096 tokens) in passes of at most 1,024 tokens, 32 Gram matrices of width 4096; about 228 TFLOP'],
  ] as const)('%s', (kind, config, calibration, want) => expect(probeCost(kind, config, calibration, 1024)).toBe(want));
});

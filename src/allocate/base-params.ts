/**
 * Parameters of the base model from its config alone, for "% of base" budgets and reports.
 * Counts every weight and bias as HF stores them (tied embeddings once).
 */
import type { ModelConfig } from '../model/types.ts';
import { moduleShapes } from '../model/shapes.ts';

export function baseParamCount(c: ModelConfig): number {
  const h = c.hiddenSize;
  const shapes = moduleShapes({ ...c, numLayers: 1 })[0];
  let linears = 0;
  for (const s of Object.values(shapes)) linears += s.in * s.out;
  let perLayer: number;
  let outside: number;
  if (c.arch === 'gpt2') {
    // c_attn, c_proj, c_fc, c_proj all carry biases; ln_1, ln_2 have weight + bias.
    const biases = Object.values(shapes).reduce((a, s) => a + s.out, 0);
    perLayer = linears + biases + 2 * 2 * h;
    outside = c.vocabSize * h + c.maxPositions * h + 2 * h; // wte, wpe, ln_f
  } else {
    const q = c.numHeads * c.headDim;
    const kv = c.numKvHeads * c.headDim;
    const outBias = c.attentionOutputBias ?? c.attentionBias;
    const attnBias = (c.attentionBias ? q + 2 * kv : 0) + (outBias ? h : 0);
    const mlpBias = c.mlpBias ? 2 * c.intermediateSize + h : 0;
    perLayer = linears + attnBias + mlpBias + 2 * h; // + input/post-attention RMSNorm weights
    outside = c.vocabSize * h + h; // embed_tokens, final norm
  }
  if (!c.tieWordEmbeddings) outside += c.vocabSize * h;
  return c.numLayers * perLayer + outside;
}

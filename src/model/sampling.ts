/**
 * How the next token is drawn from a row of logits, as transformers' generate does it: greedy, or
 * a sample from softmax(logits / temperature) cut by top-k, then top-p. Pure functions on the
 * host, no tfjs, so the CLI checks its options before anything loads.
 */
import { fieldError, HiloError } from '../errors.ts';

/** How the next token is drawn, as transformers' generate: temperature, then top-k, then top-p. */
export interface Sampling {
  /** 0 = greedy (first index on ties); otherwise sample softmax(logits / temperature). Default 0. */
  temperature?: number;
  /** Keep only the k largest logits (all that tie with the k-th); 0 = off (default). */
  topK?: number;
  /** Keep the fewest most likely tokens whose probability reaches top_p; 1 = off (default). */
  topP?: number;
}

/** Index of the largest value; the first one on ties (as torch.argmax and run.c). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * The sampling options checked before any model is loaded; the message names the option. Top-k
 * and top-p only shape a sampled draw, so with temperature 0 (greedy) they are refused rather
 * than silently ignored.
 */
export function checkSampling(s: Sampling): void {
  const t = s.temperature ?? 0;
  if (!(t >= 0 && Number.isFinite(t))) throw fieldError('--temperature', t, 'a number >= 0 (0 = greedy)');
  const k = s.topK ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) throw fieldError('--top-k', k, 'an integer >= 0 (0 = off)');
  const p = s.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw fieldError('--top-p', p, 'a number in (0, 1] (1 = off)');
  if (t === 0 && (k > 0 || p < 1)) {
    throw new HiloError(`${k > 0 ? `--top-k ${k}` : `--top-p ${p}`} shapes sampling, but --temperature is 0 (greedy); give --temperature > 0, e.g. 1`);
  }
}

/**
 * Unnormalised probabilities of the next token: exp((row - max) / temperature), zero for tokens
 * top-k or top-p remove. As transformers' TopKLogitsWarper, tokens tying with the k-th largest
 * logit stay; as its TopPLogitsWarper, a token stays while the mass of the tokens more likely
 * than it is below top_p (so at least one stays), ties ordered by index.
 */
export function samplingWeights(row: ArrayLike<number>, s: Sampling): Float64Array {
  const temperature = s.temperature || 1;
  const n = row.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, row[i]);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.exp((row[i] - max) / temperature);
  const topK = s.topK ?? 0;
  const topP = s.topP ?? 1;
  if ((topK <= 0 || topK >= n) && topP >= 1) return w;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  if (topK > 0 && topK < n) {
    const kth = row[order[topK - 1]];
    for (const i of order) if (row[i] < kth) w[i] = 0;
  }
  if (topP < 1) {
    let total = 0;
    for (let i = 0; i < n; i++) total += w[i];
    let before = 0;
    for (const i of order) {
      if (before >= topP * total) w[i] = 0;
      else before += w[i];
    }
  }
  return w;
}

/** Draw an index from softmax(row / temperature), cut by top-k / top-p, with a uniform draw u in [0, 1). */
export function sampleIndex(row: ArrayLike<number>, temperature: number, u: number, cut: Omit<Sampling, 'temperature'> = {}): number {
  const w = samplingWeights(row, { ...cut, temperature });
  let total = 0;
  for (let i = 0; i < w.length; i++) total += w[i];
  let acc = 0;
  let last = 0;
  const target = u * total;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    acc += w[i];
    last = i;
    if (target < acc) return i;
  }
  return last; // u * total rounded up to the full sum: the last token still in
}

/**
 * Accuracy for classification and multiple choice: each candidate (prompt + label word, or
 * prompt + choice) is scored by the summed log-likelihood of its label tokens, and the example
 * counts as right when its answer's candidate scores highest (ties go to the first candidate).
 * The model-side sum is the training loop's; the bookkeeping around it is here, as plain data.
 */
import type { EncodedExample, ScoringItem } from './encode.ts';

/** All candidates of all items as one list of sequences, with where each came from. */
export interface CandidateRows {
  sequences: EncodedExample[];
  /** Per sequence: the index of its item, and of its candidate within the item. */
  item: number[];
  choice: number[];
}

export function flattenCandidates(items: readonly ScoringItem[]): CandidateRows {
  const rows: CandidateRows = { sequences: [], item: [], choice: [] };
  items.forEach((it, i) =>
    it.candidates.forEach((c, j) => {
      rows.sequences.push(c);
      rows.item.push(i);
      rows.choice.push(j);
    }),
  );
  return rows;
}

export interface ScoredItems {
  /** Per item, the index of the best-scoring candidate. */
  predictions: number[];
  correct: number;
  accuracy: number;
  /**
   * Mean over items of the cross-entropy of the softmax over its candidates' scores at the
   * answer: the `data.loss: choices` training objective, measured on held-out items.
   */
  choiceLoss: number;
}

/** `scores[k]` is the summed log-likelihood of flattened sequence k. */
export function pickAnswers(items: readonly ScoringItem[], rows: CandidateRows, scores: ArrayLike<number>): ScoredItems {
  if (scores.length !== rows.sequences.length) {
    throw new Error(`pickAnswers: ${scores.length} scores for ${rows.sequences.length} candidate sequences`);
  }
  const best = items.map(() => ({ score: -Infinity, choice: -1 }));
  for (let k = 0; k < scores.length; k++) {
    const b = best[rows.item[k]];
    if (scores[k] > b.score || b.choice < 0) {
      b.score = scores[k];
      b.choice = rows.choice[k];
    }
  }
  const predictions = best.map((b) => b.choice);
  const correct = predictions.filter((p, i) => p === items[i].answer).length;
  // log Σ_c exp(score_c) - score_answer per item, shifted by the item's best score for stability
  const sumExp = new Float64Array(items.length);
  const answerScore = new Float64Array(items.length);
  for (let k = 0; k < scores.length; k++) {
    const i = rows.item[k];
    sumExp[i] += Math.exp(scores[k] - best[i].score);
    if (rows.choice[k] === items[i].answer) answerScore[i] = scores[k];
  }
  let ce = 0;
  for (let i = 0; i < items.length; i++) ce += best[i].score + Math.log(sumExp[i]) - answerScore[i];
  return { predictions, correct, accuracy: items.length ? correct / items.length : 0, choiceLoss: items.length ? ce / items.length : NaN };
}

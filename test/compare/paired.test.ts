/**
 * Paired comparisons from run rows: which runs are matched (same task, seed, budget, metric;
 * failures and unmatched runs left out), the direction of the difference, and the table text.
 */
import { describe, expect, it } from 'vitest';
import type { Cell } from '../../src/compare/grid.ts';
import { pairedComparisons, pairedMarkdown } from '../../src/compare/paired.ts';
import { budgetText, runRow } from '../../src/compare/summary.ts';

function row(task: string, method: Cell['method'], budget: string, seed: number, value: number | null, metric: Cell['metric'] = 'accuracy') {
  const cell: Cell = { index: 0, task, metric, method, budget: null, budgetLabel: budget, seed, id: '', runDir: '', overrides: [] };
  return runRow(cell, value === null ? { error: 'boom' } : { test: { [metric]: value } });
}

const ROWS = [
  // two tasks x two seeds at one budget; hilo's sentiment seed 1 failed
  row('sentiment', 'lora', 'trainable-80000', 0, 0.60), row('sentiment', 'lora', 'trainable-80000', 1, 0.62),
  row('names', 'lora', 'trainable-80000', 0, 0.70), row('names', 'lora', 'trainable-80000', 1, 0.71),
  row('sentiment', 'hilo', 'trainable-80000', 0, 0.65), row('sentiment', 'hilo', 'trainable-80000', 1, null),
  row('names', 'hilo', 'trainable-80000', 0, 0.70), row('names', 'hilo', 'trainable-80000', 1, 0.75),
  // another budget where only lora ran: no pairs
  row('sentiment', 'lora', 'trainable-240000', 0, 0.66),
  // a perplexity task: lower is better
  row('moby', 'lora', 'trainable-80000', 0, 40, 'perplexity'), row('moby', 'hilo', 'trainable-80000', 0, 38, 'perplexity'),
];

describe('pairedComparisons', () => {
  const pairs = pairedComparisons(ROWS, ['lora', 'hilo']);

  it('matches runs by task and seed at the same budget and metric, later method minus earlier', () => {
    expect(pairs.map((p) => [p.method, p.baseline, p.budget, p.metric, p.n, p.tasks])).toEqual([
      ['hilo', 'lora', 'trainable-80000', 'accuracy', 3, ['sentiment', 'names']],
      ['hilo', 'lora', 'trainable-80000', 'perplexity', 1, ['moby']],
    ]);
    // differences 0.05, 0, 0.04: mean 0.03, std sqrt((0.02² + 0.03² + 0.01²) / 2) = sqrt(0.0007)
    const [acc, ppl] = pairs;
    expect(acc.mean).toBeCloseTo(0.03, 12);
    expect(acc.std).toBeCloseTo(Math.sqrt(0.0007), 12);
    expect(acc.p).toBeCloseTo(0.18849732879931094, 10); // scipy ttest_rel
    expect([acc.wins, acc.ties, acc.losses]).toEqual([2, 1, 0]);
    expect([ppl.mean, ppl.wins, ppl.losses, ppl.p, ppl.low]).toEqual([-2, 1, 0, null, null]);
  });

  it('writes the Markdown table', () => {
    const half = 4.302652729749462 * Math.sqrt(0.0007) / Math.sqrt(3);
    const lines = pairedMarkdown(pairs, budgetText).split('\n');
    expect(lines[0]).toBe('| method − baseline | budget | metric | pairs | mean difference | 95% interval | t-test p | wins / ties / losses | Wilcoxon p |');
    expect(lines[2]).toBe(`| hilo − lora | 80,000 trainable | accuracy | 3 | +0.0300 | [−${(half - 0.03).toFixed(4)}, +${(0.03 + half).toFixed(4)}] | 0.188 | 2 / 1 / 0 | 0.500 |`);
    expect(lines[3]).toBe('| hilo − lora | 80,000 trainable | perplexity | 1 | −2.00 | – | – | 1 / 0 / 0 | 1.000 |');
  });
});

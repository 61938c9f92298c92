/**
 * The pure side of the comparison on fixed inputs: a run's row from its results, the grouping
 * over seeds (mean and sample std), the Markdown table text, and the HTML report.
 */
import { describe, expect, it } from 'vitest';
import type { Cell } from '../../src/compare/grid.ts';
import { htmlReport } from '../../src/compare/report.ts';
import { recipeChanges } from '../../src/compare/results.ts';
import { budgetText, durationText, groupRows, markdownTable, metricText, runRow, sampleStd, type RunRow } from '../../src/compare/summary.ts';

function cell(method: Cell['method'], budgetLabel: string, seed: number, task = 'sentiment', metric: Cell['metric'] = 'accuracy'): Cell {
  return {
    index: 0, task, metric, method, budget: null, budgetLabel, seed, id: `${task}/${method}/${budgetLabel}/seed${seed}`,
    runDir: `/runs/${task}/${method}/${budgetLabel}/seed${seed}`, overrides: [],
  };
}

const results = (acc: number, trainable: number, active: number, extra: Record<string, unknown> = {}) => ({
  params: { trainable, active, base: 1_000_000, trainablePercent: trainable / 10_000 },
  backend: 'wasm', steps: 60, stopped: 'finished',
  eval: { loss: 0.9, perplexity: 2.46, accuracy: 0.5 }, test: { loss: 0.7, perplexity: 2.01, accuracy: acc },
  wall_seconds: 83.4, tokens_per_second: 1234.4, ...extra,
});

const ROWS: RunRow[] = [
  runRow(cell('lora', 'trainable-8000', 0), results(0.75, 7_488, 7_488)),
  runRow(cell('lora', 'trainable-8000', 1), results(0.8, 7_488, 7_488)),
  runRow(cell('lora', 'trainable-8000', 2), results(0.85, 7_488, 7_488)),
  runRow(cell('hilo', 'percent-5', 0), results(0.9, 49_000, 21_000, { wall_seconds: 7.25, tokens_per_second: 999.6 })),
  runRow(cell('hilo', 'percent-5', 1), { error: 'recipe.adapter.budget.percent: got 5; allowed: at least 60,000 trainable parameters' }),
];

describe('runRow', () => {
  it('reads the task metric from the test split, the counts from params', () => {
    expect(ROWS[0]).toMatchObject({
      task: 'sentiment', method: 'lora', budget: 'trainable-8000', seed: 0, metric: 'accuracy', split: 'test', value: 0.75,
      trainable: 7_488, active: 7_488, base: 1_000_000, tokens_per_second: 1234.4, wall_seconds: 83.4, steps: 60, error: null,
    });
  });

  it('falls back to eval when there is no test split, and says so when the metric is missing', () => {
    const noTest = runRow(cell('lora', 'none', 0, 'mine', 'perplexity'), { ...results(0, 1, 1), test: null });
    expect([noTest.split, noTest.value, noTest.error]).toEqual(['eval', 2.46, null]);
    const missing = runRow(cell('lora', 'none', 0), { ...results(0, 1, 1), test: { loss: 1 }, eval: null });
    expect([missing.split, missing.value, missing.error]).toEqual([null, null, 'no accuracy in the results']);
  });

  it('keeps a failed run\'s error', () => {
    expect(ROWS[4]).toMatchObject({ value: null, trainable: null, error: expect.stringMatching(/^recipe\.adapter\.budget\.percent: got 5/) });
  });
});

describe('groupRows', () => {
  it('averages over seeds with the sample std and counts failures', () => {
    const groups = groupRows(ROWS);
    expect(groups.map((g) => [g.method, g.budget, g.n, g.failed])).toEqual([['lora', 'trainable-8000', 3, 0], ['hilo', 'percent-5', 1, 1]]);
    expect(groups[0].mean).toBeCloseTo(0.8, 12);
    expect(groups[0].std).toBeCloseTo(0.05, 12); // sqrt(((-.05)^2 + 0 + .05^2) / 2)
    // 0.8 ∓ t(.975, 2) · 0.05 / √3 = 0.8 ∓ 4.302652729749462 · 0.028867513
    expect(groups[0].ci_low).toBeCloseTo(0.6757931144124835, 12);
    expect(groups[0].ci_high).toBeCloseTo(0.9242068855875164, 12);
    expect(groups[1]).toMatchObject({ mean: 0.9, std: null, ci_low: null, ci_high: null, trainable: 49_000, active: 21_000 });
  });

  it('sampleStd is n-1 and null below two values', () => {
    expect(sampleStd([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.138089935, 8);
    expect(sampleStd([1])).toBeNull();
  });
});

describe('text', () => {
  it('formats budgets, durations and metrics', () => {
    expect([budgetText('trainable-20000'), budgetText('percent-0.5'), budgetText('active-8000'), budgetText('none')])
      .toEqual(['20,000 trainable', '0.5% of base', '8,000 active', 'none']);
    expect(budgetText({ percent: 5 })).toBe('5% of base');
    expect([durationText(7.25), durationText(83.4), durationText(3725), durationText(null)]).toEqual(['7.3s', '1m 23s', '1h 2m', '–']);
    expect(metricText({ metric: 'perplexity', mean: 12.345, std: 0.5, n: 3, failed: 1 })).toBe('12.35 ± 0.50 (1 failed)');
    expect(metricText({ metric: 'accuracy', mean: null, std: null, n: 0, failed: 2 })).toBe('failed');
  });

  it('writes the Markdown table', () => {
    expect(markdownTable(groupRows(ROWS))).toBe([
      '| task | method | budget | trainable params | active params | metric | mean ± std | 95% interval | seeds | tokens/s | wall time / run |',
      '| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
      '| sentiment | lora | 8,000 trainable | 7,488 | 7,488 | accuracy | 0.8000 ± 0.0500 | [0.6758, 0.9242] | 3 | 1,234 | 1m 23s |',
      '| sentiment | hilo | 5% of base | 49,000 | 21,000 | accuracy | 0.9000 (1 failed) | – | 1 | 1,000 | 7.3s |',
    ].join('\n'));
  });

  it('writes one HTML file with the table, the failures and the SVGs, escaped', () => {
    const html = htmlReport({
      title: 'hilo compare: <small>', command: 'hilo compare g.yaml', rows: ROWS, groups: groupRows(ROWS),
      plots: [{ caption: 'A & B', svg: '<svg id="p1"></svg>' }],
    });
    expect(html).toContain('<title>hilo compare: &lt;small&gt;</title>');
    expect(html.match(/<tr>/g)).toHaveLength(3);
    expect(html).toContain('<td class="n">0.8000 ± 0.0500</td><td class="n">[0.6758, 0.9242]</td>');
    expect(html).toContain('<li>sentiment/hilo/percent-5/seed1: recipe.adapter.budget.percent: got 5;');
    expect(html).toContain('<figcaption>A &amp; B</figcaption>\n<svg id="p1"></svg>');
  });
});

describe('recipeChanges', () => {
  it('lists the fields that differ, ignoring backend, resume and W&B settings', () => {
    const before = { seed: 0, backend: 'wasm', adapter: { method: 'lora', budget: { trainable: 10 } }, train: { max_steps: 40, resume: false }, wandb: { name: 'a' } };
    const now = { seed: 0, backend: 'auto', adapter: { method: 'lora', budget: { trainable: 20 } }, train: { max_steps: 60, resume: true }, wandb: { name: 'b' } };
    expect(recipeChanges(before, now)).toEqual(['adapter.budget.trainable', 'train.max_steps']);
    expect(recipeChanges(before, structuredClone(before))).toEqual([]);
    expect(recipeChanges(undefined, now)).toEqual(['the whole recipe']);
  });
});

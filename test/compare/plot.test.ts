/**
 * The plot on fixed inputs: the Vega-Lite spec (data, facets, log x, one colour per method,
 * error bars over the means' 95% intervals) and its rendering: one point mark per successful run
 * and one error bar per group of two or more seeds in the SVG, a PNG with the PNG signature.
 */
import { describe, expect, it } from 'vitest';
import type { Cell } from '../../src/compare/grid.ts';
import { comparePlotSpec, plotData } from '../../src/compare/plot.ts';
import { renderSvg, svgToPng } from '../../src/compare/render.ts';
import { groupRows, runRow } from '../../src/compare/summary.ts';
import { countIntervals, countPoints } from './helpers.ts';

function row(task: string, metric: Cell['metric'], method: Cell['method'], budget: string, seed: number, value: number | null, trainable: number, active: number) {
  const cell: Cell = { index: 0, task, metric, method, budget: null, budgetLabel: budget, seed, id: '', runDir: '', overrides: [] };
  return runRow(cell, value === null
    ? { error: 'boom' }
    : { params: { trainable, active, base: 1e6, trainablePercent: 0 }, test: { [metric]: value }, stopped: 'finished' });
}

const ROWS = [
  row('sentiment', 'accuracy', 'lora', 'trainable-8000', 0, 0.7, 7_000, 7_000),
  row('sentiment', 'accuracy', 'lora', 'trainable-8000', 1, 0.8, 7_000, 7_000),
  row('sentiment', 'accuracy', 'lora', 'trainable-30000', 0, 0.82, 28_000, 28_000),
  row('sentiment', 'accuracy', 'hilo', 'trainable-30000', 0, 0.85, 29_500, 12_000),
  row('sentiment', 'accuracy', 'hilo', 'trainable-30000', 1, null, 0, 0),
  row('moby-lm', 'perplexity', 'hilo', 'trainable-30000', 0, 41.5, 29_000, 11_000),
];

describe('comparePlotSpec', () => {
  it('puts a point per successful run and a mean per group on the chosen parameter axis', () => {
    const data = plotData(ROWS, groupRows(ROWS), 'active');
    expect(data.filter((d) => d.kind === 'run').map((d) => [d.panel, d.method, d.x, d.y])).toEqual([
      ['sentiment (accuracy)', 'lora', 7_000, 0.7], ['sentiment (accuracy)', 'lora', 7_000, 0.8],
      ['sentiment (accuracy)', 'lora', 28_000, 0.82], ['sentiment (accuracy)', 'hilo', 12_000, 0.85],
      ['moby-lm (perplexity)', 'hilo', 11_000, 41.5],
    ]);
    const means = data.filter((d) => d.kind === 'mean');
    expect(means.map((d) => [d.method, d.budget, d.x])).toEqual([
      ['lora', 'trainable-8000', 7_000], ['lora', 'trainable-30000', 28_000], ['hilo', 'trainable-30000', 12_000], ['hilo', 'trainable-30000', 11_000],
    ]);
    expect(means[0].y).toBeCloseTo(0.75, 12);
    // 0.75 ∓ 12.706204736 · 0.0707107 / √2 (two seeds); one seed has no interval
    expect(means[0].lo).toBeCloseTo(0.11468976319126467, 10);
    expect(means[0].hi).toBeCloseTo(1.3853102368087353, 10);
    expect(means.slice(1).map((d) => [d.lo, d.hi])).toEqual([[null, null], [null, null], [null, null]]);
  });

  it('facets by task, log-scales x, colours by method in grid order', () => {
    const spec = comparePlotSpec(ROWS, groupRows(ROWS), 'trainable', ['lora', 'hilo']) as any;
    expect(spec.facet.field).toBe('panel');
    const [line, intervals, points] = spec.spec.layer;
    expect(line.mark.type).toBe('line');
    expect(intervals).toMatchObject({ name: 'intervals', mark: { type: 'errorbar' }, encoding: { y: { field: 'lo' }, y2: { field: 'hi' } } });
    expect(points.name).toBe('runs');
    expect(points.encoding.x.scale.type).toBe('log');
    expect(points.encoding.x.title).toBe('trainable parameters (log scale)');
    expect(points.encoding.y.title).toBe('accuracy / perplexity');
    expect(points.encoding.color.scale.domain).toEqual(['lora', 'hilo']);
    expect(spec.resolve.scale.y).toBe('independent');
  });
});

describe('rendering', () => {
  it('draws one point mark per run in two panels, and rasterises to PNG', async () => {
    const svg = await renderSvg(comparePlotSpec(ROWS, groupRows(ROWS), 'trainable', ['lora', 'hilo']));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(countPoints(svg)).toBe(5);
    expect(countIntervals(svg)).toBe(1); // lora at 8,000: the only group with two seeds
    expect(svg).toContain('sentiment (accuracy)');
    expect(svg).toContain('moby-lm (perplexity)');
    const png = svgToPng(svg, 1);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.readUInt32BE(16)).toBeGreaterThan(600); // width from the IHDR chunk: two 320 px panels
  });
});

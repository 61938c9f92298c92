/**
 * The comparison plot as a Vega-Lite spec (pure data, rendered by render.ts): the task metric
 * against trainable (or active) parameters on a log axis, one panel per task, one colour per
 * method; a point for every run, a line through each method's means over seeds, and an error
 * bar over each mean's 95% t-interval (groups of two or more seeds).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { GroupRow, RunRow } from './summary.ts';

export type ParamAxis = 'trainable' | 'active';

/** The name of the point layer: vega's SVG gives its marks the class `runs_marks`. */
export const POINT_LAYER = 'runs';

const AXIS_TITLE: Record<ParamAxis, string> = {
  trainable: 'trainable parameters (log scale)',
  active: 'active parameters per token (log scale)',
};

interface Datum {
  kind: 'run' | 'mean';
  panel: string;
  method: string;
  budget: string;
  seed: number | null;
  x: number;
  y: number;
  /** A mean's 95% interval; null for runs and for means of one seed. */
  lo: number | null;
  hi: number | null;
}

const panelOf = (r: { task: string; metric: string }) => `${r.task} (${r.metric})`;

/** The name of the error-bar layer (marks with the class `intervals_marks`). */
export const INTERVAL_LAYER = 'intervals';

/** The points and means the plot draws: runs without a metric or a parameter count are left out. */
export function plotData(rows: readonly RunRow[], groups: readonly GroupRow[], axis: ParamAxis): Datum[] {
  const runs = rows
    .filter((r) => r.error === null && r.value !== null && (r[axis] ?? 0) > 0)
    .map((r): Datum => ({ kind: 'run', panel: panelOf(r), method: r.method, budget: r.budget, seed: r.seed, x: r[axis]!, y: r.value!, lo: null, hi: null }));
  const means = groups
    .filter((g) => g.mean !== null && (g[axis] ?? 0) > 0)
    .map((g): Datum => ({ kind: 'mean', panel: panelOf(g), method: g.method, budget: g.budget, seed: null, x: g[axis]!, y: g.mean!, lo: g.ci_low, hi: g.ci_high }));
  return [...runs, ...means];
}

export function comparePlotSpec(rows: readonly RunRow[], groups: readonly GroupRow[], axis: ParamAxis, methods: readonly string[]): TopLevelSpec {
  const metrics = [...new Set(rows.map((r) => r.metric))];
  const x = { field: 'x', type: 'quantitative' as const, scale: { type: 'log' as const }, title: AXIS_TITLE[axis] };
  const y = { field: 'y', type: 'quantitative' as const, scale: { zero: false }, axis: { format: '.4~f' }, title: metrics.join(' / ') };
  const color = { field: 'method', type: 'nominal' as const, scale: { domain: [...methods] }, title: 'method' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: plotData(rows, groups, axis) },
    facet: { field: 'panel', type: 'nominal', title: null, header: { labelFontSize: 13 } },
    columns: 3,
    spec: {
      width: 320,
      height: 240,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'mean'" }],
          mark: { type: 'line', strokeWidth: 2 },
          encoding: { x, y, color, order: { field: 'x', type: 'quantitative' } },
        },
        {
          name: INTERVAL_LAYER,
          transform: [{ filter: "datum.kind === 'mean' && datum.lo != null" }],
          mark: { type: 'errorbar', ticks: true, thickness: 1.5 },
          encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
        },
        {
          name: POINT_LAYER,
          transform: [{ filter: "datum.kind === 'run'" }],
          mark: { type: 'point', filled: true, size: 60, opacity: 0.9 },
          encoding: { x, y, color, shape: { field: 'method', type: 'nominal', scale: { domain: [...methods] }, title: 'method' } },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
    config: { font: 'DejaVu Sans', background: 'white' },
  };
}

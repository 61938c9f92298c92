/**
 * From per-run results to the comparison: one flat row per run (what results.jsonl holds), rows
 * grouped over seeds (mean ± std and a 95% t-interval), and the Markdown table. Pure functions
 * of plain data.
 */
import type { Cell } from './grid.ts';
import { meanInterval } from './stats.ts';
import type { GridBudget, MetricName } from './schema.ts';

/** The part of a run's results.json a comparison reads (written by src/train/finish.ts). */
export interface RunResultsLike {
  recipe?: unknown;
  params?: { trainable: number; active: number; base: number; trainablePercent: number };
  backend?: string;
  steps?: number;
  stopped?: string;
  eval?: Record<string, number> | null;
  test?: Record<string, number> | null;
  wall_seconds?: number;
  tokens_per_second?: number;
  /** Set (by the grid runner) when the run failed. */
  error?: string;
}

/** One run of the grid, flattened. */
export interface RunRow {
  task: string;
  method: string;
  budget: string;
  seed: number;
  metric: MetricName;
  /** The split the metric comes from: test when the task has one, else eval. */
  split: 'test' | 'eval' | null;
  value: number | null;
  trainable: number | null;
  active: number | null;
  base: number | null;
  trainable_percent: number | null;
  tokens_per_second: number | null;
  wall_seconds: number | null;
  steps: number | null;
  backend: string | null;
  run_dir: string;
  error: string | null;
}

export function runRow(cell: Cell, r: RunResultsLike): RunRow {
  const split = r.test && r.test[cell.metric] !== undefined ? 'test' : r.eval && r.eval[cell.metric] !== undefined ? 'eval' : null;
  const value = split ? r[split]![cell.metric] : null;
  const error = r.error ?? (split ? null : `no ${cell.metric} in the results`);
  return {
    task: cell.task, method: cell.method, budget: cell.budgetLabel, seed: cell.seed, metric: cell.metric, split,
    value: value ?? null, trainable: r.params?.trainable ?? null, active: r.params?.active ?? null,
    base: r.params?.base ?? null, trainable_percent: r.params?.trainablePercent ?? null,
    tokens_per_second: r.tokens_per_second ?? null, wall_seconds: r.wall_seconds ?? null,
    steps: r.steps ?? null, backend: r.backend ?? null, run_dir: cell.runDir, error,
  };
}

/** The runs of one (task, method, budget) over seeds. */
export interface GroupRow {
  task: string;
  method: string;
  budget: string;
  metric: MetricName;
  /** Runs with a metric. */
  n: number;
  failed: number;
  mean: number | null;
  /** Sample standard deviation over seeds (n - 1); null below two runs. */
  std: number | null;
  /** The 95% t-interval of the mean over seeds (mean ± t(.975, n-1) std / sqrt(n)); null below two runs. */
  ci_low: number | null;
  ci_high: number | null;
  trainable: number | null;
  active: number | null;
  tokens_per_second: number | null;
  wall_seconds: number | null;
}

export function mean(xs: readonly number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

export function sampleStd(xs: readonly number[]): number | null {
  return meanInterval(xs).std;
}

/** Rows grouped over seeds, in the order their first run appears. */
export function groupRows(rows: readonly RunRow[]): GroupRow[] {
  const groups = new Map<string, RunRow[]>();
  for (const r of rows) {
    const key = JSON.stringify([r.task, r.method, r.budget]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const ok = rs.filter((r) => r.value !== null && r.error === null);
    const of = (f: (r: RunRow) => number | null) => mean(ok.map(f).filter((v): v is number => v !== null));
    const iv = meanInterval(ok.map((r) => r.value!));
    return {
      task: rs[0].task, method: rs[0].method, budget: rs[0].budget, metric: rs[0].metric,
      n: ok.length, failed: rs.length - ok.length, mean: iv.mean, std: iv.std, ci_low: iv.low, ci_high: iv.high,
      trainable: of((r) => r.trainable), active: of((r) => r.active),
      tokens_per_second: of((r) => r.tokens_per_second), wall_seconds: of((r) => r.wall_seconds),
    };
  });
}

/** `{trainable: 20000}` -> "20,000 trainable"; `{percent: 5}` -> "5% of base". */
export function budgetText(budget: GridBudget | string): string {
  const label = typeof budget === 'string' ? budget : budget ? Object.entries(budget)[0].join('-') : 'none';
  const m = /^(trainable|percent|active)-(.+)$/.exec(label);
  if (!m) return label;
  const n = Number(m[2]);
  return m[1] === 'percent' ? `${m[2]}% of base` : `${n.toLocaleString('en-US')} ${m[1]}`;
}

const count = (v: number | null) => (v === null ? '–' : Math.round(v).toLocaleString('en-US'));

/** 83.4 -> "1m 23s"; 7.2 -> "7.2s". */
export function durationText(seconds: number | null): string {
  if (seconds === null) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  return s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Decimal places a metric is shown with. */
export const metricDigits = (metric: MetricName) => (metric === 'accuracy' ? 4 : 2);

/** "0.8125 ± 0.0133" (accuracy to 4 places, perplexity to 2); failures are counted after it. */
export function metricText(g: Pick<GroupRow, 'metric' | 'mean' | 'std' | 'n' | 'failed'>): string {
  const digits = metricDigits(g.metric);
  const value = g.mean === null ? 'failed' : g.std === null ? g.mean.toFixed(digits) : `${g.mean.toFixed(digits)} ± ${g.std.toFixed(digits)}`;
  return g.failed && g.mean !== null ? `${value} (${g.failed} failed)` : value;
}

/** "[0.7812, 0.8438]", or "–" below two runs. */
export function intervalText(g: Pick<GroupRow, 'metric' | 'ci_low' | 'ci_high'>): string {
  if (g.ci_low === null || g.ci_high === null) return '–';
  const digits = metricDigits(g.metric);
  return `[${g.ci_low.toFixed(digits)}, ${g.ci_high.toFixed(digits)}]`;
}

export const TABLE_HEADER = ['task', 'method', 'budget', 'trainable params', 'active params', 'metric', 'mean ± std', '95% interval', 'seeds', 'tokens/s', 'wall time / run'];
/** Columns right-aligned in the Markdown and HTML tables. */
export const NUMERIC_COLUMNS = new Set([3, 4, 6, 7, 8, 9, 10]);

/** The cells of the table, one row per group, as text. */
export function tableCells(groups: readonly GroupRow[]): string[][] {
  return groups.map((g) => [
    g.task, g.method, budgetText(g.budget), count(g.trainable), count(g.active), g.metric,
    metricText(g), intervalText(g), String(g.n), count(g.tokens_per_second), durationText(g.wall_seconds),
  ]);
}

/** The GitHub-flavoured Markdown table, numeric columns right-aligned. */
export function markdownTable(groups: readonly GroupRow[]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(TABLE_HEADER),
    line(TABLE_HEADER.map((_, i) => (NUMERIC_COLUMNS.has(i) ? '---:' : '---'))),
    ...tableCells(groups).map(line),
  ].join('\n');
}

/** Failed runs, one line each, for under the table. */
export function failureLines(rows: readonly RunRow[]): string[] {
  return rows.filter((r) => r.error !== null).map((r) => `${r.task}/${r.method}/${r.budget}/seed${r.seed}: ${r.error}`);
}

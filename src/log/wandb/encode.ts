/**
 * What goes into W&B's history and summary, and how. A history row is one JSON line:
 * the caller's metrics plus `_step` (the training step), `_runtime` (seconds since the run
 * started, continued across resumes) and `_timestamp` (unix seconds).
 *
 * Values:
 * - numbers as JSON numbers; NaN and +-Infinity as the bare tokens `NaN`, `Infinity`,
 *   `-Infinity`, as the official clients write them (W&B's parser accepts them);
 * - strings, booleans, null and nested plain objects as JSON (W&B shows nested keys as `a.b`);
 * - a table `{columns: string[], data: unknown[][]}` as W&B's inline table
 *   `{"_type": "table", "columns": [...], "data": [[...], ...]}` (e.g. expert usage per layer:
 *   columns ["expert", "share"], one row per expert);
 * - a histogram `{bins: number[], values: number[]}` (bins = values + 1 edges) as
 *   `{"_type": "histogram", "bins": [...], "values": [...]}`, which W&B charts over steps.
 */
import { HiloError } from '../../errors.ts';

export interface Table {
  columns: string[];
  data: unknown[][];
}
export interface Histogram {
  bins: number[];
  values: number[];
}
export type MetricValue = number | string | boolean | null | Table | Histogram | { [key: string]: unknown };

/** A string no metric will hold, standing in for a non-finite number while JSON does its work. */
const NON_FINITE = '__hilo_nonfinite__:';

/** JSON with NaN/Infinity written as W&B's bare tokens instead of JSON's null. */
export function toWandbJson(value: unknown): string {
  const s = JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? `${NON_FINITE}${v}` : v));
  return s.replace(/"__hilo_nonfinite__:(NaN|Infinity|-Infinity)"/g, '$1');
}

/** Parse a line written by toWandbJson (JSON.parse does not know the bare tokens). */
export function fromWandbJson(line: string): any {
  // Bare tokens only occur outside strings; inside strings they are quoted and left alone.
  const fixed = line.replace(/("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)/g, (m, str) => (str ? m : `"${NON_FINITE}${m}"`));
  return JSON.parse(fixed, (_k, v) => (typeof v === 'string' && v.startsWith(NON_FINITE) ? Number(v.slice(NON_FINITE.length)) : v));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One metric value in W&B's history encoding; throws HiloError when a table/histogram is malformed. */
export function encodeMetric(key: string, value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  if ('columns' in value && 'data' in value) {
    const { columns, data } = value;
    if (!Array.isArray(columns) || !Array.isArray(data) || data.some((r) => !Array.isArray(r) || r.length !== columns.length)) {
      throw new HiloError(`wandb metric ${JSON.stringify(key)}: a table needs columns: string[] and data rows of ${Array.isArray(columns) ? columns.length : '?'} cells`);
    }
    return { _type: 'table', columns, data };
  }
  if ('bins' in value && 'values' in value) {
    const { bins, values } = value;
    const numbers = (a: unknown): a is number[] => Array.isArray(a) && a.every((x) => typeof x === 'number');
    if (!numbers(bins) || !numbers(values) || bins.length !== values.length + 1) {
      throw new HiloError(`wandb metric ${JSON.stringify(key)}: a histogram needs numeric bins (edges, values.length + 1 of them) and values`);
    }
    return { _type: 'histogram', bins, values };
  }
  return value;
}

/** A history row: encoded metrics, then the three fields W&B needs on every line. */
export function historyRow(metrics: Record<string, unknown>, step: number, runtime: number, timestamp: number): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metrics)) row[k] = v;
  row._step = step;
  row._runtime = Math.round(runtime * 1000) / 1000;
  row._timestamp = Math.round(timestamp * 1000) / 1000;
  return row;
}

/** The official clients send config keys wrapped as {"key": {"value": ...}} (runconfig.go:Serialize). */
export function wrapConfig(config: Record<string, unknown>): Record<string, { value: unknown }> {
  const out: Record<string, { value: unknown }> = {};
  for (const [k, v] of Object.entries(config)) out[k] = { value: v };
  return out;
}

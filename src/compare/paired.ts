/**
 * Methods against each other at the same budget, paired over (task, seed): every run of the
 * method is matched with the baseline's run on the same task and seed (same data split, same
 * order of batches), so task difficulty and the seed's luck cancel in the difference. Pure.
 */
import type { MetricName } from './schema.ts';
import { pairedDifference, type PairedDifference } from './stats.ts';
import { metricDigits, type RunRow } from './summary.ts';

/** The metrics where a higher value is better. */
const HIGHER_IS_BETTER: Record<MetricName, boolean> = { accuracy: true, perplexity: false };

export interface PairRow extends PairedDifference {
  /** The method whose metric minus the baseline's is reported. */
  method: string;
  baseline: string;
  budget: string;
  metric: MetricName;
  /** Tasks that contributed pairs. */
  tasks: string[];
}

const ok = (r: RunRow) => r.error === null && r.value !== null;

/**
 * Every later method of `methods` against every earlier one (grid order: put the method under
 * test last and it meets every baseline), per budget and metric, over the (task, seed) pairs
 * where both runs have a value. Pairs with no match are left out.
 */
export function pairedComparisons(rows: readonly RunRow[], methods: readonly string[]): PairRow[] {
  const byKey = new Map<string, number>();
  for (const r of rows.filter(ok)) byKey.set(JSON.stringify([r.method, r.budget, r.metric, r.task, r.seed]), r.value!);
  const budgets = [...new Set(rows.map((r) => r.budget))];
  const metrics = [...new Set(rows.map((r) => r.metric))];
  const out: PairRow[] = [];
  for (const budget of budgets) {
    for (const metric of metrics) {
      for (const [j, method] of methods.entries()) {
        for (const baseline of methods.slice(0, j)) {
          const a: number[] = [];
          const b: number[] = [];
          const tasks = new Set<string>();
          for (const r of rows) {
            if (r.method !== method || r.budget !== budget || r.metric !== metric || !ok(r)) continue;
            const other = byKey.get(JSON.stringify([baseline, budget, metric, r.task, r.seed]));
            if (other === undefined) continue;
            a.push(r.value!);
            b.push(other);
            tasks.add(r.task);
          }
          if (a.length === 0) continue;
          out.push({ method, baseline, budget, metric, tasks: [...tasks], ...pairedDifference(a, b, HIGHER_IS_BETTER[metric]) });
        }
      }
    }
  }
  return out;
}

const signed = (v: number, digits: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}`;
const pText = (p: number | null) => (p === null ? '–' : p < 0.001 ? '< 0.001' : p.toFixed(3));

export const PAIRED_HEADER = ['method − baseline', 'budget', 'metric', 'pairs', 'mean difference', '95% interval', 't-test p', 'wins / ties / losses', 'Wilcoxon p'];

/** One line of text cells per comparison, for the Markdown and HTML tables. */
export function pairedCells(pairs: readonly PairRow[], budgetText: (b: string) => string): string[][] {
  return pairs.map((p) => {
    const digits = metricDigits(p.metric);
    return [
      `${p.method} − ${p.baseline}`, budgetText(p.budget), p.metric, String(p.n),
      p.mean === null ? '–' : signed(p.mean, digits),
      p.low === null || p.high === null ? '–' : `[${signed(p.low, digits)}, ${signed(p.high, digits)}]`,
      pText(p.p), `${p.wins} / ${p.ties} / ${p.losses}`, pText(p.wilcoxon_p),
    ];
  });
}

export function pairedMarkdown(pairs: readonly PairRow[], budgetText: (b: string) => string): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(PAIRED_HEADER),
    line(PAIRED_HEADER.map((_, i) => (i >= 3 ? '---:' : '---'))),
    ...pairedCells(pairs, budgetText).map(line),
  ].join('\n');
}

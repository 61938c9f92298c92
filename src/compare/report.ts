/**
 * The single-file HTML report: title, the command that made it, the table and the plots inlined
 * as SVG, so it can be mailed or attached without its folder. Pure: text in, text out.
 */
import { PAIRED_HEADER, pairedCells, type PairRow } from './paired.ts';
import { budgetText, failureLines, NUMERIC_COLUMNS, TABLE_HEADER, tableCells, type GroupRow, type RunRow } from './summary.ts';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface ReportInput {
  title: string;
  /** The command that produced the results, shown under the title. */
  command: string;
  rows: readonly RunRow[];
  groups: readonly GroupRow[];
  /** Paired differences between methods (none: no section). */
  pairs?: readonly PairRow[];
  /** Plot captions and their SVG text, in order. */
  plots: ReadonlyArray<{ caption: string; svg: string }>;
}

const STYLE = `body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:2em 0}figcaption{font-weight:bold;margin-bottom:.5em}code{background:#f3f3f3;padding:2px 4px}`;

export function htmlReport(r: ReportInput): string {
  const head = `<tr>${TABLE_HEADER.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = tableCells(r.groups)
    .map((cells) => `<tr>${cells.map((c, i) => `<td${NUMERIC_COLUMNS.has(i) ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  const failures = failureLines(r.rows);
  const failed = failures.length
    ? `<h2>Failed runs</h2>\n<ul>\n${failures.map((f) => `<li>${escapeHtml(f)}</li>`).join('\n')}\n</ul>`
    : '';
  const pairs = r.pairs?.length
    ? `<h2>Paired differences</h2>\n<table>\n<tr>${PAIRED_HEADER.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>\n` +
      pairedCells(r.pairs, budgetText).map((cells) => `<tr>${cells.map((c, i) => `<td${i >= 3 ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n') +
      '\n</table>'
    : '';
  // The SVGs come from vega's renderer (our own data, escaped by it), inlined as they are.
  const figures = r.plots.map((p) => `<figure><figcaption>${escapeHtml(p.caption)}</figcaption>\n${p.svg}\n</figure>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(r.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(r.title)}</h1>
<p><code>${escapeHtml(r.command)}</code></p>
<table>
${head}
${body}
</table>
${pairs}
${failed}
${figures}
</body></html>
`;
}

/**
 * Old against new in one session: scripts/bench-train.ts from two checkouts, run in turns
 * (old-new, new-old, ...) so that the machine's drift falls on both alike, then per row the
 * median step of each side and the median of the per-pair ratios new/old with a
 * distribution-free interval for it (order statistics of the binomial). On a shared machine
 * whose speed moves by 15-30% between runs, a ratio's interval, not two medians, says whether a
 * change is faster or slower.
 *   npx tsx scripts/bench-ab.ts --old DIR --new DIR [--pairs 8] [--json FILE] -- BENCH-ARGS...
 * DIR: a checkout with its own scripts/bench-train.ts and node_modules (a `git worktree` of the
 * old commit with node_modules linked is enough). BENCH-ARGS go to bench-train.ts in both, e.g.
 *   -- --models tiny,stories --steps 36 --leak-steps 0
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash < 0 ? argv : argv.slice(0, dash);
const benchArgs = dash < 0 ? [] : argv.slice(dash + 1);
const flag = (name: string) => {
  const i = own.indexOf(`--${name}`);
  return i >= 0 ? own[i + 1] : undefined;
};
const sides = { old: flag('old'), new: flag('new') };
const pairs = Number(flag('pairs') ?? 8);
if (!sides.old || !sides.new || !Number.isInteger(pairs) || pairs < 2) {
  console.error('usage: npx tsx scripts/bench-ab.ts --old DIR --new DIR [--pairs N>=2] [--json FILE] -- BENCH-ARGS...');
  process.exit(2);
}
for (const [side, dir] of Object.entries(sides)) {
  if (!fs.existsSync(path.join(dir!, 'scripts/bench-train.ts'))) {
    console.error(`--${side} ${dir}: no scripts/bench-train.ts there; point it at a checkout of the commit to time`);
    process.exit(2);
  }
}

interface Row { model: string; row: string; stepMs: number; cpuMs: number; loss?: number }
type Side = 'old' | 'new';
const runs: Record<Side, Row[][]> = { old: [], new: [] };
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ab-'));

function runSide(side: Side, i: number): void {
  const out = path.join(scratch, `${side}-${i}.json`);
  const r = spawnSync('npx', ['tsx', 'scripts/bench-train.ts', ...benchArgs, '--json', out], { cwd: sides[side], encoding: 'utf8' });
  if (r.status !== 0 || !fs.existsSync(out)) {
    console.error(r.stdout, r.stderr);
    throw new Error(`${side} run ${i + 1} failed (exit ${r.status})`);
  }
  runs[side].push(JSON.parse(fs.readFileSync(out, 'utf8')).rows);
  console.error(`pair ${i + 1}/${pairs} ${side}: ${runs[side].at(-1)!.map((x) => `${x.model}/${x.row} ${x.stepMs.toFixed(1)}`).join(', ')} (load ${os.loadavg()[0].toFixed(1)})`);
}

for (let i = 0; i < pairs; i++) {
  const order: Side[] = i % 2 === 0 ? ['old', 'new'] : ['new', 'old'];
  for (const side of order) runSide(side, i);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Binomial(n, 1/2) CDF at k. */
const binomCdf = (n: number, k: number) => {
  let c = 1;
  let sum = 0;
  for (let j = 0; j <= k; j++) {
    sum += c;
    c = (c * (n - j)) / (j + 1);
  }
  return sum / 2 ** n;
};
/**
 * The interval [x(k), x(n+1-k)] of the sorted values that covers the median with probability
 * >= 95% (the widest k with P(Bin(n, 1/2) <= k - 1) <= 2.5%), and that probability.
 */
function medianInterval(xs: number[]): { lo: number; hi: number; coverage: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  let k = 1;
  while (k + 1 <= n / 2 && binomCdf(n, k) <= 0.025) k++;
  return { lo: s[k - 1], hi: s[n - k], coverage: 1 - 2 * binomCdf(n, k - 1) };
}

const keys = runs.old[0].map((r) => `${r.model}/${r.row}`);
const pick = (side: Side, key: string, field: 'stepMs' | 'cpuMs') =>
  runs[side].map((rows) => rows.find((r) => `${r.model}/${r.row}` === key)![field]);
const table = keys.map((key) => {
  const out: Record<string, unknown> = { row: key };
  for (const field of ['stepMs', 'cpuMs'] as const) {
    const [o, n] = [pick('old', key, field), pick('new', key, field)];
    const ratios = o.map((x, i) => n[i] / x);
    out[field] = { old: median(o), new: median(n), ratio: median(ratios), interval: medianInterval(ratios) };
  }
  const loss = (side: Side) => runs[side][0].find((r) => `${r.model}/${r.row}` === key)?.loss;
  out.loss = { old: loss('old'), new: loss('new') };
  return out;
});

const f = (x: number, d = 1) => x.toFixed(d);
console.log(`${pairs} pairs, alternating order; bench-train.ts ${benchArgs.join(' ')}; old ${sides.old}, new ${sides.new}`);
console.log('| row | old step ms | new step ms | new/old (median of pairs, interval) | old CPU ms | new CPU ms | new/old CPU |');
console.log('|---|---:|---:|---|---:|---:|---|');
for (const r of table) {
  const s = r.stepMs as { old: number; new: number; ratio: number; interval: { lo: number; hi: number; coverage: number } };
  const c = r.cpuMs as typeof s;
  console.log(`| ${r.row} | ${f(s.old)} | ${f(s.new)} | ${f(s.ratio, 3)} [${f(s.interval.lo, 3)}, ${f(s.interval.hi, 3)}] | ${f(c.old)} | ${f(c.new)} | ${f(c.ratio, 3)} [${f(c.interval.lo, 3)}, ${f(c.interval.hi, 3)}] |`);
}
const lossDiffers = table.filter((r) => { const l = r.loss as { old?: number; new?: number }; return l.old !== l.new; });
console.log(lossDiffers.length ? `losses differ: ${lossDiffers.map((r) => `${r.row} ${JSON.stringify(r.loss)}`).join('; ')}` : 'losses after the timed steps: identical on every row');
const cov = (table[0].stepMs as { interval: { coverage: number } }).interval.coverage;
console.log(`intervals: order statistics of the ${pairs} per-pair ratios, coverage ${(100 * cov).toFixed(1)}% for the median ratio`);
const file = flag('json');
if (file) {
  fs.writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), pairs, benchArgs, sides, table, runs }, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

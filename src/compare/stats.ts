/**
 * The statistics of a comparison, as pure functions of plain numbers: Student's t distribution
 * (exact for the integer degrees of freedom a grid has), a cell's 95% t-interval over seeds, and
 * the paired comparison of two methods over (task, seed) pairs: mean difference with its t-interval,
 * the paired t-test, wins/ties/losses and the exact Wilcoxon signed-rank test (which does not
 * assume the differences are normal: with 3-10 pairs that assumption cannot be checked).
 */

/**
 * P(|T| < t) for Student's t with `df` degrees of freedom (an integer >= 1), from the finite
 * series in cos(θ), θ = atan(t / sqrt(df)) (Abramowitz & Stegun 26.7.3-4): exact up to rounding,
 * no special functions needed.
 */
export function tCentralMass(t: number, df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new Error(`tCentralMass: df must be an integer >= 1, got ${df}`);
  if (Number.isNaN(t)) return NaN;
  const x = Math.abs(t);
  if (x === Infinity) return 1;
  const theta = Math.atan(x / Math.sqrt(df));
  const c2 = Math.cos(theta) ** 2;
  const s = Math.sin(theta);
  if (df % 2 === 0) {
    // sinθ (1 + 1/2 c² + 1·3/(2·4) c⁴ + ... up to c^(df-2))
    let term = 1;
    let sum = 1;
    for (let k = 2; k <= df - 2; k += 2) {
      term *= ((k - 1) / k) * c2;
      sum += term;
    }
    return Math.min(1, s * sum);
  }
  // 2/π (θ + sinθ cosθ (1 + 2/3 c² + 2·4/(3·5) c⁴ + ... up to c^(df-3))); df = 1 is 2θ/π
  if (df === 1) return (2 / Math.PI) * theta;
  let term = 1;
  let sum = 1;
  for (let k = 3; k <= df - 2; k += 2) {
    term *= ((k - 1) / k) * c2;
    sum += term;
  }
  return Math.min(1, (2 / Math.PI) * (theta + s * Math.cos(theta) * sum));
}

/** Two-sided p-value of a t statistic: P(|T| >= |t|). */
export function tTwoSidedP(t: number, df: number): number {
  return Math.max(0, 1 - tCentralMass(t, df));
}

/** The t value with P(|T| < t) = `level` (0.95 -> the 97.5% quantile), by bisection. */
export function tCritical(level: number, df: number): number {
  if (!(level > 0 && level < 1)) throw new Error(`tCritical: level must be in (0, 1), got ${level}`);
  let lo = 0;
  let hi = 1;
  while (tCentralMass(hi, df) < level) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tCentralMass(mid, df) < level) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export const LEVEL = 0.95;

/** Mean, sample std and the two-sided t-interval of the mean; below two values no std or interval. */
export interface MeanInterval {
  n: number;
  mean: number | null;
  std: number | null;
  /** Bounds of the `level` t-interval: mean ± t(level, n-1) · std / sqrt(n). */
  low: number | null;
  high: number | null;
}

export function meanInterval(xs: readonly number[], level = LEVEL): MeanInterval {
  const n = xs.length;
  if (n === 0) return { n, mean: null, std: null, low: null, high: null };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { n, mean, std: null, low: null, high: null };
  const std = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = tCritical(level, n - 1) * (std / Math.sqrt(n));
  return { n, mean, std, low: mean - half, high: mean + half };
}

/**
 * Exact two-sided p-value of the Wilcoxon signed-rank test on paired differences: zero
 * differences are dropped (Wilcoxon's convention), tied |d| share their mid-rank, and the null
 * distribution of the positive rank sum is counted over all 2^n sign patterns of those ranks.
 * null when no difference is non-zero.
 */
export function wilcoxonSignedRankP(diffs: readonly number[]): number | null {
  const d = diffs.filter((x) => x !== 0);
  const n = d.length;
  if (n === 0) return null;
  const order = d.map((x, i) => [Math.abs(x), i] as const).sort((a, b) => a[0] - b[0]);
  // Doubled mid-ranks are integers: ties at sorted positions i..j (1-based) each get i + j.
  const rank2 = new Array<number>(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) rank2[order[k][1]] = i + 1 + (j + 1);
    i = j + 1;
  }
  const total = rank2.reduce((a, b) => a + b, 0);
  const observed = d.reduce((a, x, i) => a + (x > 0 ? rank2[i] : 0), 0);
  // prob[s] = P(doubled positive rank sum = s), each rank positive with probability 1/2.
  let prob = new Float64Array(total + 1);
  prob[0] = 1;
  for (const r of rank2) {
    const next = new Float64Array(total + 1);
    for (let s = 0; s <= total; s++) {
      if (prob[s] === 0) continue;
      next[s] += prob[s] / 2;
      next[s + r] += prob[s] / 2;
    }
    prob = next;
  }
  let below = 0;
  let above = 0;
  for (let s = 0; s <= total; s++) {
    if (s <= observed) below += prob[s];
    if (s >= observed) above += prob[s];
  }
  return Math.min(1, 2 * Math.min(below, above));
}

/** method - baseline over matched pairs. */
export interface PairedDifference extends MeanInterval {
  /** Paired t statistic mean / (std / sqrt(n)); null below two pairs or when every difference is equal. */
  t: number | null;
  /** Two-sided p of the paired t-test; with zero spread 1 when the differences are all 0, else 0. */
  p: number | null;
  /** Pairs where the method is better / equal / worse (by the metric's direction). */
  wins: number;
  ties: number;
  losses: number;
  /** Exact two-sided Wilcoxon signed-rank p (null when every difference is 0 or there are none). */
  wilcoxon_p: number | null;
}

/** The paired comparison of `method[i]` against `baseline[i]`; higherIsBetter says which sign wins. */
export function pairedDifference(method: readonly number[], baseline: readonly number[], higherIsBetter = true, level = LEVEL): PairedDifference {
  if (method.length !== baseline.length) throw new Error(`pairedDifference: ${method.length} method values vs ${baseline.length} baseline values`);
  const d = method.map((m, i) => m - baseline[i]);
  const iv = meanInterval(d, level);
  const better = (x: number) => (higherIsBetter ? x > 0 : x < 0);
  const wins = d.filter(better).length;
  const ties = d.filter((x) => x === 0).length;
  let t: number | null = null;
  let p: number | null = null;
  if (iv.n >= 2 && iv.std !== null) {
    if (iv.std > 0) {
      t = iv.mean! / (iv.std / Math.sqrt(iv.n));
      p = tTwoSidedP(t, iv.n - 1);
    } else {
      p = iv.mean === 0 ? 1 : 0;
    }
  }
  return { ...iv, t, p, wins, ties, losses: d.length - wins - ties, wilcoxon_p: wilcoxonSignedRankP(d) };
}

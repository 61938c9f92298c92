/** Shared by the compare tests. */

/** Point marks vega drew for the plot's run layer: the <path> elements inside its `runs_marks` groups. */
export function countPoints(svg: string): number {
  const groups = svg.match(/<g class="mark-symbol role-mark runs_marks"[^>]*>.*?<\/g>/gs) ?? [];
  return groups.reduce((n, g) => n + (g.match(/<path /g) ?? []).length, 0);
}

/** Error bars vega drew for the plot's interval layer: the <line> elements of its rule marks. */
export function countIntervals(svg: string): number {
  const groups = svg.match(/<g class="mark-rule role-mark intervals_[^"]*"[^>]*>.*?<\/g>/gs) ?? [];
  return groups.reduce((n, g) => n + (g.match(/<line /g) ?? []).length, 0);
}

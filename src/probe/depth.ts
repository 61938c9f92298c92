/**
 * The depth probe: complexity rises linearly with layer index, score l / (L - 1) in [0, 1]
 * (MoLA's "higher layers need more experts", HILO's shallow-low / deep-high ranks).
 * Needs only the layer count; a single layer scores 1.
 */
export function depthScores(numLayers: number): number[] {
  if (numLayers === 1) return [1];
  return Array.from({ length: numLayers }, (_, l) => l / (numLayers - 1));
}

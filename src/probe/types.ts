/**
 * What a probe produces: one complexity score per decoder layer (higher = more complex = more
 * experts / higher rank), optionally one per adapted module, with the settings and the model
 * fingerprint that make a saved probe.json reusable.
 */
import { PROBES, type ProbeKind } from '../names.ts';

/** depth | alpha-hill | grad-sensitivity | activation-rank. */
export const PROBE_KINDS = PROBES;
export type { ProbeKind };

export interface ProbeResult {
  kind: ProbeKind;
  /** Everything that changes the numbers (besides the model): compared before reusing a probe.json. */
  settings: Record<string, unknown>;
  /** Score per decoder layer. */
  layers: number[];
  /** Score per in-layer module path per layer ("adapter granularity"), where the probe has one. */
  modules?: Array<Record<string, number>>;
  /** sha256 of the model's config.json and safetensors headers/sizes (see fingerprint.ts). */
  fingerprint: string;
}

/**
 * The closed vocabularies several stages share, each listed once: the recipe schema validates
 * against them, the CLI offers them as choices, allocation, adapters and compare check and
 * type with them. No imports: any stage may read this file without pulling another one in.
 */

/** tfjs engines; `auto` takes the fastest that initialises (src/backend/index.ts). */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
/**
 * Engines whose tensors are host memory: reading one is a copy, no device transfer, so small work
 * runs as JS loops there and data-parallel replicas split a batch over the CPU's cores.
 */
export const HOST_MEMORY_BACKENDS: readonly string[] = ['wasm', 'cpu'];

/** How an adapter's experts and ranks are allocated (src/allocate/methods.ts). */
export const METHODS = ['none', 'lora', 'moe-uniform', 'mola', 'alphalora', 'hilo', 'manual'] as const;
export type Method = (typeof METHODS)[number];

/** The methods a compare grid runs against each other (`none` and `manual` are not comparisons). */
export const GRID_METHODS = ['lora', 'moe-uniform', 'mola', 'alphalora', 'hilo'] as const satisfies readonly Method[];
export type GridMethod = (typeof GRID_METHODS)[number];

/** Layer-complexity scores (src/probe/). */
export const PROBES = ['depth', 'alpha-hill', 'grad-sensitivity', 'activation-rank'] as const;
export type ProbeKind = (typeof PROBES)[number];
/** Which probe a method needs (null: none). alphalora is alpha-hill by definition; hilo takes adapter.probe. */
export function probeKindFor(adapter: { method: string; probe: string }): string | null {
  if (adapter.method === 'alphalora') return 'alpha-hill';
  if (adapter.method === 'hilo') return adapter.probe;
  return null;
}
/** Probes that read data, and so need a loaded model and calibration batches. */
export const DATA_PROBES: readonly ProbeKind[] = ['grad-sensitivity', 'activation-rank'];

/** How a router turns probabilities into expert weights. */
export const ROUTING_STRATEGIES = ['topk', 'topp', 'dense'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

/** LoRA scale rules: `alpha/r` (PEFT, MoLA), `alpha/sqrt(r)` (rsLoRA) or a fixed scale. */
export const LORA_SCALINGS = ['alpha/r', 'alpha/sqrt(r)', 'fixed'] as const;
export type ScalingRule = (typeof LORA_SCALINGS)[number];

/** A parameter budget as recipes and grids write it: exactly one of the three keys. */
export interface Budget {
  /** Absolute trainable parameters. */
  trainable?: number;
  /** Trainable parameters as a percentage of the base model's parameters. */
  percent?: number;
  /** Parameters touched per token (active experts' LoRA weights + routers). */
  active?: number;
}

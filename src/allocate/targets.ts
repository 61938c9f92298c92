/**
 * Which in-layer modules a plan adapts, and whether a plan fits a model. Targets follow PEFT:
 * a short name (`q_proj`), a dotted suffix (`attn.c_proj`) or `all-linear`.
 */
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError, showValue } from '../errors.ts';
import { moduleShapes, projectionPaths, targetMatches } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';

/** In-layer paths (layer 0's order) selected by `targets`; every target must match something. */
export function resolveTargets(config: ModelConfig, targets: readonly string[] | 'all-linear', field = 'recipe.adapter.target_modules'): string[] {
  const paths = projectionPaths(config);
  if (targets === 'all-linear') return paths;
  if (!Array.isArray(targets) || targets.length === 0) {
    throw fieldError(field, targets, '"all-linear" or a non-empty list of module names');
  }
  const allowed = [...new Set(paths.flatMap((p) => [p.split('.').pop()!, p]))];
  for (const t of targets) {
    if (!paths.some((p) => targetMatches(t, p))) throw fieldError(field, t, allowed);
  }
  return paths.filter((p) => targets.some((t) => targetMatches(t, p)));
}

/**
 * Check that `plan` can be built on this model: one entry per decoder layer, known module paths,
 * positive integer experts/ranks/top-k. Throws a HiloError naming the field, value and choices.
 */
export function checkPlanFitsModel(plan: AdapterPlan, config: ModelConfig, field = 'plan'): void {
  if (!Array.isArray(plan.layers) || plan.layers.length !== config.numLayers) {
    const got = Array.isArray(plan.layers) ? `${plan.layers.length} layers` : plan.layers;
    throw new HiloError(`${field}.layers: got ${showValue(got)}; allowed: exactly ${config.numLayers} layers (the model's num_hidden_layers)`);
  }
  const shapes = moduleShapes(config);
  plan.layers.forEach((mods, l) => {
    const known = Object.keys(shapes[l]);
    for (const [path, m] of Object.entries(mods ?? {})) {
      const where = `${field}.layers[${l}]`;
      if (!known.includes(path)) throw fieldError(`${where} module`, path, known);
      for (const key of ['experts', 'rank', 'topK'] as const) {
        const v = m?.[key];
        if (!Number.isInteger(v) || v < 1) throw fieldError(`${where}["${path}"].${key}`, v, 'an integer >= 1');
      }
    }
  });
}

/**
 * Which in-layer modules a plan adapts, and whether a plan fits a model. Targets follow PEFT:
 * a short name (`q_proj`), a dotted suffix (`attn.c_proj`) or `all-linear`; a recipe that names
 * none gets its model family's (src/model/families.ts defaultTargets).
 */
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError, showValue } from '../errors.ts';
import { defaultTargets, familyOf, moduleShapes, projectionPaths, targetMatches } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { listFields } from '../recipe/describe.ts';
import type { AdapterSection } from './recipe-adapter.ts';

/**
 * The targets a recipe's adapter.target_modules selects on this model: as written (a lone name is
 * a list of one), or the model family's adapter targets when the recipe names none.
 */
export function targetsOf(targets: AdapterSection['target_modules'], config: ModelConfig): readonly string[] | 'all-linear' {
  if (targets === undefined) return defaultTargets(config);
  return typeof targets === 'string' && targets !== 'all-linear' ? [targets] : (targets as readonly string[] | 'all-linear');
}

/**
 * The recipe with adapter.target_modules as it applies to `config` (the family's targets where it
 * names none), so what a run records and prints says which modules it adapted.
 */
export function withModelTargets<R extends { adapter: Pick<AdapterSection, 'target_modules'> }>(recipe: R, config: ModelConfig): R {
  if (recipe.adapter.target_modules !== undefined) return recipe;
  const adapter = { ...recipe.adapter, target_modules: [...defaultTargets(config)] };
  // in the schema's key order, so recipe.json reads as if the recipe had written the list
  const keys = listFields().filter((f) => /^adapter\.[^.]+$/.test(f.path)).map((f) => f.path.slice('adapter.'.length));
  const rank = (k: string) => (keys.includes(k) ? keys.indexOf(k) : keys.length);
  return { ...recipe, adapter: Object.fromEntries(Object.entries(adapter).sort(([a], [b]) => rank(a) - rank(b))) as typeof adapter };
}

/** In-layer paths (layer 0's order) selected by `targets`; every target must match something. */
export function resolveTargets(config: ModelConfig, targets: readonly string[] | 'all-linear', field = 'recipe.adapter.target_modules'): string[] {
  const paths = projectionPaths(config);
  if (targets === 'all-linear') return paths;
  if (!Array.isArray(targets) || targets.length === 0) {
    throw fieldError(field, targets, '"all-linear" or a non-empty list of module names');
  }
  const allowed = [...new Set(paths.flatMap((p) => [p.split('.').pop()!, p]))];
  const family = familyOf(config);
  for (const t of targets) {
    if (!paths.some((p) => targetMatches(t, p))) {
      throw fieldError(field, t, `${allowed.map((a) => showValue(a)).join(' | ')} (the ${family.title} family's linears; by default ${family.adapterTargets.join(', ')})`);
    }
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

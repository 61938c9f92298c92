/**
 * The plan a loaded recipe trains with: manual plans from adapter.plan_path, otherwise
 * planFromRecipe on the model's config, measuring (or reusing) the probe only when the method
 * needs scores other than depth. `hilo plan` and training both call this.
 */
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError } from '../errors.ts';
import { readModelConfig } from '../model/load.ts';
import type { ProbeResult } from '../probe/types.ts';
import type { Recipe } from '../recipe/schema.ts';
import { probeKindFor } from '../names.ts';
import { checkModelLoad } from './memory-for-recipe.ts';
import { planFromRecipe } from './methods.ts';
import { readPlan } from './plan-file.ts';

export async function planForRecipe(recipe: Recipe, opts: { backend?: string } = {}): Promise<{ plan: AdapterPlan; probe: ProbeResult | null }> {
  const config = readModelConfig(recipe.model.path);
  if (recipe.adapter.method === 'manual') {
    if (!recipe.adapter.plan_path) throw fieldError('recipe.adapter.plan_path', null, 'a plan.json path when adapter.method is "manual"');
    return { plan: readPlan(recipe.adapter.plan_path, config), probe: null };
  }
  const kind = probeKindFor(recipe.adapter);
  let probe: ProbeResult | null = null;
  if (kind && (kind !== 'depth' || recipe.adapter.probe_path)) {
    const { probeForRecipe } = await import('../probe/for-recipe.ts');
    probe = (await probeForRecipe(recipe, { ...opts, check: checkModelLoad })).result;
  }
  return { plan: planFromRecipe(recipe.adapter, config, probe ?? undefined), probe };
}

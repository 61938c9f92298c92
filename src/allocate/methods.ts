/**
 * Methods as named presets: each one says where expert counts and ranks come from and which knob
 * a budget turns. `planFromRecipe` is the one entry point training and the CLI use.
 *
 *   method       experts per layer                       rank per layer               budget knob
 *   lora         1                                        rank.r                       rank
 *   moe-uniform  experts.per_layer                        rank.r                       experts, then rank
 *   mola         experts.pattern (default "2468") by depth rank.r                      rank
 *   alphalora    proportional to alpha-hill scores        rank.r                       T, then rank
 *   hilo         pattern by score groups, or proportional rank.min..max by score group rank / T, then rank
 *                to the probe's scores
 *
 * "Proportional" is AlphaLoRA's n_l = round(T s_l^beta / sum s^beta), T = experts.total or 5 L.
 * With a budget, the knob is searched for the largest plan within it: T over L..64 L, the
 * per-layer count over 1..64, the top rank over 1..(smallest in/out of the adapted modules), with
 * the rank range scaled as r_min' = max(1, round(r_min k / r_max)), r_max' = k.
 */
import type { AdapterPlan } from '../adapters/plan.ts';
import { fieldError, HiloError } from '../errors.ts';
import { baseParams, moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { PROBE_KINDS, type ProbeResult } from '../probe/types.ts';
import { depthScores } from '../probe/depth.ts';
import { budgetTarget, largestWithin, type BudgetTarget } from './budget.ts';
import { proportionalExperts, topKPerLayer, uniformExperts } from './experts.ts';
import { depthGroups, parsePattern, scoreGroups, spreadOverLayers } from './groups.ts';
import { groupRanks, uniformRanks } from './ranks.ts';
import { METHODS, probeKindFor, type Method } from '../names.ts';
import type { AdapterSection } from './recipe-adapter.ts';
import { checkPlanFitsModel, resolveTargets, targetsOf } from './targets.ts';

const F = 'recipe.adapter';
const MAX_EXPERTS_PER_LAYER = 64;

/** Per-layer numbers before they are spread over the target modules. */
export interface LayerAllocation {
  experts: number[];
  ranks: number[];
}

/** Expand per-layer experts/ranks into an AdapterPlan over the resolved target modules. */
export function buildPlan(adapter: AdapterSection, config: ModelConfig, alloc: LayerAllocation): AdapterPlan {
  const targets = targetsOf(adapter.target_modules, config);
  const paths = resolveTargets(config, targets, `${F}.target_modules`);
  const topK = topKPerLayer(alloc.experts, adapter.top_k, `${F}.top_k`);
  return {
    method: adapter.method,
    targetModules: targets === 'all-linear' ? ['all-linear'] : [...targets],
    strategy: adapter.strategy,
    topP: adapter.top_p,
    alpha: adapter.alpha,
    scaling: adapter.scaling,
    fixedScale: adapter.fixed_scale,
    dropout: adapter.dropout,
    layers: alloc.experts.map((n, l) =>
      Object.fromEntries(paths.map((p) => [p, { experts: n, rank: alloc.ranks[l], topK: topK[l] }])),
    ),
  };
}

function scoresFor(adapter: AdapterSection, config: ModelConfig, probe?: ProbeResult): number[] {
  const kind = probeKindFor(adapter)!;
  if (!(PROBE_KINDS as readonly string[]).includes(kind)) throw fieldError(`${F}.probe`, kind, PROBE_KINDS);
  if (kind === 'depth' && !probe) return depthScores(config.numLayers);
  if (!probe) {
    throw new HiloError(`${F}.probe: method ${JSON.stringify(adapter.method)} needs ${JSON.stringify(kind)} scores; run \`hilo probe RECIPE\` first or set adapter.probe_path`);
  }
  if (probe.kind !== kind) {
    const why = adapter.method === 'alphalora' ? ' (alphalora always uses alpha-hill)' : '';
    throw fieldError(`${F}.probe`, probe.kind, `${JSON.stringify(kind)}${why}`);
  }
  if (probe.layers.length !== config.numLayers) {
    throw new HiloError(`probe.layers: got ${probe.layers.length} layer scores; allowed: exactly ${config.numLayers} (the model's num_hidden_layers); was the probe run on another model?`);
  }
  return probe.layers;
}

/** A recipe's size knobs; a budget overrides one of them. */
interface Knobs {
  /** Total experts for proportional allocation, or experts per layer for moe-uniform. */
  experts: number;
  /** Top rank: rank.r for uniform-rank methods, rank.max for hilo. */
  rankTop: number;
}

function allocate(adapter: AdapterSection, config: ModelConfig, scores: number[] | null, k: Knobs): LayerAllocation {
  const L = config.numLayers;
  const G = adapter.experts.groups;
  const uniform = () => uniformRanks(L, k.rankTop, `${F}.rank.r`);
  const pattern = adapter.experts.pattern == null ? null : parsePattern(String(adapter.experts.pattern), `${F}.experts.pattern`);
  switch (adapter.method as Method) {
    case 'lora':
      return { experts: uniformExperts(L, 1), ranks: uniform() };
    case 'moe-uniform':
      return { experts: uniformExperts(L, k.experts, `${F}.experts.per_layer`), ranks: uniform() };
    case 'mola': {
      const p = pattern ?? [2, 4, 6, 8];
      return { experts: spreadOverLayers(p, depthGroups(L, p.length)), ranks: uniform() };
    }
    case 'alphalora':
      return { experts: proportionalExperts(scores!, k.experts, adapter.experts.beta, `${F}.experts`), ranks: uniform() };
    case 'hilo': {
      const s = scores!;
      if (adapter.rank.min > adapter.rank.max) throw fieldError(`${F}.rank.min`, adapter.rank.min, `at most rank.max (${adapter.rank.max})`);
      const experts = pattern
        ? spreadOverLayers(pattern, scoreGroups(s, pattern.length))
        : proportionalExperts(s, k.experts, adapter.experts.beta, `${F}.experts`);
      const rMin = Math.max(1, Math.round((adapter.rank.min * k.rankTop) / adapter.rank.max));
      return { experts, ranks: groupRanks(scoreGroups(s, G), G, Math.min(rMin, k.rankTop), k.rankTop, `${F}.rank`) };
    }
    default:
      throw fieldError(`${F}.method`, adapter.method, METHODS);
  }
}

/** Does the method have a free expert count a budget can turn? */
function expertKnob(adapter: AdapterSection, L: number): { lo: number; hi: number } | null {
  if (adapter.method === 'moe-uniform') return { lo: 1, hi: MAX_EXPERTS_PER_LAYER };
  const proportional = adapter.method === 'alphalora' || (adapter.method === 'hilo' && adapter.experts.pattern == null);
  return proportional ? { lo: L, hi: MAX_EXPERTS_PER_LAYER * L } : null;
}

function solveBudget(adapter: AdapterSection, config: ModelConfig, scores: number[] | null, k: Knobs, target: BudgetTarget): AdapterPlan {
  const shapes = moduleShapes(config);
  const planAt = (knobs: Knobs) => buildPlan(adapter, config, allocate(adapter, config, scores, knobs));
  const range = expertKnob(adapter, config.numLayers);
  if (range) {
    try {
      return largestWithin(target, shapes, range.lo, range.hi, (e) => planAt({ ...k, experts: e }), 'unreachable').plan;
    } catch (e) {
      if (!(e instanceof HiloError)) throw e;
      k = { ...k, experts: range.lo }; // not even the fewest experts fit at these ranks: shrink ranks too
    }
  }
  const paths = buildPlan(adapter, config, { experts: [1], ranks: [1] }).layers[0];
  const rankCap = Math.min(...Object.keys(paths).map((p) => Math.min(shapes[0][p].in, shapes[0][p].out)));
  const fewest = adapter.method === 'lora' || adapter.method === 'moe-uniform' ? '1 expert per layer'
    : range ? `T = ${range.lo} experts, one per layer`
    : `experts.pattern "${adapter.experts.pattern ?? '2468'}"`;
  return largestWithin(target, shapes, 1, rankCap, (r) => planAt({ ...k, rankTop: r }), `${fewest} at rank 1`).plan;
}

/**
 * The plan a recipe's `adapter:` section asks for on this model. Methods that need scores take
 * them from `probe` (depth scores are computed from the config when no probe is given); `manual`
 * plans are read by the caller (readPlan) and checked with checkPlanFitsModel.
 */
export function planFromRecipe(adapter: AdapterSection, config: ModelConfig, probe?: ProbeResult): AdapterPlan {
  if (!(METHODS as readonly string[]).includes(adapter.method)) throw fieldError(`${F}.method`, adapter.method, METHODS);
  if (adapter.method === 'manual') {
    throw new HiloError(`${F}.method: "manual" plans come from ${F}.plan_path; read them with readPlan(path, config)`);
  }
  if (adapter.method === 'none') return { ...buildPlan(adapter, config, { experts: [], ranks: [] }), layers: Array.from({ length: config.numLayers }, () => ({})) };
  const scores = probeKindFor(adapter) ? scoresFor(adapter, config, probe) : null;
  const knobs: Knobs = {
    experts: adapter.method === 'moe-uniform' ? adapter.experts.per_layer : adapter.experts.total ?? 5 * config.numLayers,
    rankTop: adapter.method === 'hilo' ? adapter.rank.max : adapter.rank.r,
  };
  const plan = adapter.budget
    ? solveBudget(adapter, config, scores, knobs, budgetTarget(adapter.budget, baseParams(config).total, `${F}.budget`))
    : buildPlan(adapter, config, allocate(adapter, config, scores, knobs));
  checkPlanFitsModel(plan, config);
  return plan;
}

/**
 * The mixture-of-LoRA-experts linear layer. It wraps a frozen linear (PEFT style: the base is
 * kept as `base`, unchanged) and adds
 *
 *     y = base(x) + Σ_e g_e(x) · scale · B_e A_e dropout(x)
 *
 * with g the router's gates (renormalised top-k / top-p probabilities, or all probabilities
 * for `dense`). One expert is plain LoRA: no router, g = 1.
 *
 * All experts of a module run as one batched product (the `dense` compute mode of ref_moe.py):
 * the A's side by side as one [in, E·r] kernel, the gates broadcast over each expert's r columns,
 * then one [E·r, out] product. For small E this beats gathering tokens per expert on CPU/wasm
 * (scripts/bench-moe.ts measures both). Kernels are stored [in, ·] like FrozenLinear's so every
 * forward product is a plain matMul; the transposes live only in the file format (io.ts).
 * The experts, their router and its losses are one op (src/ops/routed-experts.ts), which a
 * backend may run as fused kernels, the frozen base's product included (`withBase`).
 */
import * as tf from '@tensorflow/tfjs';
import { FrozenLinearLayer } from '../model/linear.ts';
import type { ForwardContext, LinearModule } from '../model/types.ts';
import { routedExpertsOp, type MixtureSpec, type MixtureWeights, type RoutedExpertsImpl, type RoutedOutput } from '../ops/routed-experts.ts';
import { addSameShape, dropout as lightDropout } from '../ops/tape-light.ts';
import { selectionFractions } from './routing.ts';

export type { MixtureSpec, MixtureWeights, RouterLossSpec } from '../ops/routed-experts.ts';

/**
 * The adapter delta for rows x [N, in]. `xd` is what the experts see (dropout(x) when training,
 * else x); the router always sees x, as in MoLA/ref_moe.py. `experts`: which implementation
 * of the op runs (the active backend's by default).
 */
export function mixtureDelta(x: tf.Tensor2D, xd: tf.Tensor2D, w: MixtureWeights, spec: MixtureSpec, experts: RoutedExpertsImpl = routedExpertsOp.impl()): RoutedOutput {
  return experts(x, xd, w, spec, null, null);
}

export interface MixtureOptions {
  /** Dropout rate on the experts' input while training. */
  dropout: number;
  /** Weight of the balance loss pushed onto ctx.auxLosses (0: not computed). */
  balanceCoef: number;
  /** Weight of the router z-loss (0: not computed). */
  zLossCoef: number;
  /** Which implementation of the routed-experts op runs (tests); default the active backend's. */
  experts?: RoutedExpertsImpl;
}

/** What one forward's tidy hands out: the output and, with a context, the router's loss and usage. */
interface ForwardParts extends tf.TensorContainerObject {
  y: tf.Tensor2D;
  aux?: tf.Scalar;
  usage?: tf.Tensor1D;
}

/** A frozen linear plus its LoRA experts and router; drops in for the base in CausalLM.modules. */
export class MixtureLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Used for dropout when the context carries no seed source, so runs stay reproducible. */
  private fallbackSeed: number;

  constructor(
    /** HF module path, e.g. model.layers.0.self_attn.q_proj; keys ctx.routerStats. */
    readonly name: string,
    readonly base: LinearModule,
    readonly spec: MixtureSpec,
    readonly weights: { loraA: tf.Variable<tf.Rank.R2>; loraB: tf.Variable<tf.Rank.R2>; router: tf.Variable<tf.Rank.R2> | null },
    readonly options: MixtureOptions,
    seed = 0,
  ) {
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.fallbackSeed = seed;
  }

  /** The trainable variables: A, B and (more than one expert) the router. */
  variables(): tf.Variable[] {
    const w = this.weights;
    return w.router ? [w.loraA, w.loraB, w.router] : [w.loraA, w.loraB];
  }

  forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D {
    const N = x.shape[0];
    const mask = ctx?.tokenMask;
    if (mask && mask.shape[0] !== N) {
      throw new Error(`${this.name}: ctx.tokenMask has ${mask.shape[0]} entries but the input has ${N} rows`);
    }
    const { dropout, balanceCoef, zLossCoef } = this.options;
    const experts = this.options.experts ?? routedExpertsOp.impl();
    const seed = ctx?.training && dropout > 0 ? (ctx.dropoutSeed ? ctx.dropoutSeed.next() : this.fallbackSeed++) : 0;
    const out = tf.tidy((): ForwardParts => {
      const xd = ctx?.training && dropout > 0 ? lightDropout(x, dropout, seed) : x;
      // A frozen base's product can go into the fused kernels (withBase); bias added after.
      // (held outside the engine, the base has no kernel tensor: its own op runs, and the delta is added)
      const frozen = this.base instanceof FrozenLinearLayer && this.base.kernel && !this.base.kernel.trainable ? this.base : null;
      const losses = ctx?.training && (balanceCoef > 0 || zLossCoef > 0) ? { balanceCoef, zLossCoef, tokenMask: mask, usage: !!ctx.routerStats } : null;
      const { delta, logits, mask: selected, withBase, aux, usage } = experts(x, xd, this.weights, this.spec, frozen ? (frozen.kernel! as tf.Tensor2D) : null, losses);
      const y = (withBase ? (frozen!.bias ? tf.add(delta, frozen!.bias) : delta) : addSameShape(this.base.forward(x, ctx), delta)) as tf.Tensor2D;
      const parts: ForwardParts = { y };
      if (losses) {
        // the op hands out the selection fractions with the losses (off the gradient tape): the usage log
        if (aux) parts.aux = aux;
        if (usage) parts.usage = usage;
        return parts;
      }
      // router losses are training losses: eval contexts get none, only the usage log
      if (ctx?.routerStats && selected) parts.usage = selectionFractions(selected, mask);
      return parts;
    });
    // Both are kept past the model's own tidy; whoever made the context disposes them
    // (tf.dispose(ctx.auxLosses) once the loss is taken, and the routerStats values).
    if (out.aux) ctx!.auxLosses.push(tf.keep(out.aux));
    if (out.usage) {
      ctx!.routerStats!.get(this.name)?.dispose();
      ctx!.routerStats!.set(this.name, tf.keep(out.usage));
    }
    return out.y;
  }
}

/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW semantics), which
 * tfjs lacks. State lives in non-trainable variables so a step allocates nothing that survives it.
 *   p <- p - lr*wd*p;  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
 *   p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 */
import * as tf from '@tensorflow/tfjs';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  /** name -> first/second moments, in the variables' shapes. */
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(private readonly params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const [name, p] of params) {
      // tfjs variable names are global to the engine: leave them unnamed, keyed by our map instead.
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    }
  }

  /** One update with gradients by parameter name (missing gradients count as zero). */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (!g) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const m1 = m.mul(this.beta1).add(g.mul(1 - this.beta1));
        const v1 = v.mul(this.beta2).add(g.square().mul(1 - this.beta2));
        m.assign(m1);
        v.assign(v1);
        const decayed = this.weightDecay > 0 ? p.mul(1 - lr * this.weightDecay) : p;
        const update = m1.div(bc1).div(v1.div(bc2).sqrt().add(this.eps)).mul(lr);
        p.assign(decayed.sub(update));
      }
    });
  }

  async getState(): Promise<AdamWState> {
    const read = async (vars: Map<string, tf.Variable>) =>
      new Map(await Promise.all([...vars].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
    return { step: this.step, m: await read(this.m), v: await read(this.v) };
  }

  setState(s: AdamWState): void {
    this.step = s.step;
    for (const [which, vars] of [[s.m, this.m], [s.v, this.v]] as const) {
      for (const [name, variable] of vars) {
        const data = which.get(name);
        if (!data) throw new Error(`optimizer state has no entry for ${name}`);
        tf.tidy(() => variable.assign(tf.tensor(data, variable.shape)));
      }
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW semantics), which
 * tfjs lacks.
 *   p <- p - lr*wd*p;  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
 *   p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *
 * Where the update runs (`placement`, src/ops/host-values.ts):
 *  - 'device': the adamw op (src/ops/adamw.ts) per parameter, moments in non-trainable
 *    variables (a step allocates nothing that survives it). Where the backend registers a fused
 *    version (webgpu; wasm with its SIMD module, which writes a parameter and its moments in
 *    place where nothing else shares their data) it is one kernel or none instead of ~14; that is
 *    the default wherever one is registered.
 *  - 'host': one loop per parameter over Float32Arrays (adamwUpdate), moments in host memory.
 *    The default for wasm without the SIMD module and for cpu, whose tensors are host memory
 *    already: the unfused device form is ~14 kernels a parameter, and a MoE model has ~100
 *    small parameters, so ~1,400 kernels of fixed overhead a step, for a few hundred
 *    thousand multiply-adds (like torch's fused/foreach AdamW).
 */
import * as tf from '@tensorflow/tfjs';
import { adamwOp, stepConstants, type AdamWHyper } from '../ops/adamw.ts';
import { defaultPlacement, type Placement } from '../ops/host-values.ts';

export { stepConstants, type AdamWHyper } from '../ops/adamw.ts';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Where the update runs; default at construction: 'device' where the backend registers its adamw op, else defaultPlacement(). */
  placement?: Placement;
}

/**
 * One AdamW update in place: p (the parameter), m and v (its moments) from g (its gradient),
 * in torch.optim.AdamW's order: p *= 1 - lr·wd; m, v updated; p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps).
 */
export function adamwUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, h: AdamWHyper): void {
  const { beta1: b1, beta2: b2, eps } = h;
  const { decay, stepSize, sqrtBc2 } = stepConstants(h);
  const scale = h.gradScale ?? 1;
  for (let i = 0; i < p.length; i++) {
    const gi = scale === 1 ? g[i] : Math.fround(g[i] * scale); // rounded as a scaled float32 gradient would be
    const mi = (m[i] = b1 * m[i] + (1 - b1) * gi);
    const vi = (v[i] = b2 * v[i] + (1 - b2) * gi * gi);
    p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
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
  readonly placement: Placement;
  step = 0;
  /** Moments, device placement. */
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Moments, host placement. */
  private readonly mHost = new Map<string, Float32Array>();
  private readonly vHost = new Map<string, Float32Array>();

  constructor(private readonly params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.placement = opts.placement ?? (adamwOp.registered() ? 'device' : defaultPlacement());
    for (const [name, p] of params) {
      if (this.placement === 'host') {
        this.mHost.set(name, new Float32Array(p.size));
        this.vHost.set(name, new Float32Array(p.size));
        continue;
      }
      // tfjs variable names are global to the engine: leave them unnamed, keyed by our map instead.
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    }
  }

  /**
   * One update with gradients by parameter name (missing gradients count as zero), each first
   * multiplied by `gradScale` (a clip coefficient from clipFactor; 1 leaves them as they are).
   */
  apply(grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    this.step += 1;
    const h: AdamWHyper = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.step, gradScale };
    if (this.placement === 'host') {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (!g) continue;
        // A copy: the cpu backend's dataSync hands out the tensor's own array. (slice, not
        // Float32Array.from, which goes element by element.)
        const next = (p.dataSync() as Float32Array).slice();
        adamwUpdate(next, g.dataSync() as Float32Array, this.mHost.get(name)!, this.vHost.get(name)!, h);
        tf.tidy(() => p.assign(tf.tensor(next, p.shape)));
      }
      return;
    }
    const update = adamwOp.impl();
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (g) update(p, g, this.m.get(name)!, this.v.get(name)!, h);
      }
    });
  }

  /** One variable's two moments as they are (host placement: not copied; read them before the next step). */
  async moments(name: string): Promise<{ m: Float32Array; v: Float32Array }> {
    if (this.placement === 'host') return { m: this.mHost.get(name)!, v: this.vHost.get(name)! };
    return { m: (await this.m.get(name)!.data()) as Float32Array, v: (await this.v.get(name)!.data()) as Float32Array };
  }

  /** The step count (AdamW's bias correction). */
  get steps(): number {
    return this.step;
  }

  async getState(): Promise<AdamWState> {
    if (this.placement === 'host') {
      const copy = (vars: Map<string, Float32Array>) => new Map([...vars].map(([k, a]) => [k, a.slice()] as const));
      return { step: this.step, m: copy(this.mHost), v: copy(this.vHost) };
    }
    const read = async (vars: Map<string, tf.Variable>) =>
      new Map(await Promise.all([...vars].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
    return { step: this.step, m: await read(this.m), v: await read(this.v) };
  }

  setState(s: AdamWState): void {
    this.step = s.step;
    if (this.placement === 'host') {
      for (const [which, arrays] of [[s.m, this.mHost], [s.v, this.vHost]] as const) {
        for (const [name, a] of arrays) {
          const data = which.get(name);
          if (!data) throw new Error(`optimizer state has no entry for ${name}`);
          if (data.length !== a.length) throw new Error(`optimizer state for ${name} has ${data.length} values, the parameter ${a.length}`);
          a.set(data);
        }
      }
      return;
    }
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

/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW semantics), which
 * tfjs lacks.
 *   p <- p - lr*wd*p;  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
 *   p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *
 * Where the update runs (`placement`, src/backend/placement.ts):
 *  - 'device': tfjs kernels, moments in non-trainable variables (a step allocates nothing that
 *    survives it). Where the backend has hilo's fused kernel (`HiloAdamW`: webgpu-adamw.ts on
 *    webgpu, wasm-simd.ts on wasm) a parameter's update is that one kernel instead of ~14; that
 *    is the default wherever it exists.
 *  - 'host': one loop per parameter over Float32Arrays (adamwUpdate), moments in host memory.
 *    The default for wasm without the SIMD module and for cpu, whose tensors are host memory
 *    already: the unfused device form is ~14 kernels a parameter, and a MoE model has ~100
 *    small parameters, so ~1,400 kernels of ~10 us overhead each a step, for a few hundred
 *    thousand multiply-adds (like torch's fused/foreach AdamW). The JS loop costs ~13 ns a value
 *    (in doubles); the SIMD kernel ~1, which matters with data-parallel replicas, where the
 *    update runs on one thread while the others wait.
 * On wasm, where a parameter and its moments may be written in place (writableInPlace: nothing
 * else shares their data and the products keep nothing by data id), the SIMD module's update
 * writes them directly: no kernel, no new tensors, no assigns (stories260K's 105 MoE
 * parameters: 0.87 -> 0.32 ms alone, ~1.2 -> 0.8 ms inside a data-parallel step).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { defaultPlacement, writableInPlace, type Placement } from '../backend/placement.ts';
import { adamwInPlace } from '../backend/wasm-simd.ts';
import { ADAMW_KERNEL, type AdamWKernelAttrs } from '../backend/webgpu-adamw.ts';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Where the update runs; default at construction: 'device' where the backend has the fused kernel, else defaultPlacement(). */
  placement?: Placement;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step being taken, from 1 (bias corrections). */
  step: number;
  /** Multiplies the gradient first (a clip coefficient, clipFactor); default 1. */
  gradScale?: number;
}

/** A step's constants, shared by the host loop and the fused webgpu kernel: 1 − lr·wd, lr/bc1, sqrt(bc2). */
export function stepConstants(h: AdamWHyper): { decay: number; stepSize: number; sqrtBc2: number } {
  return { decay: 1 - h.lr * h.weightDecay, stepSize: h.lr / (1 - h.beta1 ** h.step), sqrtBc2: Math.sqrt(1 - h.beta2 ** h.step) };
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
    this.placement = opts.placement ?? (tf.getKernel(ADAMW_KERNEL, tf.getBackend()) ? 'device' : defaultPlacement());
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
        // Float32Array.from: the latter goes element by element, 2.7 ms against 0.4 for 627k.)
        const next = (p.dataSync() as Float32Array).slice();
        adamwUpdate(next, g.dataSync() as Float32Array, this.mHost.get(name)!, this.vHost.get(name)!, h);
        tf.tidy(() => p.assign(tf.tensor(next, p.shape)));
      }
      return;
    }
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    // webgpu and wasm: one fused kernel a parameter (webgpu-adamw.ts, wasm-simd.ts); else tfjs kernels
    const fused: AdamWKernelAttrs | null = tf.getKernel(ADAMW_KERNEL, tf.getBackend())
      ? { beta1: this.beta1, beta2: this.beta2, eps: this.eps, gradScale, ...stepConstants(h) }
      : null;
    const wasm = fused && tf.getBackend() === 'wasm' ? (tf.backend() as unknown as BackendWasm) : null;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const raw = grads.get(name);
        if (!raw) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        if (wasm && raw.dtype === 'float32' && [p, m, v].every(writableInPlace) && adamwInPlace(wasm, p, raw, m, v, fused!)) continue;
        if (fused) {
          const [p1, m1, v1] = tf.engine().runKernel(ADAMW_KERNEL, { p, g: raw, m, v }, fused as unknown as tf.NamedAttrMap) as tf.Tensor[];
          m.assign(m1);
          v.assign(v1);
          p.assign(p1);
          continue;
        }
        const g = gradScale === 1 ? raw : raw.mul(gradScale);
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

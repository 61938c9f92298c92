/**
 * One AdamW update of one parameter on the device (torch.optim.AdamW's order and arithmetic),
 * named once with its reference in tfjs ops, ~14 kernels; backends register a fused kernel
 * (webgpu: src/backend/webgpu-adamw.ts; wasm: the SIMD module, written in place where it may
 * be, src/backend/wasm-ops.ts). src/train/adamw.ts holds the optimizer and its host form.
 *   p <- p (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g²
 *   p <- p - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

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

/** A step's constants, shared by the host loop and the fused kernels: 1 − lr·wd, lr/bc1, sqrt(bc2). */
export function stepConstants(h: AdamWHyper): { decay: number; stepSize: number; sqrtBc2: number } {
  return { decay: 1 - h.lr * h.weightDecay, stepSize: h.lr / (1 - h.beta1 ** h.step), sqrtBc2: Math.sqrt(1 - h.beta2 ** h.step) };
}

/** Update p and its moments m, v (assigned in place of their values) from the gradient g. Call inside a tidy. */
export type AdamWImpl = (p: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, h: AdamWHyper) => void;

export const referenceAdamW: AdamWImpl = (p, raw, m, v, h) => {
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  const scale = h.gradScale ?? 1;
  const g = scale === 1 ? raw : raw.mul(scale);
  const m1 = m.mul(h.beta1).add(g.mul(1 - h.beta1));
  const v1 = v.mul(h.beta2).add(g.square().mul(1 - h.beta2));
  m.assign(m1);
  v.assign(v1);
  const decayed = h.weightDecay > 0 ? p.mul(1 - h.lr * h.weightDecay) : p;
  const update = m1.div(bc1).div(v1.div(bc2).sqrt().add(h.eps)).mul(h.lr);
  p.assign(decayed.sub(update));
};

export const adamwOp = defineOp<AdamWImpl>('adamw', referenceAdamW);

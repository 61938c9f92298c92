/**
 * A router's logits l = x·Wr [N, E] for rows x [N, in] and a router Wr [in, E], with dx = dl·Wrᵀ
 * and dWr = xᵀ·dl. E is a handful of experts: a narrow product, which a general matMul does
 * poorly (OpenBLAS packs all of x for each), so the wasm SIMD module registers one pass over x
 * each way (src/backend/wasm-simd.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { defineOp } from './registry.ts';

/** x [N, in], Wr [in, E] -> logits [N, E], differentiable in both. */
export type RouterLogitsImpl = (x: tf.Tensor2D, router: tf.Tensor2D) => tf.Tensor2D;

/** Plain tfjs ops: the definition every implementation is tested against. */
export const referenceRouterLogits: RouterLogitsImpl = (x, router) => tf.matMul(x, router) as tf.Tensor2D; // [N, in] x [in, E]

/** The op: backends register theirs with `routerLogitsOp.register(backend, impl)`. */
export const routerLogitsOp = defineOp<RouterLogitsImpl>('router-logits', referenceRouterLogits);

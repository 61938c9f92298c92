/**
 * The attention core (src/ops/attention.ts) on webgpu as tiled GPU programs in the manner of
 * FlashAttention-2: the [Tq, Tk] scores and probabilities are never stored, forward or backward.
 * The reference runs several tfjs kernels each way over [B, H, Tq, Tk] tensors, which at
 * Llama-2-7B's 8 x 512 tokens and 32 heads are 256 MiB each, twice a lavapipe storage binding.
 *
 *   forward   one workgroup per 64 query rows of one (batch, kv head): the rows are the group's
 *             query heads stacked, row r = t·G + g, so the K/V tiles a workgroup stages in shared
 *             memory serve every query head of the group and K/V are never repeated. An online
 *             softmax over key tiles: the running max m, l = Σ exp(x − m) and Σ p·v rescaled once a
 *             tile. Writes Y = out [B·Tq, H·d] followed by each row's (m, 1/l) [B·Tq·H, 2]: a program
 *             has one output, so the out the op returns is a slice of Y, and the backward reads the
 *             statistics and O from Y. (m, 1/l) rather than the logsumexp m + log l: for a row whose
 *             scores are all ≈ −1e9 that sum rounds to m in f32, and exp(x − lse) would be 1, not 1/Tk.
 *   backward  D = rowsum(dO ⊙ O) per row (one thread a row), then with P = exp(x − m)/l, x = scale·q·k + mask,
 *             recomputed tile by tile and dS = P ⊙ (dP − D), dP = dO·vᵀ:
 *               dq = scale · dS·K     one thread per query row, K/V tiles shared (as forward)
 *               dk = scale · dSᵀ·Q    one thread per key row, Q/dO tiles of the group's query
 *               dv = Pᵀ·dO            rows shared, summed over the group's heads as they come
 *             dk and dv are separate programs (dv needs no dP): a packed [dk; dv] output would be
 *             twice k's size, at 7B the whole 128 MiB binding.
 * The mask is read as given ([B or 1, 1, Tq, Tk], additive) and gets no gradient. A row whose keys
 * are all masked by a large finite value (the model's −1e9) attends evenly, as the reference's
 * softmax does; one whose keys are all −inf gives zeros where the reference gives NaN.
 * Arithmetic is f32 throughout; the programs are in webgpu-attention-programs.ts. `probs` stays
 * the reference's: only tests call it.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { attentionOp, referenceAttention, referenceProbs, type AttentionCore } from '../ops/attention.ts';
import { deltaProgram, dqProgram, forwardProgram, keyRowsProgram, MAX_HEAD_DIM, uniformData, type Dims } from './webgpu-attention-programs.ts';
import { i32, type WebGPUUtil } from './webgpu-programs.ts';

export const ATTENTION = 'HiloAttention';
export const ATTENTION_GRAD = 'HiloAttentionGrad';

/** The shapes of a call, or null where the programs do not take it (the reference runs). */
function dimsOf(q: TF.TensorInfo, k: TF.TensorInfo, v: TF.TensorInfo, mask: TF.TensorInfo): Dims | null {
  if ([q, k, v, mask].some((t) => t.dtype !== 'float32' || t.shape.length !== 4)) return null;
  const [b, tq, h, d] = q.shape;
  const [kb, tk, kv, kd] = k.shape;
  const [mb, m1, mq, mk] = mask.shape;
  const fits = kb === b && kd === d && v.shape.every((x, i) => x === k.shape[i]) && h % kv === 0 && d <= MAX_HEAD_DIM &&
    (mb === 1 || mb === b) && m1 === 1 && mq === tq && mk === tk;
  return fits ? { b, tq, tk, h, kv, d, maskB: mb } : null;
}

type Inputs = Record<string, TF.TensorInfo>;

function dimsOrThrow({ q, k, v, mask }: Inputs, kernel: string): Dims {
  const s = dimsOf(q, k, v, mask);
  if (!s) {
    throw new Error(`${kernel}: takes float32 q [B, Tq, H, d<=${MAX_HEAD_DIM}], k, v [B, Tk, KV, d] (KV dividing H), ` +
      `mask [B or 1, 1, Tq, Tk]; got q [${q.shape}], k [${k.shape}], v [${v.shape}], mask [${mask.shape}]`);
  }
  return s;
}

let installed = false;

/**
 * Register HiloAttention {q, k, v, mask} -> Y (out, then each row's m and 1/l) and HiloAttentionGrad
 * {dy, q, k, v, mask, y} -> [dq, dk, dv] for webgpu, and the attention op's webgpu version.
 */
export function installAttention(tf: typeof TF, util: WebGPUUtil): void {
  if (installed) return;
  tf.registerKernel({
    kernelName: ATTENTION,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const s = dimsOrThrow(inputs as Inputs, ATTENTION);
      const { q, k, v, mask } = inputs as Inputs;
      return (backend as WebGPUBackend).runWebGPUProgram(forwardProgram(s), [q, k, v, mask], 'float32', uniformData(s, attrs!.scale as number));
    },
  });
  tf.registerKernel({
    kernelName: ATTENTION_GRAD,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const s = dimsOrThrow(inputs as Inputs, ATTENTION_GRAD);
      const gpu = backend as WebGPUBackend;
      const { dy, q, k, v, mask, y } = inputs as Inputs;
      const u = uniformData(s, attrs!.scale as number);
      const rows = s.b * s.tq * s.h;
      const delta = gpu.runWebGPUProgram(deltaProgram(util, rows), [dy, y], 'float32', [i32(rows), i32(s.d)]);
      const dq = gpu.runWebGPUProgram(dqProgram(s), [q, k, v, mask, y, delta, dy], 'float32', u);
      const dk = gpu.runWebGPUProgram(keyRowsProgram(s, true), [q, k, v, mask, y, delta, dy], 'float32', u);
      const dv = gpu.runWebGPUProgram(keyRowsProgram(s, false), [q, k, mask, y, dy], 'float32', u);
      gpu.disposeData(delta.dataId);
      return [dq, dk, dv];
    },
  });
  attentionOp.register('webgpu', { attend: fusedAttention(tf), probs: referenceProbs });
  installed = true;
}

/** The op's core as HiloAttention forward and HiloAttentionGrad backward; the reference where they do not fit. */
function fusedAttention(tf: typeof TF): AttentionCore {
  return (q, k, v, mask, scale) => {
    const s = dimsOf(q, k, v, mask);
    if (!s) return referenceAttention.attend(q, k, v, mask, scale);
    const n = s.b * s.tq;
    const op = tf.customGrad((...args) => {
      const [qs, ks, vs] = args.slice(0, 3) as TF.Tensor4D[];
      const y = tf.engine().runKernel(ATTENTION, { q: qs, k: ks, v: vs, mask }, { scale }) as TF.Tensor1D; // [N·H·d + 2·N·H]
      // the mask is saved too: a backward that frees as it goes may have dropped the caller's
      (args[3] as TF.GradSaveFunc)([qs, ks, vs, mask, y]);
      return {
        value: tf.slice(y, 0, n * s.h * s.d).reshape([n, s.h * s.d]) as TF.Tensor2D, // [B·Tq, H·d]
        gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
          const [qq, kk, vv, m, yy] = saved;
          return tf.engine().runKernel(ATTENTION_GRAD, { dy, q: qq, k: kk, v: vv, mask: m, y: yy }, { scale }) as TF.Tensor[];
        },
      };
    });
    return op(q, k, v) as TF.Tensor2D;
  };
}

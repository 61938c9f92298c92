/**
 * How to compute a module's experts: times forward and forward+backward (grads wrt x, A, B and
 * the router) of one adapted projection on realistic shapes, for the choices the mixture layer
 * could make. The layer uses `dense` (src/adapters/mixture.ts); this script is why.
 *
 *   npx tsx scripts/bench-moe.ts [--backend wasm|cpu|...] [--reps 5] [--n 1024 --in 256 --out 688 --experts 4 --rank 8 --topk 2] [--json]
 *
 * Variants (all give the same output; the script checks that against `dense`):
 *   base only         the frozen x·W0, for scale
 *   lora              one expert, no router (plain LoRA)
 *   dense             hilo: x·A_all [N, E·r], gates broadcast over each expert's r columns, one [E·r, out] product
 *   dense + losses    the whole MixtureLinear as training runs it (balance loss, z-loss, usage on the context)
 *   dense, tile gate  the same with the gate expanded by a 0/1 matMul [N,E]·[E,E·r] instead of a broadcast
 *   per-expert loop   Σ_e g_e ⊙ (x·A_e)·B_e: E small products per matrix instead of one
 *   per-expert vars   dense, but A and B kept as E separate variables concatenated every forward
 *   gather            Mixtral/MoLA: per expert, gather its tokens, run B_e(A_e x), weight, scatter-add back;
 *                     needs the selection on the host (a dataSync per module: not allowed in hilo's forward)
 */
import * as tf from '@tensorflow/tfjs';
import { MixtureLinear, mixtureDelta, type MixtureSpec } from '../src/adapters/mixture.ts';
import { routeTokens } from '../src/adapters/routing.ts';
import { initBackend } from '../src/backend/index.ts';
import type { ForwardContext } from '../src/model/types.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const backendArg = process.argv.includes('--backend') ? process.argv[process.argv.indexOf('--backend') + 1] : 'wasm';
const N = arg('n', 1024);
const IN = arg('in', 256);
const OUT = arg('out', 688);
const E = arg('experts', 4);
const R = arg('rank', 8);
const K = arg('topk', 2);
const REPS = arg('reps', 5);
const SCALE = 2;

interface Weights {
  x: tf.Variable;
  W0: tf.Tensor2D;
  A: tf.Variable; // [in, E·r]
  B: tf.Variable; // [E·r, out]
  Rt: tf.Variable; // [in, E]
  As: tf.Variable[]; // E × [in, r]
  Bs: tf.Variable[]; // E × [r, out]
  tokenMask: tf.Tensor1D; // [N], the last eighth is padding
}

type Variant = { name: string; vars: (w: Weights) => tf.Variable[]; f: (w: Weights) => tf.Tensor2D };

const spec: MixtureSpec = { experts: E, rank: R, scale: SCALE, routing: { strategy: 'topk', topK: K, topP: 0 } };
const base = (w: Weights): tf.Tensor2D => tf.matMul(w.x as tf.Tensor2D, w.W0); // [N, in] x [in, out]
const gatesOf = (w: Weights) => routeTokens(tf.matMul(w.x as tf.Tensor2D, w.Rt as tf.Tensor2D) as tf.Tensor2D, spec.routing).gates; // [N, E]

const VARIANTS: Variant[] = [
  { name: 'base only', vars: (w) => [w.x], f: base },
  {
    name: 'lora (1 expert, r)', vars: (w) => [w.x, w.As[0], w.Bs[0]],
    f: (w) => tf.add(base(w), tf.matMul(tf.mul(tf.matMul(w.x as tf.Tensor2D, w.As[0] as tf.Tensor2D), SCALE), w.Bs[0] as tf.Tensor2D)),
  },
  {
    name: 'dense (hilo)', vars: (w) => [w.x, w.A, w.B, w.Rt],
    f: (w) => tf.add(base(w), mixtureDelta(w.x as tf.Tensor2D, w.x as tf.Tensor2D, { loraA: w.A as tf.Tensor2D, loraB: w.B as tf.Tensor2D, router: w.Rt as tf.Tensor2D }, spec).delta),
  },
  {
    name: 'dense + balance, z-loss, usage', vars: (w) => [w.x, w.A, w.B, w.Rt],
    f: (w) => {
      // the whole layer as training runs it: router losses pushed on the context, usage recorded
      const layer = new MixtureLinear('bench', { inFeatures: IN, outFeatures: OUT, forward: (x) => tf.matMul(x, w.W0) }, spec,
        { loraA: w.A as tf.Variable<tf.Rank.R2>, loraB: w.B as tf.Variable<tf.Rank.R2>, router: w.Rt as tf.Variable<tf.Rank.R2> },
        { dropout: 0, balanceCoef: 0.01, zLossCoef: 0.001 });
      const ctx: ForwardContext = { training: true, auxLosses: [], tokenMask: w.tokenMask, routerStats: new Map() };
      const y = layer.forward(w.x as tf.Tensor2D, ctx);
      // fold the losses into the output so the backward pass runs through them too
      const out = tf.add(y, tf.addN(ctx.auxLosses)) as tf.Tensor2D;
      tf.dispose([...ctx.auxLosses, ...ctx.routerStats!.values()]);
      return out;
    },
  },
  {
    name: 'dense, tile gate', vars: (w) => [w.x, w.A, w.B, w.Rt],
    f: (w) => {
      const expand = tf.tidy(() => tf.reshape(tf.tile(tf.expandDims(tf.eye(E), 2), [1, 1, R]), [E, E * R])); // [E, E·r] 0/1
      const g = tf.matMul(tf.mul(gatesOf(w), SCALE), expand); // [N, E] x [E, E·r]
      return tf.add(base(w), tf.matMul(tf.mul(tf.matMul(w.x as tf.Tensor2D, w.A as tf.Tensor2D), g), w.B as tf.Tensor2D));
    },
  },
  {
    name: 'per-expert loop', vars: (w) => [w.x, ...w.As, ...w.Bs, w.Rt],
    f: (w) => {
      const g = tf.mul(gatesOf(w), SCALE);
      const cols = tf.split(g, E, 1); // E × [N, 1]
      const parts = w.As.map((a, e) => tf.mul(tf.matMul(tf.matMul(w.x as tf.Tensor2D, a as tf.Tensor2D), w.Bs[e] as tf.Tensor2D), cols[e]));
      return tf.add(base(w), tf.addN(parts)) as tf.Tensor2D;
    },
  },
  {
    name: 'per-expert vars, concat', vars: (w) => [w.x, ...w.As, ...w.Bs, w.Rt],
    f: (w) => tf.add(base(w), mixtureDelta(w.x as tf.Tensor2D, w.x as tf.Tensor2D,
      { loraA: tf.concat(w.As, 1) as tf.Tensor2D, loraB: tf.concat(w.Bs, 0) as tf.Tensor2D, router: w.Rt as tf.Tensor2D }, spec).delta),
  },
  {
    name: 'gather (host selection)', vars: (w) => [w.x, ...w.As, ...w.Bs, w.Rt],
    f: (w) => {
      const g = tf.mul(gatesOf(w), SCALE); // [N, E], zero outside the top-k
      const gv = g.dataSync(); // the selection must be known on the host to size the gathers
      const ys: tf.Tensor2D[] = [];
      const tokens: number[] = [];
      for (let e = 0; e < E; e++) {
        const idx: number[] = [];
        for (let n = 0; n < N; n++) if (gv[n * E + e] !== 0) idx.push(n);
        if (idx.length === 0) continue;
        const ti = tf.tensor1d(idx, 'int32');
        const xe = tf.gather(w.x, ti); // [n_e, in]
        const we = tf.gather(tf.slice(g, [0, e], [N, 1]), ti); // [n_e, 1]
        ys.push(tf.mul(tf.matMul(tf.matMul(xe as tf.Tensor2D, w.As[e] as tf.Tensor2D), w.Bs[e] as tf.Tensor2D), we));
        tokens.push(...idx);
      }
      const delta = tf.unsortedSegmentSum(tf.concat(ys, 0), tf.tensor1d(tokens, 'int32'), N) as tf.Tensor2D; // [N·k, out] -> [N, out]
      return tf.add(base(w), delta);
    },
  },
];

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

/** One forward and one forward+backward of `v`, in ms, and its output. */
async function timeOnce(v: Variant, w: Weights): Promise<{ fwd: number; step: number; out: Float32Array }> {
  let t0 = performance.now();
  const y = tf.tidy(() => v.f(w));
  const out = (await y.data()) as Float32Array;
  y.dispose();
  const fwd = performance.now() - t0;
  t0 = performance.now();
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(v.f(w))) as tf.Scalar, v.vars(w));
  await Promise.all(Object.values(grads).map((g) => g.data()));
  tf.dispose([value, ...Object.values(grads)]);
  return { fwd, step: performance.now() - t0, out };
}

async function main(): Promise<void> {
  const info = await initBackend(backendArg);
  const rnd = (shape: number[], s: number, seed: number) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, s, 'float32', seed)));
  const A = rnd([IN, E * R], 1 / Math.sqrt(IN), 2);
  const B = rnd([E * R, OUT], 0.05, 3);
  const w: Weights = {
    x: rnd([N, IN], 1, 1), W0: tf.randomNormal([IN, OUT], 0, 0.05, 'float32', 4) as tf.Tensor2D, A, B, Rt: rnd([IN, E], 0.1, 5),
    // the same experts as separate variables, so every variant computes the same function
    As: Array.from({ length: E }, (_, e) => tf.tidy(() => tf.variable(tf.slice(A, [0, e * R], [IN, R])))),
    Bs: Array.from({ length: E }, (_, e) => tf.tidy(() => tf.variable(tf.slice(B, [e * R, 0], [R, OUT])))),
    tokenMask: tf.tensor1d(Array.from({ length: N }, (_, n) => (n < (7 * N) / 8 ? 1 : 0))),
  };
  console.log(`backend ${info.name}; one module: N=${N} in=${IN} out=${OUT} experts=${E} rank=${R} top-k=${K}; median of ${REPS} rounds after 2 warm-up rounds`);
  const rows: Array<{ variant: string; forward_ms: number; fwd_bwd_ms: number; max_abs_diff_vs_dense: number | null }> = [];
  // rounds visit every variant in turn, so load from other processes spreads over all of them
  const fwd = VARIANTS.map(() => [] as number[]);
  const step = VARIANTS.map(() => [] as number[]);
  const outs: Float32Array[] = [];
  for (let round = 0; round < REPS + 2; round++) {
    for (const [i, v] of VARIANTS.entries()) {
      const t = await timeOnce(v, w);
      outs[i] = t.out;
      if (round >= 2) {
        fwd[i].push(t.fwd);
        step[i].push(t.step);
      }
    }
  }
  const ref = outs[VARIANTS.findIndex((v) => v.name.startsWith('dense (hilo)'))];
  VARIANTS.forEach((v, i) => {
    let diff: number | null = null;
    if (v.vars(w).length > 3) {
      diff = 0;
      for (let j = 0; j < ref.length; j++) diff = Math.max(diff, Math.abs(ref[j] - outs[i][j]));
    }
    rows.push({ variant: v.name, forward_ms: +median(fwd[i]).toFixed(2), fwd_bwd_ms: +median(step[i]).toFixed(2), max_abs_diff_vs_dense: diff });
  });
  const dense = rows.find((r) => r.variant.startsWith('dense (hilo)'))!;
  console.log(`\n| variant | forward ms | forward+backward ms | vs dense | max |Δy| vs dense |\n|---|---|---|---|---|`);
  for (const r of rows) {
    console.log(`| ${r.variant} | ${r.forward_ms.toFixed(1)} | ${r.fwd_bwd_ms.toFixed(1)} | ${(r.fwd_bwd_ms / dense.fwd_bwd_ms).toFixed(2)}x | ${r.max_abs_diff_vs_dense === null ? '' : r.max_abs_diff_vs_dense.toExponential(1)} |`);
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify({ backend: info.name, N, in: IN, out: OUT, experts: E, rank: R, topK: K, rows }));
  tf.dispose([w.x, w.W0, w.A, w.B, w.Rt, ...w.As, ...w.Bs, w.tokenMask]);
}

void main();

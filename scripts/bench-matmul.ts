/**
 * Matmul throughput on tfjs-backend-wasm, tfjs's own BatchMatMul against hilo's replacement
 * (transposed operands are transposed explicitly, then the fast untransposed kernel runs).
 * The shapes are the products of a training step of the issue-9 tiny Llama (hidden 256,
 * vocab 4096, intermediate 688, batch 8 x seq 128 = 1024 tokens, 8 heads of 32 = 64 attention
 * matrices) and the issue's own examples.
 *
 *   npx tsx scripts/bench-matmul.ts [--reps 5] [--json] [--step]
 * --step adds one whole training step of the issue-9 tiny Llama (forward + gradients of every
 * weight, batch 8 x 128) with each set of kernels.
 * Prints best-of-reps milliseconds and GFLOP/s for tfjs's kernels and for hilo's, per product.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { useFastWasmMatMul } from '../src/backend/wasm-matmul.ts';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const CASES: Case[] = [
  { name: 'x W        [1024,256]·[256,4096]', a: [1024, 256], b: [256, 4096], transposeA: false, transposeB: false },
  { name: 'x Eᵀ       [1024,256]·[4096,256]ᵀ', a: [1024, 256], b: [4096, 256], transposeA: false, transposeB: true },
  { name: 'dW = xᵀ dY [1024,4096]ᵀ·[1024,256]', a: [1024, 4096], b: [1024, 256], transposeA: true, transposeB: false },
  { name: 'dx = dY Wᵀ [1024,688]·[256,688]ᵀ', a: [1024, 688], b: [256, 688], transposeA: false, transposeB: true },
  { name: 'Q Kᵀ       [64,128,32]·[64,128,32]ᵀ', a: [64, 128, 32], b: [64, 128, 32], transposeA: false, transposeB: true },
  { name: 'Q Kᵀ       [64,128,8]·[64,128,8]ᵀ', a: [64, 128, 8], b: [64, 128, 8], transposeA: false, transposeB: true },
  { name: 'P V        [64,128,128]·[64,128,32]', a: [64, 128, 128], b: [64, 128, 32], transposeA: false, transposeB: false },
  { name: 'dV = Pᵀ dO [64,128,128]ᵀ·[64,128,32]', a: [64, 128, 128], b: [64, 128, 32], transposeA: true, transposeB: false },
  { name: 'LoRA dA    [1024,256]ᵀ·[1024,8]', a: [1024, 256], b: [1024, 8], transposeA: true, transposeB: false },
];

function flops(c: Case): number {
  const batch = c.a.length === 3 ? c.a[0] : 1;
  const [m, k] = c.transposeA ? [c.a.at(-1)!, c.a.at(-2)!] : [c.a.at(-2)!, c.a.at(-1)!];
  const n = c.transposeB ? c.b.at(-2)! : c.b.at(-1)!;
  return 2 * batch * m * n * k;
}

/** Best of `reps` products after 2 warm-up runs (the minimum is the steadiest figure on a shared machine). */
async function time(c: Case, reps: number): Promise<number> {
  const a = tf.randomNormal(c.a, 0, 1, 'float32', 1);
  const b = tf.randomNormal(c.b, 0, 1, 'float32', 2);
  const ms: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    const y = tf.matMul(a, b, c.transposeA, c.transposeB);
    await y.data();
    y.dispose();
    if (i >= 2) ms.push(performance.now() - t0);
  }
  tf.dispose([a, b]);
  return Math.min(...ms);
}

/** Best-of-`reps` ms of a full-parameter step: mean logits^2 loss, gradients of every weight. */
async function trainingStep(reps: number): Promise<{ stockMs: number; fastMs: number }> {
  const { normaliseConfig } = await import('../src/model/config.ts');
  const { createRandomModel } = await import('../src/model/init.ts');
  const config = normaliseConfig({
    model_type: 'llama', vocab_size: 4096, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4,
    num_attention_heads: 8, num_key_value_heads: 4, rope_theta: 1e4, tie_word_embeddings: true,
  });
  const model = createRandomModel(config, 0);
  const vars = [...model.weights.values()];
  const ids = tf.tensor2d(Int32Array.from({ length: 8 * 128 }, (_, i) => (i * 7919) % 4096), [8, 128], 'int32');
  const step = async () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward(ids))) as tf.Scalar, vars);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const best = async () => {
    await step(); // warm-up
    let ms = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await step();
      ms = Math.min(ms, performance.now() - t0);
    }
    return ms;
  };
  useFastWasmMatMul(tf, false);
  const stockMs = await best();
  useFastWasmMatMul(tf, true);
  const fastMs = await best();
  ids.dispose();
  model.dispose();
  return { stockMs, fastMs };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const reps = Number(args[args.indexOf('--reps') + 1]) || 5;
  await initBackend('wasm');
  const rows = [];
  for (const c of CASES) {
    // two alternating rounds, best of each: load on a shared machine hits both sides alike
    let [stock, fast] = [Infinity, Infinity];
    for (let round = 0; round < 2; round++) {
      useFastWasmMatMul(tf, false);
      stock = Math.min(stock, await time(c, reps));
      useFastWasmMatMul(tf, true);
      fast = Math.min(fast, await time(c, reps));
    }
    const gf = (ms: number) => flops(c) / ms / 1e6;
    rows.push({ case: c.name, stockMs: stock, fastMs: fast, stockGflops: gf(stock), fastGflops: gf(fast), speedup: stock / fast });
  }
  if (args.includes('--json')) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const head = ['product (wasm, 1 thread)', 'tfjs ms', 'GFLOP/s', 'hilo ms', 'GFLOP/s', 'speedup'];
  const lines = rows.map((r) => [r.case, r.stockMs.toFixed(1), r.stockGflops.toFixed(1), r.fastMs.toFixed(1), r.fastGflops.toFixed(1), `${r.speedup.toFixed(1)}x`]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((s, i) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l));
  if (args.includes('--step')) {
    const { stockMs, fastMs } = await trainingStep(Math.min(reps, 2));
    console.log(`\ntraining step, tiny Llama (4096 vocab, 256 hidden, 4 layers), batch 8x128, all weights: ` +
      `tfjs ${stockMs.toFixed(0)} ms, hilo ${fastMs.toFixed(0)} ms (${(stockMs / fastMs).toFixed(1)}x)`);
  }
}

await main();

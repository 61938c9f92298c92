/**
 * Matmul throughput on tfjs-backend-wasm, tfjs's own BatchMatMul against hilo's replacement
 * (transposed operands are transposed explicitly, then the fast untransposed kernel runs).
 * The shapes are the products of a training step of the issue-9 tiny Llama (hidden 256,
 * vocab 4096, intermediate 688, batch 8 x seq 128 = 1024 tokens, 8 heads of 32 = 64 attention
 * matrices) and the issue's own examples.
 *
 *   npx tsx scripts/bench-matmul.ts [--reps 5] [--json]
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

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const reps = Number(args[args.indexOf('--reps') + 1]) || 5;
  await initBackend('wasm');
  const rows = [];
  for (const c of CASES) {
    useFastWasmMatMul(tf, false);
    const stock = await time(c, reps);
    useFastWasmMatMul(tf, true);
    const fast = await time(c, reps);
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
}

await main();

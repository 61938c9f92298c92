/**
 * The wasm backend's matrix products by engine, on the shapes of a tiny-Llama MoE-LoRA step
 * (batch 8 x 128 tokens, hidden 256, MLP 688, 4 experts of rank 8): XNNPACK (tfjs's kernel
 * with hilo's explicit transposes), the native BLAS on one thread, on all of its threads, and
 * hilo's choice between those two (threadsFor in src/backend/blas.ts). Prints one table.
 *
 *   npx tsx scripts/bench-blas.ts [--ms 300]
 *
 * --small: instead, one thread's sgemm on the products of a stories260K replica's MoE step
 * (512 rows, hidden 64, MLP 172, [A | router] 36 columns), whole and as blas.ts splits them
 * for OpenBLAS's small-matrix kernels (smallParts).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadBlas, smallParts, type Blas } from '../src/backend/blas.ts';
import { useFastWasmMatMul } from '../src/backend/wasm-matmul.ts';

const i = process.argv.indexOf('--ms');
const MS = i >= 0 ? Number(process.argv[i + 1]) : 300;

/** [a shape, b shape, transposeA, transposeB, what it is] */
const SHAPES: Array<[number[], number[], boolean, boolean, string]> = [
  [[1024, 256], [256, 4096], false, false, 'lm head'],
  [[1024, 4096], [256, 4096], false, true, 'lm head dX'],
  [[1024, 256], [256, 688], false, false, 'gate/up'],
  [[1024, 688], [256, 688], false, true, 'gate/up dX'],
  [[1024, 256], [256, 256], false, false, 'q/o'],
  [[1024, 256], [256, 128], false, false, 'k/v (4 of 8 heads)'],
  [[1024, 128], [256, 128], false, true, 'k/v dX'],
  [[1024, 256], [1024, 688], true, false, 'frozen-free dW shape'],
  [[1024, 256], [256, 32], false, false, 'experts A'],
  [[1024, 256], [1024, 32], true, false, 'experts dA'],
  [[1024, 32], [32, 688], false, false, 'experts B'],
  [[1024, 256], [256, 4], false, false, 'router'],
  [[1024, 688], [688, 4], false, false, 'router (down)'],
  [[1024, 688], [1024, 4], true, false, 'router dW (down)'],
  [[1024, 4], [688, 4], false, true, 'router dX (down)'],
  [[1024, 256], [1024, 4], true, false, 'router dW'],
  [[32, 256, 32], [32, 128, 32], false, true, 'attention Q K^T'],
  [[32, 256, 128], [32, 128, 32], false, false, 'attention P V'],
];

function msPerProduct(a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean): number {
  for (let k = 0; k < 3; k++) tf.matMul(a, b, tA, tB).dispose();
  const times: number[] = [];
  const end = performance.now() + MS;
  while (performance.now() < end || times.length < 5) {
    const t0 = performance.now();
    tf.matMul(a, b, tA, tB).dispose();
    times.push(performance.now() - t0);
  }
  return times.sort((x, y) => x - y)[times.length >> 1];
}

/** [transA, transB, m, n, k, what] on a stories260K replica (512 rows). */
const SMALL: Array<[boolean, boolean, number, number, number, string]> = [
  [false, false, 512, 36, 64, 'x·[A | Wr], in 64'],
  [false, false, 512, 36, 172, 'x·[A | Wr], down'],
  [false, false, 512, 64, 32, 'gated·B, out 64'],
  [false, false, 512, 172, 32, 'gated·B, gate/up'],
  [true, false, 64, 36, 512, 'd[A | Wr] = xᵀ·[dh | dl]'],
  [true, false, 172, 36, 512, 'd[A | Wr], down'],
  [true, false, 32, 64, 512, 'dB = gatedᵀ·dD'],
  [true, false, 32, 172, 512, 'dB, gate/up'],
  [false, false, 512, 64, 64, 'q/o base'],
  [false, false, 512, 172, 64, 'gate/up base'],
  [false, true, 512, 32, 64, 'dH = dD·Bᵀ (not split)'],
];

/** Microseconds a call, median of 9 rounds of 200. */
function usPerCall(f: () => void): number {
  for (let i = 0; i < 200; i++) f();
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) f();
    rounds.push(((performance.now() - t0) / 200) * 1000);
  }
  return rounds.sort((x, y) => x - y)[4];
}

function benchSmall(): void {
  const whole = loadBlas(process.env, { split: false }).blas;
  const split = loadBlas(process.env, { split: true }).blas;
  if (!whole || !split) throw new Error('--small needs a native BLAS');
  console.log(`${whole.detail}; one thread`);
  const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
  const [a, b, c] = [rand(512 * 512), rand(512 * 512), rand(512 * 512)];
  const rows: string[][] = [];
  for (const [tA, tB, m, n, k, what] of SMALL) {
    const call = (blas: Blas) => () => blas.sgemm(tA, tB, m, n, k, a, tA ? m : k, b, tB ? k : n, c, n, { threads: 1 });
    const [u0, u1] = [usPerCall(call(whole)), usPerCall(call(split))];
    rows.push([what, `${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} ${m}x${n}x${k}`, String(smallParts(tB, m, n, k)), `${u0.toFixed(1)} us`, `${u1.toFixed(1)} us`, `${(u1 / u0).toFixed(2)}x`]);
  }
  table(['product', 'm x n x k', 'parts', 'whole', 'split', 'split/whole'], rows);
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c])).join('  ');
  console.log([line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n'));
}

if (process.argv.includes('--small')) {
  benchSmall();
  process.exit(0);
}

const info = await initBackend('wasm');
if (info.name !== 'wasm') throw new Error(`needs the wasm backend, got ${info.name}`);
const found = loadBlas();
const blas = found.blas;
console.log(`wasm: ${info.detail}`);
const pinned = (b: Blas, threads: number): Blas => ({
  ...b,
  sgemm: (tA, tB, m, n, k, x, lda, y, ldb, c, ldc) => b.sgemm(tA, tB, m, n, k, x, lda, y, ldb, c, ldc, { threads }),
});
const engines: Array<[string, Blas | null]> = [['XNNPACK', null]];
if (blas) engines.push(['BLAS 1 thread', pinned(blas, 1)], [`BLAS ${blas.maxThreads} threads`, pinned(blas, blas.maxThreads)], ['BLAS hilo', blas]);
else console.log(`no native BLAS: ${'reason' in found ? found.reason : ''}`);

const rows: string[][] = [];
for (const [sa, sb, tA, tB, what] of SHAPES) {
  const a = tf.randomNormal(sa, 0, 1, 'float32', 1);
  const b = tf.randomNormal(sb, 0, 1, 'float32', 2);
  const m = tA ? sa.at(-1)! : sa.at(-2)!;
  const k = tA ? sa.at(-2)! : sa.at(-1)!;
  const n = tB ? sb.at(-2)! : sb.at(-1)!;
  const flops = 2 * m * n * k * sa.slice(0, -2).reduce((x, y) => x * y, 1);
  const row = [what, `[${sa}]${tA ? 'T' : ''} x [${sb}]${tB ? 'T' : ''}`];
  for (const [, engine] of engines) {
    useFastWasmMatMul(tf, true, engine);
    const ms = msPerProduct(a, b, tA, tB);
    row.push(`${ms.toFixed(3)} ms ${(flops / ms / 1e6).toFixed(0).padStart(4)} GF/s`);
  }
  rows.push(row);
  tf.dispose([a, b]);
}
table(['product', 'shapes', ...engines.map(([name]) => name)], rows);

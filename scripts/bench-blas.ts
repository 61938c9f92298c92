/**
 * The wasm backend's matrix products by engine, on the shapes of a tiny-Llama MoE-LoRA step
 * (batch 8 x 128 tokens, hidden 256, MLP 688, 4 experts of rank 8): XNNPACK (tfjs's kernel
 * with hilo's explicit transposes), the native BLAS on one thread, on all of its threads, and
 * hilo's choice between those two (threadsFor in src/backend/blas.ts). Prints one table.
 *
 *   npx tsx scripts/bench-blas.ts [--ms 300]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadBlas, type Blas } from '../src/backend/blas.ts';
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
const head = ['product', 'shapes', ...engines.map(([name]) => name)];
const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c])).join('  ');
console.log([line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n'));

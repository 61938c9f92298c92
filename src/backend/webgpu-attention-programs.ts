/**
 * The WGSL programs of the attention core on webgpu (webgpu-attention.ts says what each computes):
 * one thread per query row (forward, dq) or key row (dk, dv), workgroups of 64 rows of one
 * (batch, kv head), the other side's rows staged tile by tile in shared memory. Rows are held and
 * staged as vec4s (d padded with zeros), so a dot product reads shared memory a vec4 at a time.
 */
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { f32, i32, ThreadProgram, type WebGPUUtil } from './webgpu-programs.ts';

/** Threads per workgroup: query rows (forward, dq) or key rows (dk, dv) each. */
const WG = 64;
/** Shared memory a program stages tiles in, in f32s: WebGPU's guaranteed 16 KiB. */
const SHARED_FLOATS = 4096;
/** Head dims the programs take: each thread holds up to three rows of d in registers. */
export const MAX_HEAD_DIM = 256;

/** vec4s a row of d takes: rows are padded with zeros to whole vec4s in registers and shared memory. */
const quads = (d: number) => Math.ceil(d / 4);
/**
 * Where a thread's rows (q, dO, the accumulator: HQ vec4s each) are looped over to the constant
 * HQ, which the shader compiler unrolls into registers, or to a uniform it cannot unroll. Short
 * rows unroll; at d 64 and 128 lavapipe's LLVM spent longer compiling the unrolled backward
 * programs than a training step ran them (and a thread's three rows of d 128 outgrow a GPU's
 * registers anyway).
 */
const UNROLL_QUADS = 8;
const loopBound = (d: number) => (quads(d) <= UNROLL_QUADS ? 'HQ' : 'uniforms.quads');
/** Keys a forward/dq tile holds: K and V tiles of d each. */
const keyTile = (d: number) => Math.max(1, Math.min(WG, Math.floor(SHARED_FLOATS / (8 * quads(d)))));
/** Query rows a dk/dv tile holds: Q and dO tiles of d each, and each row's m, 1/l and D. */
const queryTile = (d: number) => Math.max(1, Math.min(WG, Math.floor(SHARED_FLOATS / (8 * quads(d) + 3))));

/**
 * A tile is skipped where, for every row and key of it, mask < m − SKIP_MARGIN (m: the row's
 * running max in the forward, its final one in the backward): there exp(scale·q·k + mask − m)
 * underflows to exactly 0 in f32 for any scale·q·k well below SKIP_MARGIN, so skipping changes no
 * bit. The tiles above the diagonal of the model's causal −1e9 mask are skipped so; a row that
 * sees no key (m ≈ −1e9 itself) skips nothing, and attends evenly as the reference does.
 */
const SKIP_MARGIN = '1e7';

/** Whether a tile is needed by any row (two flags: one is reset while the other is read). */
const NEEDED = 'var<workgroup> needed : array<atomic<u32>, 2>;';

/**
 * WGSL at the top of a tile loop over `at` in steps of `tile` up to `count`: n, the tile's rows or
 * keys; mk[j], this thread's mask over them (from `maskAt`, in j); and go, whether any thread of
 * the workgroup needs the tile, its row max read from `maxAt` (in j). Barriers are on both sides.
 */
const decideTile = (at: string, tile: string, count: string, maskAt: string, maxAt: string) => `
      let n = min(${tile}, ${count} - ${at});
      let parity = (${at} / ${tile}) % 2;
      workgroupBarrier();
      if (localIndex == 0u) { atomicStore(&needed[1 - parity], 0u); }
      if (valid) {
        var need = false;
        for (var j = 0; j < n; j++) {
          mk[j] = ${maskAt};
          need = need || mk[j] >= ${maxAt} - ${SKIP_MARGIN};
        }
        if (need) { atomicOr(&needed[parity], 1u); }
      }
      workgroupBarrier();
      let go = atomicLoad(&needed[parity]) != 0u;`;

/** Uniforms of the tiled programs, in this order (uniformData). */
const UNIFORMS = 'B : i32, Tq : i32, Tk : i32, H : i32, KV : i32, maskB : i32, statsAt : i32, quads : i32, scale : f32,';

export interface Dims {
  b: number;
  tq: number;
  tk: number;
  h: number;
  kv: number;
  d: number;
  maskB: number;
}

export const uniformData = (s: Dims, scale: number) =>
  [i32(s.b), i32(s.tq), i32(s.tk), i32(s.h), i32(s.kv), i32(s.maskB), i32(s.b * s.tq * s.h * s.d), i32(quads(s.d)), f32(scale)];

/**
 * WGSL every tiled program starts with: this workgroup's flat index (tfjs may spread a long
 * dispatch over y and z), and a query row's place. Row r of (batch b, kv head) is query t = r / G
 * of head kvh·G + r % G; its q, O, dO rows start at rowAt(...)·d, its m and 1/l at statsAt + 2·rowAt(...).
 */
const COMMON = `
  fn flatWorkgroup() -> i32 {
    return i32(workgroupId.x + workgroupId.y * numWorkgroups.x + workgroupId.z * numWorkgroups.x * numWorkgroups.y);
  }
  fn rowAt(b : i32, kvh : i32, r : i32, G : i32) -> i32 {
    return (b * uniforms.Tq + r / G) * uniforms.H + kvh * G + r % G;
  }
  fn maskRow(b : i32, t : i32) -> i32 {
    return (select(0, b, uniforms.maskB > 1) * uniforms.Tq + t) * uniforms.Tk;
  }
`;

/** A program of `groups` workgroups of WG threads, each staging tiles in shared memory. */
class TileProgram implements WebGPUProgram {
  workgroupSize: [number, number, number] = [WG, 1, 1];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  readonly uniforms = UNIFORMS;

  constructor(
    readonly variableNames: string[],
    readonly outputShape: number[],
    groups: number,
    readonly shaderKey: string,
    private readonly code: string,
  ) {
    this.dispatch = [groups, 1, 1];
  }

  getUserCode(): string {
    return `${COMMON}${this.code}`;
  }
}

/** fn readX(o, c) -> vec4: X[o + 4c ..], zeros past the row's d (o: where the row starts). */
const reader = (x: string) => `
  fn read${x}(o : i32, c : i32) -> vec4<f32> {
    let i = o + 4 * c;
    return vec4<f32>(${[0, 1, 2, 3].map((e) => (e === 0 ? `${x}[i]` : `select(0.0, ${x}[i + ${e}], 4 * c + ${e} < HD)`)).join(', ')});
  }
`;

/** The vec4 at c of a row starting at o into the output, up to the row's d. */
const WRITE = `
  fn write(o : i32, c : i32, v : vec4<f32>) {
    setOutputAtIndex(o + 4 * c, v.x);
    if (4 * c + 1 < HD) { setOutputAtIndex(o + 4 * c + 1, v.y); }
    if (4 * c + 2 < HD) { setOutputAtIndex(o + 4 * c + 2, v.z); }
    if (4 * c + 3 < HD) { setOutputAtIndex(o + 4 * c + 3, v.w); }
  }
`;

/** A program's constants and helpers: head dim HD in HQ vec4s, a reader per input row it loads. */
const header = (d: number, readers: string[]) => `
  const HD = ${d};
  const HQ = ${quads(d)};
  ${readers.map(reader).join('')}
  ${WRITE}
  ${NEEDED}
`;

/** K and V rows s0.. of (b, kvh) into kt, vt (zeros past Tk); the caller puts barriers round it. */
const LOAD_KEYS = `
  fn loadKeys(b : i32, kvh : i32, s0 : i32, live : bool) {
    for (var i = i32(localIndex); i < BC * HQ; i += ${WG}) {
      let s = s0 + i / HQ;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (live && s < uniforms.Tk) {
        let o = ((b * uniforms.Tk + s) * uniforms.KV + kvh) * HD;
        kx = readK(o, i % HQ);
        vx = readV(o, i % HQ);
      }
      kt[i] = kx;
      vt[i] = vx;
    }
  }
`;

/**
 * Query-side programs (forward, dq): this thread's row and the loop over key tiles around `tile`;
 * `before` declares m, the row's max the skip test reads.
 */
const queryRows = (d: number, readers: string[], before: string, tile: string, after: string) => {
  const bc = keyTile(d);
  return `${header(d, readers)}
  const BC = ${bc};
  var<workgroup> kt : array<vec4<f32>, ${bc * quads(d)}>;
  var<workgroup> vt : array<vec4<f32>, ${bc * quads(d)}>;
  ${LOAD_KEYS}
  fn main(index : i32) {
    let QN = ${loopBound(d)};
    let G = uniforms.H / uniforms.KV;
    let rows = G * uniforms.Tq;
    let tiles = (rows + ${WG} - 1) / ${WG};
    let wg = flatWorkgroup();
    let bk = wg / tiles;
    let r = (wg % tiles) * ${WG} + i32(localIndex);
    let live = bk < uniforms.B * uniforms.KV;
    let valid = live && r < rows;
    let b = bk / uniforms.KV;
    let kvh = bk % uniforms.KV;
    let row = rowAt(b, kvh, r, G);
    let mo = maskRow(b, r / G);
    ${before}
    var mk : array<f32, BC>; // this row's mask over the tile
    for (var s0 = 0; s0 < uniforms.Tk; s0 += BC) {
      ${decideTile('s0', 'BC', 'uniforms.Tk', 'Mask[mo + s0 + j]', 'm')}
      if (go) { loadKeys(b, kvh, s0, live); }
      workgroupBarrier();
      if (go && valid) {
        ${tile}
      }
    }
    if (valid) {
      ${after}
    }
  }
`;
};

/** Workgroups of the query-side programs: 64 rows of one (batch, kv head) each. */
const queryGroups = (s: Dims) => s.b * s.kv * Math.ceil((s.h / s.kv) * s.tq / WG);

/** out, m and 1/l: the online softmax, rescaling l and acc once a key tile. */
export const forwardProgram = (s: Dims) => new TileProgram(['Q', 'K', 'V', 'Mask'], [s.b * s.tq * s.h * (s.d + 2)], queryGroups(s),
  `hilo_attention_${s.d}`, queryRows(s.d, ['Q', 'K', 'V'], `
    var qr : array<vec4<f32>, HQ>;
    var acc : array<vec4<f32>, HQ>;
    if (valid) { for (var c = 0; c < QN; c++) { qr[c] = readQ(row * HD, c); } }
    var m = -3.402823e38;
    var l = 0.0;
  `, `
    var sc : array<f32, BC>;
    var mt = m;
    for (var j = 0; j < n; j++) {
      var qk = 0.0;
      for (var c = 0; c < QN; c++) { qk += dot(qr[c], kt[j * HQ + c]); }
      sc[j] = qk * uniforms.scale + mk[j];
      mt = max(mt, sc[j]);
    }
    let alpha = exp(m - mt);
    l *= alpha;
    for (var c = 0; c < QN; c++) { acc[c] *= alpha; }
    for (var j = 0; j < n; j++) {
      let p = exp(sc[j] - mt);
      l += p;
      for (var c = 0; c < QN; c++) { acc[c] += p * vt[j * HQ + c]; }
    }
    m = mt;
  `, `
    // no key at all (every one −inf): zeros, and 1/l = 0 makes every recomputed p 0
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0; c < QN; c++) { write(row * HD, c, acc[c] * inv); }
    setOutputAtIndex(uniforms.statsAt + 2 * row, m);
    setOutputAtIndex(uniforms.statsAt + 2 * row + 1, inv);
  `));

/** D = rowsum(dO ⊙ O) per (token, head) row, O read from Y. */
export const deltaProgram = (util: WebGPUUtil, rows: number) =>
  new ThreadProgram(util, ['Dy', 'Y'], [rows], rows, 'threads : i32, HD : i32,', 'hilo_attention_delta', `
    var s = 0.0;
    for (var c = 0; c < uniforms.HD; c++) { s += Dy[index * uniforms.HD + c] * Y[index * uniforms.HD + c]; }
    setOutputAtIndex(index, s);
  `);

/** dq = scale · Σ_s P (dP − D) k_s over key tiles. */
export const dqProgram = (s: Dims) => new TileProgram(['Q', 'K', 'V', 'Mask', 'Y', 'Dd', 'Dy'], [s.b, s.tq, s.h, s.d], queryGroups(s),
  `hilo_attention_dq_${s.d}`, queryRows(s.d, ['Q', 'K', 'V', 'Dy'], `
    var qr : array<vec4<f32>, HQ>;
    var gr : array<vec4<f32>, HQ>;
    var acc : array<vec4<f32>, HQ>;
    var m = 0.0;
    var inv = 0.0;
    var delta = 0.0;
    if (valid) {
      for (var c = 0; c < QN; c++) { qr[c] = readQ(row * HD, c); gr[c] = readDy(row * HD, c); }
      m = Y[uniforms.statsAt + 2 * row];
      inv = Y[uniforms.statsAt + 2 * row + 1];
      delta = Dd[row];
    }
  `, `
    for (var j = 0; j < n; j++) {
      var qk = 0.0;
      var dp = 0.0;
      for (var c = 0; c < QN; c++) { qk += dot(qr[c], kt[j * HQ + c]); dp += dot(gr[c], vt[j * HQ + c]); }
      let ds = exp(qk * uniforms.scale + mk[j] - m) * inv * (dp - delta);
      for (var c = 0; c < QN; c++) { acc[c] += ds * kt[j * HQ + c]; }
    }
  `, `
    for (var c = 0; c < QN; c++) { write(row * HD, c, acc[c] * uniforms.scale); }
  `));

/**
 * dk (wantDk) or dv: one thread per key row s of (b, kv head), over tiles of the group's query
 * rows (q and dO rows, their m, 1/l and D staged in shared memory).
 */
export const keyRowsProgram = (s: Dims, wantDk: boolean) => {
  const d = s.d;
  const br = queryTile(d);
  const only = (code: string) => (wantDk ? code : '');
  return new TileProgram(wantDk ? ['Q', 'K', 'V', 'Mask', 'Y', 'Dd', 'Dy'] : ['Q', 'K', 'Mask', 'Y', 'Dy'], [s.b, s.tk, s.kv, d],
    s.b * s.kv * Math.ceil(s.tk / WG), `hilo_attention_${wantDk ? 'dk' : 'dv'}_${d}`, `${header(d, wantDk ? ['Q', 'K', 'V', 'Dy'] : ['Q', 'K', 'Dy'])}
  const BR = ${br};
  var<workgroup> qt : array<vec4<f32>, ${br * quads(d)}>;
  var<workgroup> gt : array<vec4<f32>, ${br * quads(d)}>;
  var<workgroup> mt : array<f32, ${br}>;
  var<workgroup> it : array<f32, ${br}>;
  ${only(`var<workgroup> dt : array<f32, ${br}>;`)}
  fn main(index : i32) {
    let QN = ${loopBound(d)};
    let G = uniforms.H / uniforms.KV;
    let rows = G * uniforms.Tq;
    let tiles = (uniforms.Tk + ${WG} - 1) / ${WG};
    let wg = flatWorkgroup();
    let bk = wg / tiles;
    let s = (wg % tiles) * ${WG} + i32(localIndex);
    let live = bk < uniforms.B * uniforms.KV;
    let valid = live && s < uniforms.Tk;
    let b = bk / uniforms.KV;
    let kvh = bk % uniforms.KV;
    let ko = ((b * uniforms.Tk + s) * uniforms.KV + kvh) * HD;
    var kr : array<vec4<f32>, HQ>;
    var acc : array<vec4<f32>, HQ>;
    ${only('var vr : array<vec4<f32>, HQ>;')}
    if (valid) {
      for (var c = 0; c < QN; c++) { kr[c] = readK(ko, c); ${only('vr[c] = readV(ko, c);')} }
    }
    var mk : array<f32, BR>; // this key's mask over the tile's query rows
    for (var r0 = 0; r0 < rows; r0 += BR) {
      ${decideTile('r0', 'BR', 'rows', 'Mask[maskRow(b, (r0 + j) / G) + s]', 'Y[uniforms.statsAt + 2 * rowAt(b, kvh, r0 + j, G)]')}
      for (var i = i32(localIndex); go && i < BR * HQ; i += ${WG}) {
        let r = r0 + i / HQ;
        var qx = vec4<f32>(0.0);
        var gx = vec4<f32>(0.0);
        if (live && r < rows) {
          let o = rowAt(b, kvh, r, G) * HD;
          qx = readQ(o, i % HQ);
          gx = readDy(o, i % HQ);
        }
        qt[i] = qx;
        gt[i] = gx;
      }
      for (var i = i32(localIndex); go && i < BR; i += ${WG}) {
        var mx = 0.0;
        var ix = 0.0;
        ${only('var dx = 0.0;')}
        if (live && r0 + i < rows) {
          let row = rowAt(b, kvh, r0 + i, G);
          mx = Y[uniforms.statsAt + 2 * row];
          ix = Y[uniforms.statsAt + 2 * row + 1];
          ${only('dx = Dd[row];')}
        }
        mt[i] = mx;
        it[i] = ix;
        ${only('dt[i] = dx;')}
      }
      workgroupBarrier();
      if (go && valid) {
        for (var i = 0; i < n; i++) {
          var qk = 0.0;
          ${only('var dp = 0.0;')}
          for (var c = 0; c < QN; c++) { qk += dot(qt[i * HQ + c], kr[c]); ${only('dp += dot(gt[i * HQ + c], vr[c]);')} }
          let p = exp(qk * uniforms.scale + mk[i] - mt[i]) * it[i];
          ${wantDk
            ? 'let ds = p * (dp - dt[i]);\n          for (var c = 0; c < QN; c++) { acc[c] += ds * qt[i * HQ + c]; }'
            : 'for (var c = 0; c < QN; c++) { acc[c] += p * gt[i * HQ + c]; }'}
        }
      }
    }
    if (valid) {
      for (var c = 0; c < QN; c++) { write(ko, c, acc[c]${only(' * uniforms.scale')}); }
    }
  }
`);
};

/**
 * safetensors, read and written by hand: an 8-byte little-endian header length N, N bytes of
 * JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}`, then
 * the raw little-endian data (offsets count from the first byte after the header).
 *
 * The reader trusts nothing in the header: the length is checked against the file size before
 * anything is allocated, and the tensors must tile the data section exactly (no gaps, no
 * overlaps, nothing past the end), so a truncated or hand-edited file fails with the file and
 * tensor named instead of yielding garbage weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HiloError } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';
import { floatsToBf16, floatToBf16, floatToHalf, halfToFloat } from '../ops/float16.ts';
import type { StoredDtype } from '../ops/stored.ts';

export { floatToBf16, floatToHalf, halfToFloat };

export const ST_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type StDtype = (typeof ST_DTYPES)[number];
/** Dtypes the writer can produce. */
export type StWriteDtype = 'F32' | 'F16' | 'BF16' | 'I32';

const ITEM_BYTES: Record<StDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};
const FLOAT_DTYPES = new Set<StDtype>(['F64', 'F32', 'F16', 'BF16']);

/** A header larger than this is taken as corruption, not as a real file (real ones are ~MBs). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface StEntry {
  dtype: StDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  offsets: [number, number];
}

export interface StHeader {
  /** Bytes before the data section: 8 + header length. */
  dataStart: number;
  entries: Map<string, StEntry>;
  metadata: Record<string, string> | null;
}

/** A decoded tensor: floating dtypes become Float32Array, integer and bool dtypes Int32Array. */
export interface StTensor {
  dtype: StDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** What the writer takes: float data is written as F32 unless `dtype` says F16/BF16. */
export interface StTensorInput {
  shape: number[];
  data: Float32Array | Int32Array;
  dtype?: StWriteDtype;
}

function fail(file: string, what: string): HiloError {
  return new HiloError(`${file}: ${what}`);
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parse and validate the header of `file` (reads only the header bytes). */
export function readSafetensorsHeader(file: string): StHeader {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw fail(file, `truncated safetensors file: ${size} bytes, less than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw fail(file, `header length ${n} bytes is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
    }
    if (8n + n > BigInt(size)) {
      throw fail(file, `header length ${n} bytes runs past the end of the ${size}-byte file (truncated?)`);
    }
    const headerBuf = Buffer.alloc(Number(n));
    fs.readSync(fd, headerBuf, 0, Number(n), 8);
    return parseHeader(file, headerBuf, 8 + Number(n), size - 8 - Number(n));
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(file: string, headerBuf: Buffer, dataStart: number, dataBytes: number): StHeader {
  let json: unknown;
  try {
    json = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail(file, 'header is not a JSON object');
  const entries = new Map<string, StEntry>();
  let metadata: Record<string, string> | null = null;
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, raw);
      continue;
    }
    entries.set(name, parseEntry(file, name, raw, dataBytes));
  }
  checkTiling(file, entries, dataBytes);
  return { dataStart, entries, metadata };
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw fail(file, `__metadata__.${k} is not a string`);
  }
  return raw as Record<string, string>;
}

function parseEntry(file: string, name: string, raw: unknown, dataBytes: number): StEntry {
  const where = `tensor "${name}"`;
  if (typeof raw !== 'object' || raw === null) throw fail(file, `${where}: entry is not an object`);
  const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
  if (!(ST_DTYPES as readonly unknown[]).includes(dtype)) {
    throw fail(file, `${where}: unknown dtype ${JSON.stringify(dtype)}; allowed: ${ST_DTYPES.join(' | ')}`);
  }
  const isDim = (d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isDim)) throw fail(file, `${where}: bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isDim) || offs[0] > offs[1]) {
    throw fail(file, `${where}: bad data_offsets ${JSON.stringify(offs)}`);
  }
  const [begin, end] = offs as [number, number];
  if (end > dataBytes) {
    throw fail(file, `${where}: data_offsets [${begin}, ${end}] run past the ${dataBytes}-byte data section (truncated file?)`);
  }
  const dt = dtype as StDtype;
  const want = numel(shape) * ITEM_BYTES[dt];
  if (end - begin !== want) {
    throw fail(file, `${where}: ${dt}[${shape.join(', ')}] needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { dtype: dt, shape: shape as number[], offsets: [begin, end] };
}

/** Tensors must cover the data section exactly once: sorted by offset, each starts where the last ended. */
function checkTiling(file: string, entries: Map<string, StEntry>, dataBytes: number): void {
  const sorted = [...entries].sort((a, b) => a[1].offsets[0] - b[1].offsets[0] || a[1].offsets[1] - b[1].offsets[1]);
  let pos = 0;
  let prev = '(start of data)';
  for (const [name, e] of sorted) {
    const [begin, end] = e.offsets;
    if (begin < pos) throw fail(file, `tensor "${name}": data_offsets [${begin}, ${end}] overlap "${prev}" (which ends at ${pos})`);
    if (begin > pos) throw fail(file, `tensor "${name}": gap of ${begin - pos} unused bytes before it (after "${prev}")`);
    pos = end;
    if (end > begin) prev = name;
  }
  if (pos !== dataBytes) {
    throw fail(file, `data section is ${dataBytes} bytes but the tensors cover ${pos}: ${dataBytes - pos} trailing bytes`);
  }
}

/** Read every tensor of `file` (or only those in `names`), decoded to float32 / int32. */
export function readSafetensors(file: string, names?: Iterable<string>): { tensors: Map<string, StTensor>; metadata: Record<string, string> | null } {
  const header = readSafetensorsHeader(file);
  const wanted = names ? [...names] : [...header.entries.keys()];
  const tensors = new Map<string, StTensor>();
  const fd = fs.openSync(file, 'r');
  try {
    for (const name of wanted) {
      const e = header.entries.get(name);
      if (!e) throw fail(file, `no tensor named "${name}"`);
      const bytes = new Uint8Array(e.offsets[1] - e.offsets[0]);
      const got = fs.readSync(fd, bytes, 0, bytes.length, header.dataStart + e.offsets[0]);
      if (got !== bytes.length) throw fail(file, `tensor "${name}": short read (${got} of ${bytes.length} bytes)`);
      let data: Float32Array | Int32Array;
      try {
        data = decode(e.dtype, bytes, numel(e.shape));
      } catch (err) {
        throw fail(file, `tensor "${name}": ${(err as Error).message}`);
      }
      tensors.set(name, { dtype: e.dtype, shape: e.shape, data });
    }
  } finally {
    fs.closeSync(fd);
  }
  return { tensors, metadata: header.metadata };
}

/** A floating tensor's bytes, or (other dtypes) its decoded values. */
export type RawOrDecoded = { shape: number[]; dtype: StoredDtype; bytes: SharedArrayBuffer } | StTensor;

const STORED_OF: Partial<Record<StDtype, StoredDtype>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * Read tensors of `file` (or only `names`) with F32/F16/BF16 data kept as the file's bytes in a
 * SharedArrayBuffer each (src/ops/stored.ts: held once, shared by worker threads, 2 bytes a
 * value for the half types); other dtypes are decoded as readSafetensors does.
 */
export function readSafetensorsRaw(file: string, names?: Iterable<string>): Map<string, RawOrDecoded> {
  const header = readSafetensorsHeader(file);
  const wanted = names ? [...names] : [...header.entries.keys()];
  const out = new Map<string, RawOrDecoded>();
  const decodedNames: string[] = [];
  const fd = fs.openSync(file, 'r');
  try {
    for (const name of wanted) {
      const e = header.entries.get(name);
      if (!e) throw fail(file, `no tensor named "${name}"`);
      const dtype = LITTLE_ENDIAN ? STORED_OF[e.dtype] : undefined;
      if (!dtype) {
        decodedNames.push(name);
        continue;
      }
      const bytes = new SharedArrayBuffer(e.offsets[1] - e.offsets[0]);
      const view = new Uint8Array(bytes);
      for (let at = 0; at < view.length;) {
        const got = fs.readSync(fd, view, at, Math.min(view.length - at, 2 ** 30), header.dataStart + e.offsets[0] + at);
        if (got === 0) throw fail(file, `tensor "${name}": short read (${at} of ${view.length} bytes)`);
        at += got;
      }
      out.set(name, { shape: e.shape, dtype, bytes });
    }
  } finally {
    fs.closeSync(fd);
  }
  if (decodedNames.length) for (const [name, t] of readSafetensors(file, decodedNames).tensors) out.set(name, t);
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `bytes` must own its buffer from offset 0 (as readSafetensors allocates it): F32/I32 are then viewed, not copied. */
function decode(dtype: StDtype, bytes: Uint8Array, n: number): Float32Array | Int32Array {
  if (LITTLE_ENDIAN && bytes.byteOffset === 0) {
    if (dtype === 'F32') return new Float32Array(bytes.buffer, 0, n);
    if (dtype === 'I32') return new Int32Array(bytes.buffer, 0, n);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (FLOAT_DTYPES.has(dtype)) {
    const out = new Float32Array(n);
    if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'F64') for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
    else if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    else {
      const bits = new Uint32Array(out.buffer); // bf16 is the top half of a float32: exact
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
    }
    return out;
  }
  const out = new Int32Array(n);
  if (dtype === 'I32') for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
  else if (dtype === 'I16') for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
  else if (dtype === 'I8') for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
  else if (dtype === 'U8' || dtype === 'BOOL') for (let i = 0; i < n; i++) out[i] = view.getUint8(i);
  else {
    for (let i = 0; i < n; i++) {
      const v = view.getBigInt64(8 * i, true);
      if (v > 2147483647n || v < -2147483648n) throw new HiloError(`I64 value ${v} does not fit in int32`);
      out[i] = Number(v);
    }
  }
  return out;
}

function encode(name: string, t: StTensorInput): { dtype: StWriteDtype; bytes: Uint8Array } {
  const n = numel(t.shape);
  if (t.data.length !== n) throw new HiloError(`tensor "${name}": shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`);
  const dtype: StWriteDtype = t.dtype ?? (t.data instanceof Int32Array ? 'I32' : 'F32');
  if ((dtype === 'I32') !== t.data instanceof Int32Array) throw new HiloError(`tensor "${name}": cannot write ${t.data.constructor.name} as ${dtype}`);
  if (dtype === 'BF16' && LITTLE_ENDIAN) {
    const bits = floatsToBf16(t.data as Float32Array);
    return { dtype, bytes: new Uint8Array(bits.buffer, 0, bits.byteLength) };
  }
  const bytes = new Uint8Array(n * (dtype === 'F16' || dtype === 'BF16' ? 2 : 4));
  const view = new DataView(bytes.buffer);
  const d = t.data;
  if (dtype === 'F32') for (let i = 0; i < n; i++) view.setFloat32(4 * i, d[i], true);
  else if (dtype === 'I32') for (let i = 0; i < n; i++) view.setInt32(4 * i, d[i], true);
  else if (dtype === 'F16') for (let i = 0; i < n; i++) view.setUint16(2 * i, floatToHalf(d[i]), true);
  else for (let i = 0; i < n; i++) view.setUint16(2 * i, floatToBf16(d[i]), true);
  return { dtype, bytes };
}

/** A tensor's name, shape and stored dtype: all a header needs before any data exists. */
export interface StLayoutEntry {
  name: string;
  shape: number[];
  dtype: StWriteDtype;
}

/**
 * The header bytes (JSON space-padded to 8, after the 8-byte length) for tensors laid out in
 * name order, and where each tensor's data begins in the file.
 */
export function layoutSafetensors(entries: StLayoutEntry[], metadata: Record<string, string> = {}): { header: Uint8Array; starts: Map<string, number>; size: number } {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  const relative = new Map<string, number>();
  let offset = 0;
  for (const e of sorted) {
    if (relative.has(e.name)) throw new HiloError(`tensor "${e.name}" is listed twice`);
    const bytes = numel(e.shape) * ITEM_BYTES[e.dtype];
    json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
    relative.set(e.name, offset);
    offset += bytes;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text, 'utf8') % 8)) % 8);
  const headerJson = Buffer.from(text, 'utf8');
  const header = new Uint8Array(8 + headerJson.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerJson.length), true);
  header.set(headerJson, 8);
  const starts = new Map([...relative].map(([n, o]) => [n, header.length + o] as const));
  return { header, starts, size: header.length + offset };
}

/** The bytes of a safetensors file: keys sorted, data laid out in that order, header space-padded to 8. */
export function encodeSafetensors(
  tensors: Map<string, StTensorInput> | Record<string, StTensorInput>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const encoded = new Map([...map].map(([name, t]) => [name, encode(name, t)] as const));
  const { header, starts, size } = layoutSafetensors([...map].map(([name, t]) => ({ name, shape: t.shape, dtype: encoded.get(name)!.dtype })), metadata);
  const out = new Uint8Array(size);
  out.set(header, 0);
  for (const [name, { bytes }] of encoded) out.set(bytes, starts.get(name)!);
  return out;
}

/**
 * A safetensors file written one tensor at a time, in any order: the header is fixed up front
 * from the layout, each `write` puts one tensor's bytes at its offset, so memory holds one
 * tensor at a time however large the file. The file appears under its name only at `close`,
 * once every tensor has been written.
 */
export class SafetensorsFileWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private readonly starts: Map<string, number>;
  private readonly layout: Map<string, StLayoutEntry>;
  private readonly written = new Set<string>();

  constructor(readonly file: string, entries: StLayoutEntry[], metadata: Record<string, string> = {}) {
    const { header, starts } = layoutSafetensors(entries, metadata);
    this.starts = starts;
    this.layout = new Map(entries.map((e) => [e.name, e]));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
    this.fd = fs.openSync(this.tmp, 'w');
    fs.writeSync(this.fd, header, 0, header.length, 0);
  }

  write(name: string, t: StTensorInput): void {
    const want = this.layout.get(name);
    if (!want) throw fail(this.file, `tensor "${name}" is not in the layout`);
    if (want.shape.join(',') !== t.shape.join(',')) throw fail(this.file, `tensor "${name}": shape [${t.shape.join(', ')}], layout says [${want.shape.join(', ')}]`);
    this.put(name, encode(name, { ...t, dtype: want.dtype }).bytes);
  }

  /**
   * A tensor already in the layout's dtype, as little-endian bytes (a held bf16 matrix as it lies
   * in memory: nothing decoded or copied). Only where the machine is little-endian.
   */
  writeBytes(name: string, bytes: Uint8Array): void {
    const want = this.layout.get(name);
    if (!want) throw fail(this.file, `tensor "${name}" is not in the layout`);
    const size = numel(want.shape) * ITEM_BYTES[want.dtype];
    if (bytes.length !== size) throw fail(this.file, `tensor "${name}": ${bytes.length} bytes, its [${want.shape.join(', ')}] ${want.dtype} needs ${size}`);
    if (!LITTLE_ENDIAN) throw fail(this.file, `tensor "${name}": raw bytes on a big-endian machine`);
    this.put(name, bytes);
  }

  private put(name: string, bytes: Uint8Array): void {
    if (this.written.has(name)) throw fail(this.file, `tensor "${name}" written twice`);
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.starts.get(name)! + done);
    this.written.add(name);
  }

  close(): void {
    const missing = [...this.layout.keys()].filter((n) => !this.written.has(n));
    if (missing.length > 0) {
      this.abort();
      throw fail(this.file, `closed with ${missing.length} tensor(s) never written, e.g. "${missing[0]}"`);
    }
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.file);
  }

  /** Drop the half-written temp file (after an error). */
  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

/** Write `file` atomically (temp file in the same folder, then rename). */
export function writeSafetensors(
  file: string,
  tensors: Map<string, StTensorInput> | Record<string, StTensorInput>,
  metadata: Record<string, string> = {},
): void {
  // one tensor's bytes at a time: encoded whole and then laid out in one buffer, a checkpoint's
  // optimizer state was twice over the largest allocation of a real-size training run
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const dtypeOf = (t: StTensorInput): StWriteDtype => t.dtype ?? (t.data instanceof Int32Array ? 'I32' : 'F32');
  const writer = new SafetensorsFileWriter(file, [...map].map(([name, t]) => ({ name, shape: t.shape, dtype: dtypeOf(t) })), metadata);
  try {
    for (const [name, t] of map) writer.write(name, t);
    writer.close();
  } catch (e) {
    writer.abort();
    throw e;
  }
}

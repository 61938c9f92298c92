import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors, floatToBf16, floatToHalf, halfToFloat, readSafetensors, readSafetensorsHeader, writeSafetensors,
} from '../../src/model/safetensors.ts';
import { STORIES260K } from '../helpers/fixtures.ts';

const stories = STORIES260K;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hilo-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file from a header object and a data section, byte by byte as the spec says. */
function rawFile(header: unknown, data: Uint8Array, lengthOverride?: bigint): string {
  const h = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(lengthOverride ?? BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  const file = path.join(tmp, `f${Math.random().toString(36).slice(2)}.safetensors`);
  fs.writeFileSync(file, out);
  return file;
}

describe('safetensors reader', () => {
  it('reads stories260K: 47 float32 tensors, 260,032 values', () => {
    const { tensors, metadata } = readSafetensors(path.join(stories, 'model.safetensors'));
    expect(tensors.size).toBe(47);
    let n = 0;
    for (const t of tensors.values()) n += t.data.length;
    expect(n).toBe(260032);
    expect(tensors.get('model.embed_tokens.weight')!.shape).toEqual([512, 64]);
    expect(metadata).not.toBeNull();
  });

  it('decodes every dtype from hand-built bytes', () => {
    const cases: Array<[string, number[], number[]]> = [
      ['F64', [0, 0, 0, 0, 0, 0, 0xf8, 0x3f], [1.5]],
      ['F32', [0, 0, 0x20, 0xc0], [-2.5]],
      ['F16', [0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00], [1, -2, 2 ** -24]],
      ['BF16', [0x80, 0x3f, 0x40, 0xc0], [1, -3]],
      ['I64', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [-1]],
      ['I32', [0x07, 0, 0, 0], [7]],
      ['I16', [0xfe, 0xff], [-2]],
      ['I8', [0x80], [-128]],
      ['U8', [0xff], [255]],
      ['BOOL', [1, 0], [1, 0]],
    ];
    for (const [dtype, bytes, want] of cases) {
      const file = rawFile({ x: { dtype, shape: [want.length], data_offsets: [0, bytes.length] } }, new Uint8Array(bytes));
      const t = readSafetensors(file).tensors.get('x')!;
      expect([dtype, Array.from(t.data)]).toEqual([dtype, want]);
      expect(t.data instanceof Float32Array).toBe(['F64', 'F32', 'F16', 'BF16'].includes(dtype));
    }
  });

  const bad: Array<[string, () => string, RegExp]> = [
    ['a file shorter than 8 bytes', () => { const f = path.join(tmp, 'short'); fs.writeFileSync(f, Buffer.from([1, 2])); return f; }, /truncated safetensors file: 2 bytes/],
    ['an absurd header length (not allocated)', () => rawFile({}, new Uint8Array(0), 1n << 40n), /header length 1099511627776 bytes is absurd/],
    ['a header length past EOF', () => rawFile({}, new Uint8Array(0), 5000n), /runs past the end/],
    ['a header that is not JSON', () => { const f = rawFile({}, new Uint8Array(0)); const b = fs.readFileSync(f); b[8] = 0x7a; fs.writeFileSync(f, b); return f; }, /not valid JSON/],
    ['an unknown dtype', () => rawFile({ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /tensor "w": unknown dtype "F8"/],
    ['shape/bytes mismatch', () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "w": F32\[3\] needs 12 bytes/],
    ['offsets past the data (truncated)', () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /tensor "w".*run past the 8-byte data section \(truncated/],
    ['overlapping offsets', () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /tensor "b".*overlap "a"/],
    ['a gap between tensors', () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, new Uint8Array(12)), /tensor "b": gap of 4 unused bytes/],
    ['trailing bytes', () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)), /4 trailing bytes/],
    ['reversed offsets', () => rawFile({ a: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /tensor "a": bad data_offsets/],
    ['an I64 value beyond int32', () => rawFile({ n: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0])), /tensor "n": I64 value 4294967296 does not fit in int32/],
    ['a negative dimension', () => rawFile({ a: { dtype: 'U8', shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)), /tensor "a": bad shape/],
  ];
  it.each(bad)('refuses %s, naming the file', (_what, make, msg) => {
    const file = make();
    expect(() => readSafetensors(file)).toThrow(msg);
    expect(() => readSafetensors(file)).toThrow(file);
  });

  it('refuses stories260K cut short by one byte', () => {
    const bytes = fs.readFileSync(path.join(stories, 'model.safetensors'));
    const file = path.join(tmp, 'cut.safetensors');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 1));
    expect(() => readSafetensorsHeader(file)).toThrow(/run past the .*data section \(truncated file\?\)/);
  });
});

describe('safetensors writer', () => {
  it('round-trips F32/I32 with sorted keys, metadata and an 8-byte aligned header', () => {
    const file = path.join(tmp, 'rt.safetensors');
    const f = new Float32Array([1.5, -0.1, 3e-8, 65504, 1e30, -0]);
    writeSafetensors(file, { zeta: { shape: [2, 3], data: f }, alpha: { shape: [2], data: new Int32Array([-7, 2 ** 31 - 1]) }, empty: { shape: [0, 4], data: new Float32Array(0) } }, { note: 'hi' });
    const h = readSafetensorsHeader(file);
    expect(h.dataStart % 8).toBe(0);
    expect([...h.entries.keys()]).toEqual(['alpha', 'empty', 'zeta']);
    expect(h.entries.get('alpha')!.offsets).toEqual([0, 8]);
    expect(h.metadata).toEqual({ format: 'pt', note: 'hi' });
    const { tensors } = readSafetensors(file);
    expect(Array.from(tensors.get('zeta')!.data)).toEqual(Array.from(f));
    expect(tensors.get('zeta')!.shape).toEqual([2, 3]);
    expect(Array.from(tensors.get('alpha')!.data)).toEqual([-7, 2 ** 31 - 1]);
    expect(tensors.get('empty')!.shape).toEqual([0, 4]);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('encodes the same bytes as the spec layout for a small file', () => {
    const bytes = encodeSafetensors({ b: { shape: [1], data: new Float32Array([1]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    expect(header.trimEnd()).toBe('{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    expect(Array.from(bytes.subarray(8 + n))).toEqual([0, 0, 0x80, 0x3f]);
  });

  it.each([
    [1, 0x3c00, 0x3f80], [-2, 0xc000, 0xc000], [65504, 0x7bff, 0x4780], [1e6, 0x7c00, 0x4974],
    [2 ** -24, 0x0001, 0x3380], [1 + 2 ** -11, 0x3c00, 0x3f80], [1 + 3 * 2 ** -11, 0x3c02, 0x3f80], [0.1, 0x2e66, 0x3dcd],
  ])('rounds %s to half %s and bfloat16 %s (nearest even)', (x, half, bf) => {
    expect(floatToHalf(x)).toBe(half);
    expect(floatToBf16(x)).toBe(bf);
  });

  it('F16 round trip is exact for halves', () => {
    for (let h = 0; h < 0x7c00; h += 37) expect(floatToHalf(halfToFloat(h))).toBe(h);
  });
});

/**
 * float32 <-> float16 / bfloat16 bit conversions for safetensors F16/BF16 data, rounding to
 * nearest even as torch's .half() and .bfloat16() do.
 */

/** float16 bits -> float32 value (exact: every half is a float). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** One float32's bits, read through a shared cell rather than two new arrays a value (matrices call these per element). */
const ONE_F32 = new Float32Array(1);
const ONE_U32 = new Uint32Array(ONE_F32.buffer);

/** float32 -> float16 bits, round to nearest even (as torch's .half()). */
export function floatToHalf(x: number): number {
  ONE_F32[0] = x;
  const u = ONE_U32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000; // make the implicit 1 explicit, then shift into subnormal range
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

/** float32 -> bfloat16 bits, round to nearest even (as torch's .bfloat16()). */
export function floatToBf16(x: number): number {
  ONE_F32[0] = x;
  const u = ONE_U32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // keep NaN a NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 array -> bfloat16 bits (into `out` when given), element-wise as floatToBf16 but without a per-value allocation. */
export function floatsToBf16<T extends Uint16Array<ArrayBufferLike> = Uint16Array<ArrayBuffer>>(src: Float32Array, out: T = new Uint16Array(src.length) as T): T {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    // x + 0x8000 stays below 2^32 for every non-NaN pattern, so >>> never sees a wrapped sum
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) | 0x40) & 0xffff : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

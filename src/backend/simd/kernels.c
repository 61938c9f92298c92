/*
 * Fused element-wise kernels for the wasm backend, in 128-bit wasm SIMD, run in place on
 * tfjs-backend-wasm's own heap (the module imports its memory: every pointer here is a tensor's
 * offset there). Each replaces a chain of tfjs kernels that each read and wrote whole tensors:
 * inside a training step those passes run at memory speed, not compute speed.
 *
 * Built by scripts/build-simd.sh (clang --target=wasm32 -msimd128) into kernels.wasm, which is
 * committed; src/backend/wasm-simd.ts loads it and registers the tfjs kernels that call it.
 * No libc: exp is written out below (the only transcendental needed).
 */
#include <wasm_simd128.h>

typedef v128_t f4;
#define EXPORT(name) __attribute__((export_name(#name)))

static inline f4 splat(float x) { return wasm_f32x4_splat(x); }
static inline f4 add(f4 a, f4 b) { return wasm_f32x4_add(a, b); }
static inline f4 sub(f4 a, f4 b) { return wasm_f32x4_sub(a, b); }
static inline f4 mul(f4 a, f4 b) { return wasm_f32x4_mul(a, b); }

/*
 * e^x for 4 floats: x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-6 polynomial,
 * 2^n from the exponent bits. Relative error ~2e-7; inputs below -87.3 give ~e^-87.3 (not 0,
 * not a denormal), above 88.3 give e^88.3. pmin/pmax: plain minps/maxps (min/max in wasm
 * propagate NaNs, which costs several instructions each on x86).
 */
static inline f4 exp4(f4 x) {
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, splat(-87.3f)), splat(88.3f));
  const f4 magic = splat(12583039.0f); /* 1.5 * 2^23 + 127: round(x log2 e) + 127 lands in the low mantissa bits */
  f4 t = add(mul(x, splat(1.44269504088896341f)), magic);
  f4 n = sub(t, magic);
  f4 r = sub(sub(x, mul(n, splat(0.693359375f))), mul(n, splat(-2.12194440e-4f)));
  f4 p = splat(1.9875691500e-4f);
  p = add(mul(p, r), splat(1.3981999507e-3f));
  p = add(mul(p, r), splat(8.3334519073e-3f));
  p = add(mul(p, r), splat(4.1665795894e-2f));
  p = add(mul(p, r), splat(1.6666665459e-1f));
  p = add(mul(p, r), splat(5.0000001201e-1f));
  p = add(mul(mul(p, r), r), add(r, splat(1.0f)));
  return mul(p, wasm_i32x4_shl(t, 23));
}

static inline float hmax(f4 v) {
  float a = wasm_f32x4_extract_lane(v, 0), b = wasm_f32x4_extract_lane(v, 1);
  float c = wasm_f32x4_extract_lane(v, 2), d = wasm_f32x4_extract_lane(v, 3);
  a = a > b ? a : b;
  c = c > d ? c : d;
  return a > c ? a : c;
}

static inline float hsum(f4 v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* One float through exp4 (row tails). */
static inline float exp1(float x) { return wasm_f32x4_extract_lane(exp4(splat(x)), 0); }

/*
 * Softmax cross-entropy, forward: for each of the n rows of logits [n, v], its max and
 * Σ exp(l - max) (the caller takes lse = max + log(sum) and the loss lse - l[target]).
 */
EXPORT(xent_stats)
void xent_stats(const float *logits, int n, int v, float *rowMax, float *rowSum) {
  for (int i = 0; i < n; i++) {
    const float *l = logits + (long)i * v;
    int j = 0;
    f4 m4 = splat(-3.0e38f);
    for (; j + 4 <= v; j += 4) m4 = wasm_f32x4_pmax(m4, wasm_v128_load(l + j));
    float m = hmax(m4);
    for (; j < v; j++) m = l[j] > m ? l[j] : m;
    f4 s4 = splat(0.0f);
    const f4 mm = splat(m);
    for (j = 0; j + 4 <= v; j += 4) s4 = add(s4, exp4(sub(wasm_v128_load(l + j), mm)));
    float s = hsum(s4);
    for (; j < v; j++) s += exp1(l[j] - m);
    rowMax[i] = m;
    rowSum[i] = s;
  }
}

/*
 * Softmax cross-entropy, backward: d[i, j] = g[i] · (exp(l[i, j] - lse[i]) - [j == target[i]]),
 * rows with target < 0 (not counted) all zero.
 */
EXPORT(xent_grad)
void xent_grad(const float *logits, const float *lse, const int *target, const float *g, int n, int v, float *d) {
  for (int i = 0; i < n; i++) {
    const float *l = logits + (long)i * v;
    float *o = d + (long)i * v;
    int j = 0;
    if (target[i] < 0) {
      const f4 z = splat(0.0f);
      for (; j + 4 <= v; j += 4) wasm_v128_store(o + j, z);
      for (; j < v; j++) o[j] = 0.0f;
      continue;
    }
    const f4 c = splat(lse[i]), gi = splat(g[i]);
    for (; j + 4 <= v; j += 4) wasm_v128_store(o + j, mul(gi, exp4(sub(wasm_v128_load(l + j), c))));
    for (; j < v; j++) o[j] = g[i] * exp1(l[j] - lse[i]);
    o[target[i]] -= g[i];
  }
}

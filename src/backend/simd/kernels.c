/*
 * Fused element-wise kernels for the wasm backend, in 128-bit wasm SIMD, run in place on
 * tfjs-backend-wasm's own heap (the module imports its memory: every pointer here is a tensor's
 * offset there). Each replaces a chain of tfjs kernels that each read and wrote whole tensors:
 * inside a training step those passes run at memory speed, not compute speed.
 *
 * Built by scripts/build-simd.sh (clang --target=wasm32 -msimd128) into kernels.wasm, which is
 * committed; src/backend/wasm-simd.ts loads it and registers the tfjs kernels that call it.
 * No libc: exp (float) and log (double, the router z-loss's) are written out below.
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
 * 2^n from the exponent bits. Relative error ~2e-7; above 88.3 gives e^88.3. Below -69
 * (e^-69 ~ 1e-30) it gives exactly 0: a masked attention score, a far-off logit. A softmax
 * divides these by a sum of up to thousands, and e^-87 over that is a denormal; on Intel cores
 * every product with a denormal takes a microcode assist, and the probabilities times values
 * product of a masked [256,128]x[128,32] slowed from ~2 ms to ~80 ms (AMD's do not slow).
 * pmin/pmax: plain minps/maxps (min/max in wasm propagate NaNs, which costs several
 * instructions each on x86).
 */
static inline f4 exp4(f4 x) {
  const f4 keep = wasm_f32x4_ge(x, splat(-69.0f));
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, splat(-69.0f)), splat(88.3f));
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
  return wasm_v128_and(mul(p, wasm_i32x4_shl(t, 23)), keep);
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
 * Σ exp(l - max) (the caller takes lse = max + log(sum) and the loss lse - l[target]). With
 * `e` (not 0) the exps are kept there too, [n, v], for a backward that need not take them again.
 */
EXPORT(xent_stats)
void xent_stats(const float *logits, int n, int v, float *rowMax, float *rowSum, float *e) {
  for (int i = 0; i < n; i++) {
    const float *l = logits + (long)i * v;
    float *ei = e ? e + (long)i * v : 0;
    int j = 0;
    f4 m4 = splat(-3.0e38f);
    for (; j + 4 <= v; j += 4) m4 = wasm_f32x4_pmax(m4, wasm_v128_load(l + j));
    float m = hmax(m4);
    for (; j < v; j++) m = l[j] > m ? l[j] : m;
    f4 s4 = splat(0.0f);
    const f4 mm = splat(m);
    for (j = 0; j + 4 <= v; j += 4) {
      const f4 x = exp4(sub(wasm_v128_load(l + j), mm));
      if (ei) wasm_v128_store(ei + j, x);
      s4 = add(s4, x);
    }
    float s = hsum(s4);
    for (; j < v; j++) {
      const float x = exp1(l[j] - m);
      if (ei) ei[j] = x;
      s += x;
    }
    rowMax[i] = m;
    rowSum[i] = s;
  }
}

/*
 * Softmax cross-entropy, backward from the forward's kept exps e [n, v] and 1/Σ e per row:
 * d[i, j] = g[i] · (e[i, j] · inv[i] − [j == target[i]]), rows with target < 0 all zero. A
 * pass at memory speed where xent_grad takes every exp again.
 */
EXPORT(xent_grad_kept)
void xent_grad_kept(const float *e, const float *inv, const int *target, const float *g, int n, int v, float *d) {
  for (int i = 0; i < n; i++) {
    const float *ei = e + (long)i * v;
    float *o = d + (long)i * v;
    int j = 0;
    const float c = target[i] < 0 ? 0.0f : g[i] * inv[i];
    const f4 c4 = splat(c);
    for (; j + 4 <= v; j += 4) wasm_v128_store(o + j, mul(c4, wasm_v128_load(ei + j)));
    for (; j < v; j++) o[j] = c * ei[j];
    if (target[i] >= 0) o[target[i]] -= g[i];
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

/*
 * Softmax cross-entropy, backward over one block of a row's vocabulary (the LM head taken a
 * block of its rows at a time): d[i, j] = g[i] · exp(l[i, j] - lse[i]) with lse over the whole
 * vocabulary, minus g[i] where j is target[i], the label's column within this block (any other
 * value: the label lies in another block). Rows that do not count come with g[i] = 0. d may be l.
 */
EXPORT(xent_grad_block)
void xent_grad_block(const float *logits, const float *lse, const int *target, const float *g, int n, int v, float *d) {
  for (int i = 0; i < n; i++) {
    const float *l = logits + (long)i * v;
    float *o = d + (long)i * v;
    int j = 0;
    const f4 c = splat(lse[i]), gi = splat(g[i]);
    for (; j + 4 <= v; j += 4) wasm_v128_store(o + j, mul(gi, exp4(sub(wasm_v128_load(l + j), c))));
    for (; j < v; j++) o[j] = g[i] * exp1(l[j] - lse[i]);
    if (target[i] >= 0 && target[i] < v) o[target[i]] -= g[i];
  }
}

/* sigmoid(x) = 1 / (1 + e^-x) */
static inline f4 sigmoid4(f4 x) { return wasm_f32x4_div(splat(1.0f), add(splat(1.0f), exp4(wasm_f32x4_neg(x)))); }
static inline float sigmoid1(float x) { return wasm_f32x4_extract_lane(sigmoid4(splat(x)), 0); }

/* SwiGLU, forward: h = silu(g) ⊙ u = g·σ(g)·u over n values. */
EXPORT(swiglu)
void swiglu(const float *g, const float *u, int n, float *h) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    f4 x = wasm_v128_load(g + i);
    wasm_v128_store(h + i, mul(mul(x, sigmoid4(x)), wasm_v128_load(u + i)));
  }
  for (; i < n; i++) h[i] = g[i] * sigmoid1(g[i]) * u[i];
}

/*
 * SwiGLU, backward (σ recomputed: one exp is cheaper than storing and re-reading σ):
 *   dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))),  du = dh ⊙ g·σ(g)
 */
EXPORT(swiglu_grad)
void swiglu_grad(const float *dh, const float *g, const float *u, int n, float *dg, float *du) {
  int i = 0;
  const f4 one = splat(1.0f);
  for (; i + 4 <= n; i += 4) {
    f4 x = wasm_v128_load(g + i), d = wasm_v128_load(dh + i);
    f4 s = sigmoid4(x);
    wasm_v128_store(du + i, mul(d, mul(x, s)));
    wasm_v128_store(dg + i, mul(mul(d, wasm_v128_load(u + i)), mul(s, add(one, mul(x, sub(one, s))))));
  }
  for (; i < n; i++) {
    float x = g[i], s = sigmoid1(x);
    du[i] = dh[i] * (x * s);
    dg[i] = (dh[i] * u[i]) * (s * (1.0f + x * (1.0f - s)));
  }
}

/*
 * How much of a mask row of n to compute: up to its last key that is not masked (NEG, -1e9),
 * rounded up to a whole vector (the whole row when that reaches its scalar tail, or when every
 * key is masked). Past it every probability is exactly 0, so the row's sums and vectors are
 * those of the whole row.
 */
static int live_prefix(const float *mask, int n) {
  int lim = n;
  while (lim > 0 && mask[lim - 1] <= -1.0e8f) lim--;
  if (lim == 0) return n;
  lim = (lim + 3) & ~3;
  return lim > (n & ~3) ? n : lim;
}

/*
 * Attention probabilities, forward: p = softmax(scale·s + mask) over each row of k keys, for
 * rows = batch·heads·q query rows of s; the additive mask [batch, q, k] is shared by the heads
 * (and by the batch rows too, [1, q, k], when maskPerBatch is 0). Keys masked to the end of a
 * row (a causal mask's future: half of them) get p = 0 without their exp: scale·s + NEG is
 * below -69 past the row's max, which exp4 takes to exactly 0 anyway.
 */
EXPORT(attn_softmax)
void attn_softmax(const float *s, const float *mask, int batch, int heads, int q, int k, int maskPerBatch, float scale, float *p) {
  const f4 sc = splat(scale);
  for (int b = 0; b < batch; b++) {
    for (int t = 0; t < q; t++) {
      const float *m = mask + ((long)(maskPerBatch ? b : 0) * q + t) * k;
      const int n = live_prefix(m, k);
      for (int h = 0; h < heads; h++) {
        long row = ((long)(b * heads + h) * q + t) * k;
        const float *x = s + row;
        float *o = p + row;
        int j = 0;
        f4 m4 = splat(-3.0e38f);
        for (; j + 4 <= n; j += 4) {
          f4 v = add(mul(wasm_v128_load(x + j), sc), wasm_v128_load(m + j));
          wasm_v128_store(o + j, v);
          m4 = wasm_f32x4_pmax(m4, v);
        }
        float mx = hmax(m4);
        for (; j < n; j++) {
          o[j] = x[j] * scale + m[j];
          mx = o[j] > mx ? o[j] : mx;
        }
        const f4 mm = splat(mx);
        f4 s4 = splat(0.0f);
        for (j = 0; j + 4 <= n; j += 4) {
          f4 e = exp4(sub(wasm_v128_load(o + j), mm));
          wasm_v128_store(o + j, e);
          s4 = add(s4, e);
        }
        float sum = hsum(s4);
        for (; j < n; j++) {
          o[j] = exp1(o[j] - mx);
          sum += o[j];
        }
        const f4 inv = splat(1.0f / sum);
        for (j = 0; j + 4 <= n; j += 4) wasm_v128_store(o + j, mul(wasm_v128_load(o + j), inv));
        for (; j < n; j++) o[j] *= 1.0f / sum;
        for (j = n; j < k; j++) o[j] = 0.0f;
      }
    }
  }
}

/*
 * Attention probabilities, backward: ds = scale · p ⊙ (dp − Σ_j dp·p), per row of k. (Skipping
 * rows' zero tails as the forward does made it slower: finding them is a scalar scan per row.)
 */
EXPORT(attn_softmax_grad)
void attn_softmax_grad(const float *dp, const float *p, int rows, int k, float scale, float *ds) {
  for (int r = 0; r < rows; r++) {
    const float *d = dp + (long)r * k, *y = p + (long)r * k;
    float *o = ds + (long)r * k;
    int j = 0;
    f4 a4 = splat(0.0f);
    for (; j + 4 <= k; j += 4) a4 = add(a4, mul(wasm_v128_load(d + j), wasm_v128_load(y + j)));
    float dot = hsum(a4);
    for (; j < k; j++) dot += d[j] * y[j];
    const f4 c = splat(dot), sc = splat(scale);
    for (j = 0; j + 4 <= k; j += 4) wasm_v128_store(o + j, mul(sc, mul(wasm_v128_load(y + j), sub(wasm_v128_load(d + j), c))));
    for (; j < k; j++) o[j] = scale * (y[j] * (d[j] - dot));
  }
}

/* RMSNorm, forward: y = x · r · w with r = 1/sqrt(mean(x²) + eps) per row of h; r is written too. */
EXPORT(rms_norm)
void rms_norm(const float *x, const float *w, int n, int h, float eps, float *y, float *r) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (long)i * h;
    float *yi = y + (long)i * h;
    int j = 0;
    f4 a4 = splat(0.0f);
    for (; j + 4 <= h; j += 4) {
      f4 v = wasm_v128_load(xi + j);
      a4 = add(a4, mul(v, v));
    }
    float ss = hsum(a4);
    for (; j < h; j++) ss += xi[j] * xi[j];
    float ri = 1.0f / __builtin_sqrtf(ss / (float)h + eps);
    r[i] = ri;
    const f4 r4 = splat(ri);
    for (j = 0; j + 4 <= h; j += 4) wasm_v128_store(yi + j, mul(mul(wasm_v128_load(xi + j), r4), wasm_v128_load(w + j)));
    for (; j < h; j++) yi[j] = (xi[j] * ri) * w[j];
  }
}

/* RMSNorm, backward (frozen w): g = w ⊙ dy, dx = r·g − x · r³ · mean(g ⊙ x), per row. */
EXPORT(rms_norm_grad)
void rms_norm_grad(const float *dy, const float *x, const float *w, const float *r, int n, int h, float *dx) {
  for (int i = 0; i < n; i++) {
    const float *d = dy + (long)i * h, *xi = x + (long)i * h;
    float *o = dx + (long)i * h;
    int j = 0;
    f4 a4 = splat(0.0f);
    for (; j + 4 <= h; j += 4) a4 = add(a4, mul(mul(wasm_v128_load(w + j), wasm_v128_load(d + j)), wasm_v128_load(xi + j)));
    float dot = hsum(a4);
    for (; j < h; j++) dot += (w[j] * d[j]) * xi[j];
    const float ri = r[i], c = (dot / (float)h) * (ri * ri * ri);
    const f4 r4 = splat(ri), c4 = splat(c);
    for (j = 0; j + 4 <= h; j += 4) {
      f4 g = mul(wasm_v128_load(w + j), wasm_v128_load(d + j));
      wasm_v128_store(o + j, sub(mul(g, r4), mul(wasm_v128_load(xi + j), c4)));
    }
    for (; j < h; j++) o[j] = (w[j] * d[j]) * ri - xi[j] * c;
  }
}

/*
 * LayerNorm, forward, per row of x [n, h] (GPT-2's): mean, then the biased variance of x - mean
 * (two passes, as tf.moments), r = 1/sqrt(var + eps), y = (x - mean)·r·w + b. Hands the backward
 * each row's mean and r.
 */
EXPORT(layer_norm)
void layer_norm(const float *x, const float *w, const float *b, int n, int h, float eps, float *y, float *mean, float *r) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (long)i * h;
    float *yi = y + (long)i * h;
    int j = 0;
    f4 s4 = splat(0.0f);
    for (; j + 4 <= h; j += 4) s4 = add(s4, wasm_v128_load(xi + j));
    float s = hsum(s4);
    for (; j < h; j++) s += xi[j];
    const float mi = s / (float)h;
    const f4 m4 = splat(mi);
    f4 q4 = splat(0.0f);
    for (j = 0; j + 4 <= h; j += 4) {
      f4 d = sub(wasm_v128_load(xi + j), m4);
      q4 = add(q4, mul(d, d));
    }
    float q = hsum(q4);
    for (; j < h; j++) q += (xi[j] - mi) * (xi[j] - mi);
    const float ri = 1.0f / __builtin_sqrtf(q / (float)h + eps);
    mean[i] = mi;
    r[i] = ri;
    const f4 r4 = splat(ri);
    for (j = 0; j + 4 <= h; j += 4) {
      f4 xhat = mul(sub(wasm_v128_load(xi + j), m4), r4);
      wasm_v128_store(yi + j, add(mul(xhat, wasm_v128_load(w + j)), wasm_v128_load(b + j)));
    }
    for (; j < h; j++) yi[j] = ((xi[j] - mi) * ri) * w[j] + b[j];
  }
}

/*
 * LayerNorm, backward: with x̂ = (x - mean)·r and g = w ⊙ dy, per row
 *   dx = r·(g - mean(g) - x̂·mean(g ⊙ x̂)),
 * and over the rows dw = Σ dy ⊙ x̂, db = Σ dy (written whole: the outputs need not start at 0).
 */
EXPORT(layer_norm_grad)
void layer_norm_grad(const float *dy, const float *x, const float *w, const float *mean, const float *r, int n, int h, float *dx, float *dw, float *db) {
  for (int j = 0; j < h; j++) dw[j] = db[j] = 0.0f;
  for (int i = 0; i < n; i++) {
    const float *d = dy + (long)i * h, *xi = x + (long)i * h;
    float *o = dx + (long)i * h;
    const f4 m4 = splat(mean[i]), r4 = splat(r[i]);
    int j = 0;
    f4 g4 = splat(0.0f), gx4 = splat(0.0f);
    for (; j + 4 <= h; j += 4) {
      f4 dv = wasm_v128_load(d + j);
      f4 g = mul(wasm_v128_load(w + j), dv);
      f4 xhat = mul(sub(wasm_v128_load(xi + j), m4), r4);
      g4 = add(g4, g);
      gx4 = add(gx4, mul(g, xhat));
      wasm_v128_store(dw + j, add(wasm_v128_load(dw + j), mul(dv, xhat)));
      wasm_v128_store(db + j, add(wasm_v128_load(db + j), dv));
    }
    float gs = hsum(g4), gxs = hsum(gx4);
    for (; j < h; j++) {
      const float g = w[j] * d[j], xhat = (xi[j] - mean[i]) * r[i];
      gs += g;
      gxs += g * xhat;
      dw[j] += d[j] * xhat;
      db[j] += d[j];
    }
    const f4 gm4 = splat(gs / (float)h), gxm4 = splat(gxs / (float)h);
    for (j = 0; j + 4 <= h; j += 4) {
      f4 g = mul(wasm_v128_load(w + j), wasm_v128_load(d + j));
      f4 xhat = mul(sub(wasm_v128_load(xi + j), m4), r4);
      wasm_v128_store(o + j, mul(r4, sub(sub(g, gm4), mul(xhat, gxm4))));
    }
    for (; j < h; j++) {
      const float g = w[j] * d[j], xhat = (xi[j] - mean[i]) * r[i];
      o[j] = r[i] * ((g - gs / (float)h) - xhat * (gxs / (float)h));
    }
  }
}

/*
 * Rotary embedding over x [batch, t, heads, d]: y_i = x_i·cos_i + x_{σ(i)}·sinRot_i, σ swapping
 * the halves of a head (HF rotate_half, its sign folded into sinRot). The tables are [rows, d]:
 * rows = t (the same positions in every batch row) or batch·t (position ids). With `back` set
 * it is the gradient instead: dx_i = dy_i·cos_i + dy_{σ(i)}·sinRot_{σ(i)}.
 */
EXPORT(rope)
void rope(const float *x, const float *cos, const float *sinRot, int batch, int t, int heads, int d, int perBatch, int back, float *y) {
  const int half = d / 2;
  for (int b = 0; b < batch; b++) {
    for (int p = 0; p < t; p++) {
      const long trow = (long)(perBatch ? b * t + p : p) * d;
      const float *c = cos + trow, *s = sinRot + trow;
      for (int h = 0; h < heads; h++) {
        const long o = (((long)b * t + p) * heads + h) * d;
        const float *xi = x + o;
        float *yi = y + o;
        int j = 0;
        if (!back) {
          for (; j + 4 <= half; j += 4) {
            f4 lo = wasm_v128_load(xi + j), hi = wasm_v128_load(xi + half + j);
            wasm_v128_store(yi + j, add(mul(lo, wasm_v128_load(c + j)), mul(hi, wasm_v128_load(s + j))));
            wasm_v128_store(yi + half + j, add(mul(hi, wasm_v128_load(c + half + j)), mul(lo, wasm_v128_load(s + half + j))));
          }
          for (; j < half; j++) {
            yi[j] = xi[j] * c[j] + xi[half + j] * s[j];
            yi[half + j] = xi[half + j] * c[half + j] + xi[j] * s[half + j];
          }
        } else {
          for (; j + 4 <= half; j += 4) {
            f4 lo = wasm_v128_load(xi + j), hi = wasm_v128_load(xi + half + j);
            wasm_v128_store(yi + j, add(mul(lo, wasm_v128_load(c + j)), mul(hi, wasm_v128_load(s + half + j))));
            wasm_v128_store(yi + half + j, add(mul(hi, wasm_v128_load(c + half + j)), mul(lo, wasm_v128_load(s + j))));
          }
          for (; j < half; j++) {
            yi[j] = xi[j] * c[j] + xi[half + j] * s[half + j];
            yi[half + j] = xi[half + j] * c[half + j] + xi[j] * s[j];
          }
        }
      }
    }
  }
}

/*
 * Products with a narrow side: a router's logits and their gradients, [N, K] against [K, E] with
 * E a few experts. OpenBLAS packs the whole [N, K] operand for each of these (most of their
 * time); here each is one pass over it.
 */

/* out [n, e] = x [n, k] · w [k, e], out's rows ldo apart */
EXPORT(narrow_mm)
void narrow_mm(const float *x, const float *w, int n, int k, int e, float *out, int ldo) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (long)i * k;
    float *o = out + (long)i * ldo;
    int c = 0;
    for (; c + 4 <= e; c += 4) {
      f4 acc = splat(0.0f);
      for (int j = 0; j < k; j++) acc = add(acc, mul(splat(xi[j]), wasm_v128_load(w + (long)j * e + c)));
      wasm_v128_store(o + c, acc);
    }
    for (; c < e; c++) {
      float acc = 0.0f;
      for (int j = 0; j < k; j++) acc += xi[j] * w[(long)j * e + c];
      o[c] = acc;
    }
  }
}

/* dw [k, e] = x [n, k]ᵀ · d [n, e], d's rows ldd apart */
EXPORT(narrow_mm_tn)
void narrow_mm_tn(const float *x, const float *d, int ldd, int n, int k, int e, float *dw) {
  for (long j = 0; j < (long)k * e; j++) dw[j] = 0.0f;
  for (int i = 0; i < n; i++) {
    const float *xi = x + (long)i * k, *di = d + (long)i * ldd;
    int c = 0;
    for (; c + 4 <= e; c += 4) {
      const f4 dv = wasm_v128_load(di + c);
      for (int j = 0; j < k; j++) {
        float *p = dw + (long)j * e + c;
        wasm_v128_store(p, add(wasm_v128_load(p), mul(splat(xi[j]), dv)));
      }
    }
    for (; c < e; c++) {
      const float dc = di[c];
      for (int j = 0; j < k; j++) dw[(long)j * e + c] += xi[j] * dc;
    }
  }
}

/* dx [n, k] = d [n, e] · w [k, e]ᵀ, from wT [e, k] (w transposed by the caller) */
EXPORT(narrow_mm_nt)
void narrow_mm_nt(const float *d, const float *wT, int n, int k, int e, float *dx) {
  for (int i = 0; i < n; i++) {
    const float *di = d + (long)i * e;
    float *o = dx + (long)i * k;
    int j = 0;
    for (; j + 4 <= k; j += 4) {
      f4 acc = splat(0.0f);
      for (int c = 0; c < e; c++) acc = add(acc, mul(splat(di[c]), wasm_v128_load(wT + (long)c * k + j)));
      wasm_v128_store(o + j, acc);
    }
    for (; j < k; j++) {
      float acc = 0.0f;
      for (int c = 0; c < e; c++) acc += di[c] * wT[(long)c * k + j];
      o[j] = acc;
    }
  }
}

/*
 * A mixture's gating (src/backend/wasm-experts.ts, gateColumns there in JS): out[n, j] = s·src[n, j]
 * with s = scale·gates[n, ⌊j/r⌋] (scale alone without gates) over rows × er columns, r per expert.
 * With dg (and h): dg[n, e] = scale·Σ_{j in e} src·h as well. src and h have rows lds apart, out
 * ldo apart (a block of a wider matrix: [h | l]); gates and dg are [rows, er/r]. Null pointers are 0.
 */
/* [Σ a, Σ b, Σ c, Σ d] of four vectors' lanes, each as ((0 + 2) + (1 + 3)). */
static inline f4 hsum4(f4 a, f4 b, f4 c, f4 d) {
  const f4 ab = add(wasm_i32x4_shuffle(a, b, 0, 1, 4, 5), wasm_i32x4_shuffle(a, b, 2, 3, 6, 7));
  const f4 cd = add(wasm_i32x4_shuffle(c, d, 0, 1, 4, 5), wasm_i32x4_shuffle(c, d, 2, 3, 6, 7));
  return add(wasm_i32x4_shuffle(ab, cd, 0, 2, 4, 6), wasm_i32x4_shuffle(ab, cd, 1, 3, 5, 7));
}

/* fround(scale·x) for 4 floats, the product taken in double as the scalar path does. */
static inline f4 scale4(f4 x, double scale) {
  const v128_t s = wasm_f64x2_splat(scale);
  const v128_t lo = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(x), s);
  const v128_t hi = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(x, x, 2, 3, 0, 1)), s);
  return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/*
 * gate_columns for 4 experts of a rank that is a multiple of 4 (hilo's MoE: r = 8): a row's
 * gates, scales and dg as vectors (the loop below took ~12 µs each way for 512 rows of 4 x 8).
 */
static inline f4 gate_block(const float *si, const float *hi, float *oi, int r, f4 se) {
  f4 a4 = splat(0.0f);
  for (int j = 0; j < r; j += 4) {
    const f4 v = wasm_v128_load(si + j);
    if (hi) a4 = add(a4, mul(v, wasm_v128_load(hi + j)));
    wasm_v128_store(oi + j, mul(se, v));
  }
  return a4;
}

/* One row of gate_columns4: oi = si ⊙ scale·g per expert's r columns; returns the row's dg (with hi). */
static inline f4 gate_row4(const float *si, const float *hi, float *oi, int r, const float *gi, double scale) {
  const f4 s = scale4(wasm_v128_load(gi), scale);
  const f4 a0 = gate_block(si, hi, oi, r, wasm_i32x4_shuffle(s, s, 0, 0, 0, 0));
  const f4 a1 = gate_block(si + r, hi ? hi + r : 0, oi + r, r, wasm_i32x4_shuffle(s, s, 1, 1, 1, 1));
  const f4 a2 = gate_block(si + 2 * r, hi ? hi + 2 * r : 0, oi + 2 * r, r, wasm_i32x4_shuffle(s, s, 2, 2, 2, 2));
  const f4 a3 = gate_block(si + 3 * r, hi ? hi + 3 * r : 0, oi + 3 * r, r, wasm_i32x4_shuffle(s, s, 3, 3, 3, 3));
  return scale4(hsum4(a0, a1, a2, a3), scale);
}

static void gate_columns4(const float *src, int lds, float *out, int ldo, const float *gates, int rows, int r, double scale, const float *h, float *dg) {
  for (int n = 0; n < rows; n++) {
    const f4 d = gate_row4(src + (long)n * lds, h ? h + (long)n * lds : 0, out + (long)n * ldo, r, gates + 4L * n, scale);
    if (dg) wasm_v128_store(dg + 4L * n, d);
  }
}

EXPORT(gate_columns)
void gate_columns(const float *src, int lds, float *out, int ldo, const float *gates, int rows, int er, int r, double scale, const float *h, float *dg) {
  const int experts = er / r;
  if (gates && experts == 4 && r % 4 == 0 && (!dg || h)) {
    gate_columns4(src, lds, out, ldo, gates, rows, r, scale, dg ? h : 0, dg);
    return;
  }
  const float plain = (float)scale;
  for (int n = 0; n < rows; n++) {
    for (int e = 0; e < experts; e++) {
      const long ne = (long)n * experts + e, si = (long)n * lds + (long)e * r, oi = (long)n * ldo + (long)e * r;
      const float s = gates ? (float)(scale * (double)gates[ne]) : plain;
      const f4 s4 = splat(s);
      int j = 0;
      if (dg) {
        f4 a4 = splat(0.0f);
        float acc = 0.0f;
        for (; j + 4 <= r; j += 4) {
          f4 v = wasm_v128_load(src + si + j);
          a4 = add(a4, mul(v, wasm_v128_load(h + si + j)));
          wasm_v128_store(out + oi + j, mul(s4, v));
        }
        for (; j < r; j++) {
          acc += src[si + j] * h[si + j];
          out[oi + j] = s * src[si + j];
        }
        dg[ne] = (float)(scale * (double)(hsum(a4) + acc));
        continue;
      }
      for (; j + 4 <= r; j += 4) wasm_v128_store(out + oi + j, mul(s4, wasm_v128_load(src + si + j)));
      for (; j < r; j++) out[oi + j] = s * src[si + j];
    }
  }
}

/*
 * bfloat16 -> float32 over n values: a bf16 is a float32's top half. The frozen products
 * (src/backend/wasm-frozen.ts) copy a block of stored rows into the heap and widen it here,
 * several values an instruction where decodeRows' JS loop does one. In place when src is the upper half of dst's 4n bytes
 * (src = dst + 2n bytes): each step loads 8 values before it stores them, and its stores end
 * at or below where the loads still to come begin.
 */
EXPORT(widen_bf16)
void widen_bf16(const unsigned short *src, unsigned *dst, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v128_t v = wasm_v128_load(src + i);
    v128_t lo = wasm_u32x4_extend_low_u16x8(v), hi = wasm_u32x4_extend_high_u16x8(v);
    wasm_v128_store(dst + i, wasm_i32x4_shl(lo, 16));
    wasm_v128_store(dst + i + 4, wasm_i32x4_shl(hi, 16));
  }
  for (; i < n; i++) dst[i] = (unsigned)src[i] << 16;
}

/*
 * dst[i, 0..cols) = src[i, 0..cols) for `rows` rows, each matrix with its own leading dimension:
 * puts blocks side by side ([A | Wr], [dh | dl]) and takes them apart again.
 */
EXPORT(copy_block)
void copy_block(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
  for (int i = 0; i < rows; i++) {
    float *d = dst + (long)i * ldd;
    const float *s = src + (long)i * lds;
    int j = 0;
    for (; j + 4 <= cols; j += 4) wasm_v128_store(d + j, wasm_v128_load(s + j));
    for (; j < cols; j++) d[j] = s[j];
  }
}

/* Σ of the 4 lanes in order ((a + b) + c) + d, as route_topk's loops add. */
static inline float sum_in_order(f4 v) {
  return ((wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + wasm_f32x4_extract_lane(v, 2)) + wasm_f32x4_extract_lane(v, 3);
}

/*
 * route_topk for 4 experts, one row a vector (the common MoE width; the loop below took ~90 ns
 * a row, ~48 us a module at 512 rows). Expert c is selected when fewer than k experts beat it:
 * a larger logit, or an equal one at a lower index, which is the loop's choice (ties to the
 * lower index, as torch.topk).
 */
static inline void route4_row(const float *li, v128_t K, float *p, float *m, float *gates, float *total) {
  const v128_t lower1 = wasm_i32x4_make(0, 0, 0, -1); /* lanes c where (c + r) % 4 < c, rotation r */
  const v128_t lower2 = wasm_i32x4_make(0, 0, -1, -1);
  const v128_t lower3 = wasm_i32x4_make(0, -1, -1, -1);
  const f4 x = wasm_v128_load(li);
  const f4 r1 = wasm_i32x4_shuffle(x, x, 1, 2, 3, 0), r2 = wasm_i32x4_shuffle(x, x, 2, 3, 0, 1), r3 = wasm_i32x4_shuffle(x, x, 3, 0, 1, 2);
  const f4 mx = wasm_f32x4_pmax(wasm_f32x4_pmax(x, r1), wasm_f32x4_pmax(r2, r3));
  /* how many of the others beat each expert (comparisons are -1 where true) */
  v128_t beaten = wasm_i32x4_splat(0);
  beaten = wasm_i32x4_sub(beaten, wasm_v128_or(wasm_f32x4_gt(r1, x), wasm_v128_and(wasm_f32x4_eq(r1, x), lower1)));
  beaten = wasm_i32x4_sub(beaten, wasm_v128_or(wasm_f32x4_gt(r2, x), wasm_v128_and(wasm_f32x4_eq(r2, x), lower2)));
  beaten = wasm_i32x4_sub(beaten, wasm_v128_or(wasm_f32x4_gt(r3, x), wasm_v128_and(wasm_f32x4_eq(r3, x), lower3)));
  const f4 mi = wasm_v128_and(wasm_i32x4_lt(beaten, K), splat(1.0f));
  f4 pi = exp4(sub(x, mx));
  pi = mul(pi, splat(1.0f / sum_in_order(pi)));
  const f4 kept = mul(pi, mi);
  const float t = sum_in_order(kept);
  wasm_v128_store(p, pi);
  wasm_v128_store(m, mi);
  wasm_v128_store(gates, wasm_f32x4_div(kept, splat(t)));
  *total = t;
}

static void route_top4(const float *l, int ldl, int n, int k, float *p, float *m, float *gates, float *total) {
  const v128_t K = wasm_i32x4_splat(k);
  for (int i = 0; i < n; i++) route4_row(l + (long)ldl * i, K, p + 4L * i, m + 4L * i, gates + 4L * i, total + i);
}

/*
 * Top-k routing of router logits l [n, e], rows ldl apart (src/adapters/routing.ts has the same
 * in JS: softmaxRows, selectRows, gatesRows): p = softmax of each row, m = 1 on its k largest
 * logits (ties to the lower index, as torch.topk), total = Σ_e p⊙m and gates = p⊙m / total.
 */
EXPORT(route_topk)
void route_topk(const float *l, int ldl, int n, int e, int k, float *p, float *m, float *gates, float *total) {
  if (e == 4) {
    route_top4(l, ldl, n, k, p, m, gates, total);
    return;
  }
  for (int i = 0; i < n; i++) {
    const float *li = l + (long)i * ldl;
    float *pi = p + (long)i * e, *mi = m + (long)i * e, *gi = gates + (long)i * e;
    float mx = li[0];
    for (int c = 1; c < e; c++) mx = li[c] > mx ? li[c] : mx;
    float sum = 0.0f;
    for (int c = 0; c < e; c++) sum += (pi[c] = exp1(li[c] - mx));
    const float inv = 1.0f / sum;
    for (int c = 0; c < e; c++) pi[c] *= inv, mi[c] = 0.0f;
    for (int t = 0; t < k && t < e; t++) { /* the t-th largest not yet taken */
      int best = -1;
      for (int c = 0; c < e; c++) if (mi[c] == 0.0f && (best < 0 || li[c] > li[best])) best = c;
      mi[best] = 1.0f;
    }
    float kept = 0.0f;
    for (int c = 0; c < e; c++) kept += pi[c] * mi[c];
    total[i] = kept;
    for (int c = 0; c < e; c++) gi[c] = pi[c] * mi[c] / kept;
  }
}

/*
 * The routing's backward (gatesGradRows in JS) plus the logits' other gradient `extra` (the
 * router losses'; null for none): dp = m ⊙ (dg − Σ_e dg⊙g) / total, dl = p ⊙ (dp − Σ_e dp⊙p) + extra.
 * dl's rows are ldl apart (a block of [dh | dl]); the rest are [n, e].
 */
/* gates_grad for one row of 4 experts, given its dg: the row's dl before any `extra`. */
static inline f4 gates_grad4_row(f4 dg4, const float *p, const float *gates, const float *m, float total) {
  const f4 p4 = wasm_v128_load(p);
  const f4 dgg = splat(sum_in_order(mul(dg4, wasm_v128_load(gates))));
  const f4 dp = wasm_f32x4_div(mul(wasm_v128_load(m), sub(dg4, dgg)), splat(total));
  const f4 dpp = splat(sum_in_order(mul(dp, p4)));
  return mul(p4, sub(dp, dpp));
}

EXPORT(gates_grad)
void gates_grad(const float *dg, const float *p, const float *gates, const float *m, const float *total, const float *extra, int n, int e, float *dl, int ldl) {
  if (e == 4) { /* a row a vector, the same operations in the same order as the loop below */
    for (int i = 0; i < n; i++) {
      f4 d = gates_grad4_row(wasm_v128_load(dg + 4L * i), p + 4L * i, gates + 4L * i, m + 4L * i, total[i]);
      if (extra) d = add(d, wasm_v128_load(extra + 4L * i));
      wasm_v128_store(dl + (long)i * ldl, d);
    }
    return;
  }
  for (int i = 0; i < n; i++) {
    const long o = (long)i * e, d = (long)i * ldl;
    float dgg = 0.0f;
    for (int c = 0; c < e; c++) dgg += dg[o + c] * gates[o + c];
    float dpp = 0.0f;
    for (int c = 0; c < e; c++) dpp += m[o + c] * (dg[o + c] - dgg) / total[i] * p[o + c];
    for (int c = 0; c < e; c++) {
      const float dp = m[o + c] * (dg[o + c] - dgg) / total[i];
      dl[d + c] = p[o + c] * (dp - dpp) + (extra ? extra[o + c] : 0.0f);
    }
  }
}

/* ln x for a positive finite double: x = 2^k·m, m in [√½, √2), ln m = 2 atanh((m−1)/(m+1)) by its series (|s| <= 0.172: ~1e-15). */
static double log_d(double x) {
  const v128_t bits = wasm_f64x2_splat(x);
  long long u = wasm_i64x2_extract_lane(bits, 0);
  int k = (int)((u >> 52) & 0x7ff) - 1023;
  double m = wasm_f64x2_extract_lane(wasm_i64x2_splat((u & 0x000fffffffffffffLL) | 0x3ff0000000000000LL), 0);
  if (m > 1.4142135623730951) m *= 0.5, k += 1;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  const double t = s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 + s2 / 15))))));
  return k * 0.6931471805599453 + 2.0 * s * (1.0 + t);
}

/* logsumexp of row li [e] (the z-loss's), in double over exp1's floats. */
static double row_lse(const float *li, int e) {
  float mx = li[0];
  for (int c = 1; c < e; c++) mx = li[c] > mx ? li[c] : mx;
  double sum = 0.0;
  for (int c = 0; c < e; c++) sum += (double)exp1(li[c] - mx);
  return (double)mx + log_d(sum);
}

/*
 * A routed module's router losses (routerAuxStats in src/adapters/routing.ts, the same in JS):
 *   balance = cb·E·Σ_e f_e·P_e,  z = cz·Σ_n w_n·lse_n² / W
 * with token weights w (null: all 1), W = Σ w, f_e the share of the selections m that went to
 * expert e, P_e = Σ_n w_n·p_ne / W. l: logits, rows ldl apart; m, p: [n, e]. work: 2e doubles of
 * scratch. out: f [e], then the losses' value, then W (floats).
 */
/*
 * router_aux_stats' last part, from its sums over the rows: perExpert[e] = Σ w·m, meanP[e] =
 * Σ w·p, W = Σ w (n without weights) and z = Σ w·lse² (z-loss only).
 */
static void router_aux_finish(const double *perExpert, const double *meanP, double W, double z, int e, double cb, double cz, float *out) {
  double selected = 0.0;
  for (int c = 0; c < e; c++) selected += perExpert[c];
  selected = selected > 1e-9 ? selected : 1e-9;
  for (int c = 0; c < e; c++) out[c] = (float)(perExpert[c] / selected);
  double value = 0.0;
  if (cb > 0) {
    double fp = 0.0;
    for (int c = 0; c < e; c++) fp += (double)out[c] * meanP[c];
    value += cb * e * fp / W;
  }
  if (cz > 0) value += cz * z / W;
  out[e] = (float)value;
  out[e + 1] = (float)W;
}

/*
 * One row's part of router_aux_stats' sums: perExpert += w·m, meanP += w·p over its experts;
 * returns its z-loss term w·lse² (0 without the z-loss).
 */
static inline double router_aux_row(const float *li, const float *mi, const float *pi, double wi, int e, double cz, double *perExpert, double *meanP) {
  for (int c = 0; c < e; c++) perExpert[c] += mi[c] * wi, meanP[c] += pi[c] * wi;
  if (cz <= 0) return 0.0;
  const double lse = row_lse(li, e);
  return lse * lse * wi;
}

EXPORT(router_aux_stats)
void router_aux_stats(const float *l, int ldl, const float *m, const float *p, const float *w, int n, int e, double cb, double cz, double *work, float *out) {
  double *perExpert = work, *meanP = work + e;
  for (int c = 0; c < 2 * e; c++) work[c] = 0.0;
  double W = n;
  if (w) {
    W = 0.0;
    for (int i = 0; i < n; i++) W += w[i];
    W = W > 1e-9 ? W : 1e-9;
  }
  double z = 0.0;
  for (int i = 0; i < n; i++) z += router_aux_row(l + (long)i * ldl, m + (long)i * e, p + (long)i * e, w ? w[i] : 1.0, e, cz, perExpert, meanP);
  router_aux_finish(perExpert, meanP, W, z, e, cb, cz, out);
}

/*
 * dl += dy·∂(router losses)/∂l (addRouterAuxGrad in JS), from router_aux_stats' `stats` (f, value,
 * W) and the p, w it was given: per token t_n = dy·w_n/W and b_e = cb·E·f_e,
 *   dl[n, e] += p_ne·(t_n·b_e − Σ_c t_n·b_c·p_nc) + p_ne·2·cz·t_n·lse_n.
 * dl and l have rows ldd and ldl apart.
 */
/* router_aux_grad on one row: di, li, pi its dl, logits and p; wi its token weight. */
static inline void router_aux_grad_row(float *di, const float *li, const float *pi, double wi, const float *stats, int e, double cb, double cz, double dy) {
  const double W = stats[e + 1];
  const double perToken = dy * wi / W;
  double dpp = 0.0;
  if (cb > 0) for (int c = 0; c < e; c++) dpp += perToken * (cb * e * stats[c]) * pi[c];
  const double z = cz > 0 ? perToken * 2.0 * cz * row_lse(li, e) : 0.0;
  for (int c = 0; c < e; c++) di[c] += (float)((cb > 0 ? pi[c] * (perToken * (cb * e * stats[c]) - dpp) : 0.0) + pi[c] * z);
}

EXPORT(router_aux_grad)
void router_aux_grad(float *dl, int ldd, const float *l, int ldl, const float *p, const float *w, const float *stats, int n, int e, double cb, double cz, double dy) {
  for (int i = 0; i < n; i++) router_aux_grad_row(dl + (long)i * ldd, l + (long)i * ldl, p + (long)i * e, w ? w[i] : 1.0, stats, e, cb, cz, dy);
}

/*
 * A routed module's routing, router-loss sums and gating for 4 experts of a rank r that is a
 * multiple of 4 (hilo's MoE), in one pass over the rows instead of route_topk, router_aux_stats
 * and gate_columns one after the other, with the same operations in the same order: the same
 * bits. hl [n, C]: h (4r columns) then the logits (4), rows C apart. Writes gated [n, 4r], p, m,
 * gates [n, 4], total [n] and stats as router_aux_stats does (work: 8 doubles of scratch).
 */
EXPORT(routed_forward4)
void routed_forward4(const float *hl, int C, int n, int r, int k, double scale, float *gated, float *p, float *m, float *gates, float *total,
                     const float *w, double cb, double cz, double *work, float *stats) {
  const int e = 4, er = 4 * r;
  const v128_t K = wasm_i32x4_splat(k);
  double *perExpert = work, *meanP = work + e;
  for (int c = 0; c < 2 * e; c++) work[c] = 0.0;
  double W = 0.0, z = 0.0;
  for (int i = 0; i < n; i++) {
    const float *hi = hl + (long)i * C, *li = hi + er;
    float *pi = p + 4L * i, *mi = m + 4L * i, *gi = gates + 4L * i;
    route4_row(li, K, pi, mi, gi, total + i);
    if (w) W += w[i];
    z += router_aux_row(li, mi, pi, w ? w[i] : 1.0, e, cz, perExpert, meanP);
    gate_row4(hi, 0, gated + (long)i * er, r, gi, scale);
  }
  W = w ? (W > 1e-9 ? W : 1e-9) : n;
  router_aux_finish(perExpert, meanP, W, z, e, cb, cz, stats);
}

/*
 * Its backward, in one pass over the rows instead of gate_columns (with dg), gates_grad and
 * router_aux_grad: dhl [n, C] holds dH = dD·Bᵀ in its first 4r columns on entry; on return
 * [dh | dl], dl with the router losses' gradient when dy is not 0. hl, p, m, gates, total, w and
 * stats as the forward left them.
 */
EXPORT(routed_backward4)
void routed_backward4(float *dhl, int C, const float *hl, int n, int r, double scale, const float *p, const float *m, const float *gates, const float *total,
                      const float *w, const float *stats, double cb, double cz, double dy) {
  const int er = 4 * r;
  for (int i = 0; i < n; i++) {
    float *di = dhl + (long)i * C;
    const float *hi = hl + (long)i * C;
    const f4 dg = gate_row4(di, hi, di, r, gates + 4L * i, scale);
    wasm_v128_store(di + er, gates_grad4_row(dg, p + 4L * i, gates + 4L * i, m + 4L * i, total[i]));
    if (dy != 0.0) router_aux_grad_row(di + er, hi + er, p + 4L * i, w ? w[i] : 1.0, stats, 4, cb, cz, dy);
  }
}

/*
 * AdamW's update of one parameter (adamwUpdate in src/train/adamw.ts is the same in JS, and
 * webgpu-adamw.ts on the GPU), in f32, torch.optim.AdamW's order:
 *   g = s·G;  m' = b1 m + (1-b1) g;  v' = b2 v + (1-b2) g²;
 *   p' = p·decay − stepSize·m' / (sqrt(v')/sqrtBc2 + eps)
 * with decay = 1 − lr·wd, stepSize = lr/(1 − b1^t), sqrtBc2 = sqrt(1 − b2^t). Each output may be
 * its input.
 */
EXPORT(adamw)
void adamw(const float *p, const float *g, const float *m, const float *v, int n, float b1, float b2, float eps,
           float decay, float stepSize, float sqrtBc2, float s, float *p1, float *m1, float *v1) {
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  const f4 B1 = splat(b1), B2 = splat(b2), C1 = splat(c1), C2 = splat(c2), E = splat(eps), D = splat(decay),
           S = splat(stepSize), Q = splat(sqrtBc2), G = splat(s);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const f4 gi = mul(wasm_v128_load(g + i), G);
    const f4 mi = add(mul(B1, wasm_v128_load(m + i)), mul(C1, gi));
    const f4 vi = add(mul(B2, wasm_v128_load(v + i)), mul(C2, mul(gi, gi)));
    const f4 denom = add(wasm_f32x4_div(wasm_f32x4_sqrt(vi), Q), E);
    const f4 pi = sub(mul(wasm_v128_load(p + i), D), wasm_f32x4_div(mul(S, mi), denom));
    wasm_v128_store(m1 + i, mi);
    wasm_v128_store(v1 + i, vi);
    wasm_v128_store(p1 + i, pi);
  }
  for (; i < n; i++) {
    const float gi = g[i] * s;
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * gi * gi;
    const float pi = p[i] * decay - stepSize * mi / (__builtin_sqrtf(vi) / sqrtBc2 + eps);
    m1[i] = mi, v1[i] = vi, p1[i] = pi;
  }
}

/* Σ x² over n floats, in double (as globalNormOf in src/train/clip.ts): the gradient clip's norm. */
EXPORT(sum_squares)
double sum_squares(const float *x, int n) {
  v128_t lo = wasm_f64x2_splat(0.0), hi = wasm_f64x2_splat(0.0);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const f4 a = wasm_v128_load(x + i);
    const v128_t a0 = wasm_f64x2_promote_low_f32x4(a);
    const v128_t a1 = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1));
    lo = wasm_f64x2_add(lo, wasm_f64x2_mul(a0, a0));
    hi = wasm_f64x2_add(hi, wasm_f64x2_mul(a1, a1));
  }
  const v128_t t = wasm_f64x2_add(lo, hi);
  double sum = wasm_f64x2_extract_lane(t, 0) + wasm_f64x2_extract_lane(t, 1);
  for (; i < n; i++) sum += (double)x[i] * x[i];
  return sum;
}

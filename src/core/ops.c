#include "core/ops.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/quant.h"
#include "core/status.h"

void meshlm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void meshlm_softmax(float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* e^x as the vector forms below compute it, step for step: x clamped to [-87, 88] (so 2^k
 * stays a normal float), k = x / ln 2 rounded, r = x - k ln 2 in two fused steps, a degree-6
 * polynomial in r, scaled by 2^k. Within 2 ulp of e^x on the clamped range; one definition,
 * so a value's silu does not depend on which path or how many lanes computed it. */
#define EXP_STEPS(FMA, MUL, ADD_K, ROUND, MIN, MAX, SET, x, out)                                             \
    do {                                                                                                     \
        x = MIN(MAX(x, SET(-87.0f)), SET(88.0f));                                                            \
        __typeof__(x) k_ = ROUND(MUL(x, SET(1.44269504f)));                                                  \
        __typeof__(x) r_ = FMA(k_, SET(-0.693145752f), x);                                                   \
        r_ = FMA(k_, SET(-1.42860677e-6f), r_);                                                              \
        __typeof__(x) p_ = SET(1.38888889e-3f);                                                              \
        p_ = FMA(p_, r_, SET(8.33333333e-3f));                                                               \
        p_ = FMA(p_, r_, SET(4.16666667e-2f));                                                               \
        p_ = FMA(p_, r_, SET(1.66666667e-1f));                                                               \
        p_ = FMA(p_, r_, SET(0.5f));                                                                         \
        p_ = FMA(p_, r_, SET(1.0f));                                                                         \
        p_ = FMA(p_, r_, SET(1.0f));                                                                         \
        out = MUL(p_, ADD_K(k_));                                                                            \
    } while (0)

static float set1(float v) { return v; }
static float mul1(float a, float b) { return a * b; }
static float min1(float a, float b) { return a < b ? a : b; }
static float max1(float a, float b) { return a > b ? a : b; }

/* 2^k for an integral float k in [-126, 127], by its exponent bits. */
static float pow2_1(float k) {
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float silu_mul1(float g, float u) {
    float x = -g, e;
    EXP_STEPS(fmaf, mul1, pow2_1, rintf, min1, max1, set1, x, e);
    return g / (1.0f + e) * u;
}

/* gpt-oss's clamped SwiGLU: the gate clamped above, the up value on both sides. */
#define OAI_ALPHA 1.702f
#define OAI_LIMIT 7.0f
static float swiglu_oai1(float g, float u) {
    float v = g < OAI_LIMIT ? g : OAI_LIMIT, w = u > -OAI_LIMIT ? u : -OAI_LIMIT;
    w = w < OAI_LIMIT ? w : OAI_LIMIT;
    float x = v * -OAI_ALPHA, e;
    EXP_STEPS(fmaf, mul1, pow2_1, rintf, min1, max1, set1, x, e);
    return v / (1.0f + e) * (w + 1.0f);
}

/* gelu's tanh form as a sigmoid, (1 + tanh(y)) / 2 = 1 / (1 + e^-2y), so it shares silu's
 * exponential: gelu(v) = v / (1 + e^x), x = -2 sqrt(2 / pi) (v + 0.044715 v^3), computed as
 * x = fma(v * v * 0.044715, v, v) * GELU_M on every path. */
#define GELU_C 0.044715f
#define GELU_M (-1.59576912f) /* -2 sqrt(2 / pi) */
static float gelu_mul1(float g, float u) {
    float x = fmaf(g * g * GELU_C, g, g) * GELU_M, e;
    EXP_STEPS(fmaf, mul1, pow2_1, rintf, min1, max1, set1, x, e);
    return g / (1.0f + e) * u;
}

/* cap * tanh(s / cap) = cap * (2 / (1 + e^(-2 s / cap)) - 1), with m = -2 / cap. */
static float softcap1(float s, float m, float cap) {
    float x = s * m, e;
    EXP_STEPS(fmaf, mul1, pow2_1, rintf, min1, max1, set1, x, e);
    return (2.0f / (1.0f + e) - 1.0f) * cap;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
AVX2 static inline __m256 pow2_8(__m256 k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23));
}
AVX2 static inline __m256 round8(__m256 v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* max/min with the bound second, as the scalar form's comparisons pick it. */
AVX2 static inline __m256 max8(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
AVX2 static inline __m256 min8(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }

AVX2 static int64_t gelu_mul_avx2(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i), e;
        __m256 a = _mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(GELU_C));
        __m256 x = _mm256_mul_ps(_mm256_fmadd_ps(a, v, v), _mm256_set1_ps(GELU_M));
        EXP_STEPS(_mm256_fmadd_ps, _mm256_mul_ps, pow2_8, round8, min8, max8, _mm256_set1_ps, x, e);
        __m256 d = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(d, _mm256_loadu_ps(u + i)));
    }
    return i;
}

AVX2 static int64_t softcap_avx2(float *s, int64_t n, float m, float cap) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + i), _mm256_set1_ps(m)), e;
        EXP_STEPS(_mm256_fmadd_ps, _mm256_mul_ps, pow2_8, round8, min8, max8, _mm256_set1_ps, x, e);
        __m256 r = _mm256_sub_ps(_mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)),
                                 _mm256_set1_ps(1.0f));
        _mm256_storeu_ps(s + i, _mm256_mul_ps(r, _mm256_set1_ps(cap)));
    }
    return i;
}

AVX2 static int64_t swiglu_oai_avx2(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* min(a, b) and max(a, b) give b when either is NaN, as the scalar comparisons do. */
        __m256 v = _mm256_min_ps(_mm256_loadu_ps(g + i), _mm256_set1_ps(OAI_LIMIT));
        __m256 w = _mm256_max_ps(_mm256_loadu_ps(u + i), _mm256_set1_ps(-OAI_LIMIT));
        w = _mm256_min_ps(w, _mm256_set1_ps(OAI_LIMIT));
        __m256 x = _mm256_mul_ps(v, _mm256_set1_ps(-OAI_ALPHA)), e;
        EXP_STEPS(_mm256_fmadd_ps, _mm256_mul_ps, pow2_8, round8, min8, max8, _mm256_set1_ps, x, e);
        __m256 d = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(d, _mm256_add_ps(w, _mm256_set1_ps(1.0f))));
    }
    return i;
}

AVX2 static int64_t silu_mul_avx2(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i), x = _mm256_xor_ps(v, _mm256_set1_ps(-0.0f)), e;
        EXP_STEPS(_mm256_fmadd_ps, _mm256_mul_ps, pow2_8, round8, min8, max8, _mm256_set1_ps, x, e);
        __m256 d = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(d, _mm256_loadu_ps(u + i)));
    }
    return i;
}
#endif

void meshlm_silu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
#if defined(__x86_64__)
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) i = silu_mul_avx2(g, u, n);
#endif
    for (; i < n; i++) g[i] = silu_mul1(g[i], u[i]);
}

void meshlm_swiglu_oai_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
#if defined(__x86_64__)
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) i = swiglu_oai_avx2(g, u, n);
#endif
    for (; i < n; i++) g[i] = swiglu_oai1(g[i], u[i]);
}

void meshlm_gelu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
#if defined(__x86_64__)
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) i = gelu_mul_avx2(g, u, n);
#endif
    for (; i < n; i++) g[i] = gelu_mul1(g[i], u[i]);
}

void meshlm_softcap(float *x, int64_t n, float cap) {
    float m = -2.0f / cap;
    int64_t i = 0;
#if defined(__x86_64__)
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) i = softcap_avx2(x, n, m, cap);
#endif
    for (; i < n; i++) x[i] = softcap1(x[i], m, cap);
}

void meshlm_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

int meshlm_rope_init(meshlm_rope *r, int head_dim, int n_rot, bool neox, double theta_base,
                     const float *freq_factors, double linear) {
    int max_pairs = (int)(sizeof r->inv_freq / sizeof r->inv_freq[0]);
    if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 || n_rot / 2 > max_pairs)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "rope: rotated dimensions %d must be even, at most the head size %d and %d",
                           n_rot, head_dim, 2 * max_pairs);
    if (!(theta_base > 0.0) || !isfinite(theta_base))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency base %g is not a positive number", theta_base);
    if (!(linear > 0.0) || !isfinite(linear))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: linear scaling factor %g is not a positive number", linear);
    r->head_dim = head_dim;
    r->n_rot = n_rot;
    r->neox = neox;
    r->mscale = 1.0f;
    for (int i = 0; i < n_rot / 2; i++) {
        double f = pow(theta_base, -2.0 * i / n_rot);
        if (freq_factors) {
            if (!(freq_factors[i] > 0.0f) || !isfinite(freq_factors[i]))
                return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency factor %d is %g, not a positive number",
                                   i, (double)freq_factors[i]);
            f /= freq_factors[i];
        }
        /* Exact when there is no scaling (linear = 1). */
        f /= linear;
        r->inv_freq[i] = f;
    }
    return MESHLM_OK;
}

/* The pair index at which a pair turns n_turns times over n_ctx_orig positions. */
static double yarn_pair(int n_rot, int32_t n_ctx_orig, double n_turns, double theta_base) {
    return n_rot * log(n_ctx_orig / (n_turns * 2 * 3.14159265358979323846)) / (2 * log(theta_base));
}

int meshlm_rope_yarn(meshlm_rope *r, double theta_base, double factor, int32_t n_ctx_orig, double beta_fast,
                     double beta_slow, float attn_factor) {
    if (!(factor >= 1.0) || !isfinite(factor))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: YaRN factor %g is not a number of at least 1", factor);
    if (n_ctx_orig < 1 || !(beta_fast > 0) || !(beta_slow > 0))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: YaRN needs an original context (%d) and betas (%g, %g) above 0",
                           (int)n_ctx_orig, beta_fast, beta_slow);
    /* As ggml rounds them: the ramp starts at a whole pair and ends at one. */
    double lo = floor(yarn_pair(r->n_rot, n_ctx_orig, beta_fast, theta_base));
    double hi = ceil(yarn_pair(r->n_rot, n_ctx_orig, beta_slow, theta_base));
    if (lo < 0) lo = 0;
    if (hi > r->n_rot - 1) hi = r->n_rot - 1;
    for (int i = 0; i < r->n_rot / 2; i++) {
        double y = (i - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
        double mix = 1 - (y < 0 ? 0 : y > 1 ? 1 : y);
        r->inv_freq[i] *= (1 - mix) / factor + mix;
    }
    r->mscale = (float)(attn_factor * (1 + 0.1 * log(factor)));
    return MESHLM_OK;
}

void meshlm_rope_angles(const meshlm_rope *r, int64_t pos, float *cs) {
    int half = r->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double angle = (double)pos * r->inv_freq[i];
        /* Exact when mscale is 1. */
        cs[i] = (float)cos(angle) * r->mscale, cs[half + i] = (float)sin(angle) * r->mscale;
    }
}

void meshlm_rope_rotate(const meshlm_rope *r, float *x, int n_heads, const float *cs) {
    int half = r->n_rot / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[i], s = cs[half + i];
        /* neox pairs dimension i with i + n_rot/2; the normal layout pairs 2i with 2i+1. */
        int a = r->neox ? i : 2 * i;
        int b = r->neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * r->head_dim;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void meshlm_rope_apply(const meshlm_rope *r, float *x, int n_heads, int64_t pos) {
    float cs[2 * sizeof r->inv_freq / sizeof r->inv_freq[0]];
    meshlm_rope_angles(r, pos, cs);
    meshlm_rope_rotate(r, x, n_heads, cs);
}

void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out) {
    meshlm_dequantize_row(w->type, (const char *)w->data + (size_t)id * w->row_bytes, out, w->n_in);
}

/* AVX2+FMA+F16C attention kernels, lane for lane the reference in attn.c (the order is in
 * attn.h). Each function carries its own target attribute, so this file builds without
 * -mavx2; attn.c hands these out only on the AVX2 path.
 *
 * Every kernel body is an always-inline function of the row type and the number of query
 * heads; the entry points call it with constants, so each (type, heads) pair compiles to
 * its own loop with the accumulators in registers. */
#include "core/attn.h"

#include <stdint.h>

#include "core/dtype.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "core/quant_impl.h"
#include "core/simd_avx2.h"

#define INLINE MESHLM_AVX2 static inline __attribute__((always_inline))
/* Query heads one pass keeps in registers. */
#define PASS_Q 4

/* Value 8c of a row sits in group chunk_sub(c) of 8 values from byte chunk_base(c) on:
 * a Q8_0 block holds four groups behind its scale, the float types one. */
INLINE size_t chunk_base(int type, int c) {
    switch (type) {
    case MESHLM_TYPE_F16:
    case MESHLM_TYPE_BF16: return (size_t)c * 16;
    case MESHLM_TYPE_Q8_0: return (size_t)(c / 4) * MESHLM_Q8_0_BYTES;
    default: return (size_t)c * 32;
    }
}

INLINE int chunk_sub(int type, int c) { return type == MESHLM_TYPE_Q8_0 ? c % 4 : 0; }

/* Group g of 8 values from p (for Q8_0, g < 4 within the block at p), decoded as
 * meshlm_dequantize_row does. */
INLINE __m256 load8_at(int type, const uint8_t *p, int g) {
    switch (type) {
    case MESHLM_TYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * g)));
    case MESHLM_TYPE_BF16: {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * g)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    case MESHLM_TYPE_Q8_0: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * g)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(_cvtsh_ss(h)));
    }
    default: return _mm256_loadu_ps((const float *)p + 8 * g);
    }
}

/* Values 8c .. 8c + 7 of a row. */
INLINE __m256 load8(int type, const uint8_t *row, int c) {
    return load8_at(type, row + chunk_base(type, c), chunk_sub(type, c));
}

/* meshlm_hsum8 of eight vectors at once, in the same tree: lanes 0..3 of the result are the
 * sums of a[0], a[2], a[4], a[6] and lanes 4..7 those of a[1], a[3], a[5], a[7]. */
INLINE __m256 hsum8x8(const __m256 *a) {
    __m256 c[4];
    for (int k = 0; k < 4; k++)
        c[k] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * k], a[2 * k + 1], 0x31));
    __m256 d0 = _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 d1 = _mm256_add_ps(_mm256_shuffle_ps(c[2], c[3], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(c[2], c[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_shuffle_ps(d0, d1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(d0, d1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 8 / nq rows against nq (1, 2 or 4) heads: eight chains, reduced together. Chain a ends
 * in lane a / 2 or 4 + a / 2 (hsum8x8), so lane L = head * rows + row needs chain 2L or
 * 2(L - 4) + 1; then each head's scores are adjacent lanes. */
INLINE void scores_tile(int type, const uint8_t *k, size_t ks, const float *q, int nq, int hd, float scale, float *s,
                        size_t ss) {
    const int rows = 8 / nq;
    __m256 acc[8];
    for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
    for (int c = 0; c < hd / 8; c++) {
        __m256 x[8];
        for (int r = 0; r < rows; r++) x[r] = load8(type, k + (size_t)r * ks, c);
        for (int j = 0; j < nq; j++) {
            __m256 qv = _mm256_loadu_ps(q + j * hd + 8 * c);
            for (int r = 0; r < rows; r++) {
                int lane = j * rows + r, a = lane < 4 ? 2 * lane : 2 * (lane - 4) + 1;
                acc[a] = _mm256_fmadd_ps(qv, x[r], acc[a]);
            }
        }
    }
    __m256 f = _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(scale));
    __m128 lo = _mm256_castps256_ps128(f), hi = _mm256_extractf128_ps(f, 1);
    if (nq == 1) {
        _mm256_storeu_ps(s, f);
    } else if (nq == 2) {
        _mm_storeu_ps(s, lo);
        _mm_storeu_ps(s + ss, hi);
    } else {
        _mm_storel_pi((__m64 *)s, lo);
        _mm_storeh_pi((__m64 *)(s + ss), lo);
        _mm_storel_pi((__m64 *)(s + 2 * ss), hi);
        _mm_storeh_pi((__m64 *)(s + 3 * ss), hi);
    }
}

/* nq <= PASS_Q heads, a row at a time: each row decoded once, then a chain per head. */
INLINE void scores_rows(int type, const uint8_t *k, size_t ks, int n, const float *q, int nq, int hd, float scale,
                        float *s, size_t ss) {
    for (int i = 0; i < n; i++, k += ks) {
        __m256 acc[PASS_Q];
        for (int j = 0; j < nq; j++) acc[j] = _mm256_setzero_ps();
        for (int c = 0; c < hd / 8; c++) {
            __m256 x = load8(type, k, c);
            for (int j = 0; j < nq; j++) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * hd + 8 * c), x, acc[j]);
        }
        for (int j = 0; j < nq; j++) s[(size_t)j * ss + (size_t)i] = meshlm_hsum8(acc[j]) * scale;
    }
}

/* Tiles of 8 / nq rows while they last (not for 3 heads), the rest a row at a time. */
INLINE void scores_pass(int type, const uint8_t *k, size_t ks, int n, const float *q, int nq, int hd, float scale,
                        float *s, size_t ss) {
    int i = 0;
    if (nq != 3)
        for (; i + 8 / nq <= n; i += 8 / nq) scores_tile(type, k + (size_t)i * ks, ks, q, nq, hd, scale, s + i, ss);
    scores_rows(type, k + (size_t)i * ks, ks, n - i, q, nq, hd, scale, s + i, ss);
}

INLINE void scores_body(int type, const void *k, size_t ks, int n, const float *q, int nq, int hd, float scale,
                        float *s, size_t ss) {
    for (int j = 0; j < nq; j += PASS_Q) {
        const float *qj = q + (size_t)j * hd;
        float *sj = s + (size_t)j * ss;
        switch (nq - j) {
        case 1: scores_pass(type, k, ks, n, qj, 1, hd, scale, sj, ss); break;
        case 2: scores_pass(type, k, ks, n, qj, 2, hd, scale, sj, ss); break;
        case 3: scores_pass(type, k, ks, n, qj, 3, hd, scale, sj, ss); break;
        default: scores_pass(type, k, ks, n, qj, 4, hd, scale, sj, ss); break;
        }
    }
}

/* Values 8c .. 8c + 8 wd - 1 of nq <= PASS_Q heads' sums, in registers across the rows. */
INLINE void wsum_pass(int type, const uint8_t *v, size_t vs, int n, const float *w, size_t ws, int nq, int c, int wd,
                      float *acc, size_t as) {
    __m256 a[PASS_Q][2];
    for (int j = 0; j < nq; j++)
        for (int u = 0; u < wd; u++) a[j][u] = _mm256_loadu_ps(acc + (size_t)j * as + 8 * (c + u));
    const float *wj[PASS_Q];
    for (int j = 0; j < nq; j++) wj[j] = w + (size_t)j * ws;
    const uint8_t *p = v + chunk_base(type, c);
    int g = chunk_sub(type, c); /* c is even, so c + 1 is in the same Q8_0 block */
    for (int i = 0; i < n; i++, p += vs) {
        __m256 x[2];
        for (int u = 0; u < wd; u++) x[u] = load8_at(type, p, g + u);
        for (int j = 0; j < nq; j++) {
            __m256 b = _mm256_broadcast_ss(wj[j] + i);
            for (int u = 0; u < wd; u++) a[j][u] = _mm256_fmadd_ps(b, x[u], a[j][u]);
        }
    }
    for (int j = 0; j < nq; j++)
        for (int u = 0; u < wd; u++) _mm256_storeu_ps(acc + (size_t)j * as + 8 * (c + u), a[j][u]);
}

INLINE void wsum_heads(int type, const uint8_t *v, size_t vs, int n, const float *w, size_t ws, int nq, int hd,
                       float *acc, size_t as) {
    int c = 0;
    for (; c + 2 <= hd / 8; c += 2) wsum_pass(type, v, vs, n, w, ws, nq, c, 2, acc, as);
    if (c < hd / 8) wsum_pass(type, v, vs, n, w, ws, nq, c, 1, acc, as);
}

INLINE void wsum_body(int type, const void *v, size_t vs, int n, const float *w, size_t ws, int nq, int hd,
                      float *acc, size_t as) {
    for (int j = 0; j < nq; j += PASS_Q) {
        const float *wj = w + (size_t)j * ws;
        float *aj = acc + (size_t)j * as;
        switch (nq - j) {
        case 1: wsum_heads(type, v, vs, n, wj, ws, 1, hd, aj, as); break;
        case 2: wsum_heads(type, v, vs, n, wj, ws, 2, hd, aj, as); break;
        case 3: wsum_heads(type, v, vs, n, wj, ws, 3, hd, aj, as); break;
        default: wsum_heads(type, v, vs, n, wj, ws, 4, hd, aj, as); break;
        }
    }
}

INLINE __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(MESHLM_ATTN_EXP_MIN));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(MESHLM_ATTN_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-MESHLM_ATTN_LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-MESHLM_ATTN_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* The tree of meshlm_hsum8 with MAXPS in place of the adds. */
INLINE float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Lanes below m set. */
INLINE __m256i first_lanes(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* A short last step's missing lanes count as -inf for the maximum and 0 for the sum,
 * which leaves those lanes as the reference leaves them. */
MESHLM_AVX2 static void softmax_avx2(float *s, int n, float *max, float *sum) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(s + i), m);
    __m256i tail = first_lanes(n - i);
    if (i < n) {
        __m256 x = _mm256_maskload_ps(s + i, tail);
        x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(tail));
        m = _mm256_max_ps(x, m);
    }
    float mx = hmax8(m);
    __m256 mv = _mm256_set1_ps(mx), t = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        t = _mm256_add_ps(t, e);
    }
    if (i < n) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(s + i, tail), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
        _mm256_maskstore_ps(s + i, tail, e);
        t = _mm256_add_ps(t, e);
    }
    *max = mx;
    *sum = meshlm_hsum8(t);
}

#define AVX2_KERNELS(name, type)                                                                                    \
    MESHLM_AVX2 static void scores_##name(const void *k, size_t ks, int n, const float *q, int nq, int hd,         \
                                          float scale, float *s, size_t ss) {                                    \
        scores_body(type, k, ks, n, q, nq, hd, scale, s, ss);                                                     \
    }                                                                                                             \
    MESHLM_AVX2 static void wsum_##name(const void *v, size_t vs, int n, const float *w, size_t ws, int nq,        \
                                        int hd, float *acc, size_t as) {                                         \
        wsum_body(type, v, vs, n, w, ws, nq, hd, acc, as);                                                        \
    }                                                                                                             \
    static const meshlm_attn_kernels avx2_##name = {scores_##name, softmax_avx2, wsum_##name};

AVX2_KERNELS(f32, MESHLM_TYPE_F32)
AVX2_KERNELS(f16, MESHLM_TYPE_F16)
AVX2_KERNELS(bf16, MESHLM_TYPE_BF16)
AVX2_KERNELS(q8_0, MESHLM_TYPE_Q8_0)
#endif

const meshlm_attn_kernels *meshlm_attn_kernels_avx2(int type, int hd) {
#if defined(__x86_64__) || defined(__i386__)
    if (hd < 8 || hd % 8 || hd > MESHLM_ATTN_MAX_DIM) return NULL;
    switch (type) {
    case MESHLM_TYPE_F32: return &avx2_f32;
    case MESHLM_TYPE_F16: return &avx2_f16;
    case MESHLM_TYPE_BF16: return &avx2_bf16;
    case MESHLM_TYPE_Q8_0: return hd % 32 ? NULL : &avx2_q8_0;
    default: return NULL;
    }
#else
    (void)type;
    (void)hd;
    return NULL;
#endif
}

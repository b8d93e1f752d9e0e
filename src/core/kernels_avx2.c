/* AVX2+FMA+F16C dot kernels: a weight row in its stored type against f32 activations.
 * Each function carries its own target attribute, so this file builds without -mavx2 and
 * the rest of the program runs on any x86-64; quant.c calls these only after cpu.c has
 * seen the features.
 *
 * Order of sums, kept close to the reference: the float types sum each 256-element chunk
 * (8 lanes, then across lanes) and add the chunk sums in order; the block types compute a
 * block's (or sub-block's) integer-weighted sum of x in 8 lanes and fold it, times the
 * block scale, into 8 running lanes that are summed once at the end. Both differ from the
 * reference only by reassociation of f32 sums. */
#include "core/kernels.h"

#include <stdbool.h>
#include <stddef.h>

#include "core/dtype.h"
#include "core/quant_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

#include "core/simd_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define CHUNK 256
#define QK MESHLM_QK
#define QK_K MESHLM_QK_K

TARGET static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

/* 16 signed bytes against x[0..16). */
TARGET static inline __m256 dot16(__m128i q, const float *x) {
    __m256 a = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(x));
    __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    return _mm256_fmadd_ps(b, _mm256_loadu_ps(x + 8), a);
}

/* 32 signed bytes against x[0..32); the two halves are independent chains. */
TARGET static inline __m256 dot32(__m256i q, const float *x) {
    return _mm256_add_ps(dot16(_mm256_castsi256_si128(q), x), dot16(_mm256_extracti128_si256(q, 1), x + 16));
}

TARGET static inline __m256 sum32(const float *x) {
    __m256 a = _mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8));
    __m256 b = _mm256_add_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24));
    return _mm256_add_ps(a, b);
}

/* Eight bytes of packed nibbles widened straight from memory into 32-bit lanes: the low
 * nibbles plus add_lo are dotted with x into *lo, the high nibbles plus add_hi with
 * x + hi_at into *hi. Widening from memory avoids the byte shuffles that unpacking in
 * registers costs. */
TARGET static inline void nib8(const uint8_t *qs, const float *x, int hi_at, __m256i add_lo, __m256i add_hi,
                               __m256 *lo, __m256 *hi) {
    __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    __m256i l = _mm256_add_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0xf)), add_lo);
    __m256i h = _mm256_add_epi32(_mm256_srli_epi32(w, 4), add_hi);
    *lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(l), _mm256_loadu_ps(x), *lo);
    *hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_loadu_ps(x + hi_at), *hi);
}

/* A 32-element nibble block (element j in the low nibble of qs[j], j + 16 in its high
 * one); add[g] is added to elements 8g..8g+7. */
TARGET static inline __m256 dot_nib32(const uint8_t *qs, const float *x, const __m256i add[4]) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    nib8(qs, x, 16, add[0], add[2], &lo, &hi);
    nib8(qs + 8, x + 8, 16, add[1], add[3], &lo, &hi);
    return _mm256_add_ps(lo, hi);
}

/* ---- float types ---- */

TARGET static inline __m256 load8_f32(const void *p) { return _mm256_loadu_ps(p); }
TARGET static inline __m256 load8_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128(p)); }
TARGET static inline __m256 load8_bf16(const void *p) { return meshlm_bf16x8(p); }
TARGET static inline float load1_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}
TARGET static inline float load1_f16(const uint8_t *p) { return half(p); }
TARGET static inline float load1_bf16(const uint8_t *p) {
    return meshlm_bf16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

/* Four independent chains over 32 elements a step; a short tail is summed in scalar. */
#define FLOAT_DOT(name, size)                                                                   \
    TARGET static float dot_##name(const void *row, const float *x, int64_t n) {               \
        const uint8_t *w = row;                                                                \
        float sum = 0.0f;                                                                      \
        for (int64_t i = 0; i < n; i += CHUNK) {                                               \
            int64_t m = n - i < CHUNK ? n - i : CHUNK, j = 0;                                   \
            const uint8_t *wi = w + (size_t)i * (size);                                        \
            const float *xi = x + i;                                                           \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                        \
            for (; j + 32 <= m; j += 32) {                                                     \
                a0 = _mm256_fmadd_ps(load8_##name(wi + j * (size)), _mm256_loadu_ps(xi + j), a0); \
                a1 = _mm256_fmadd_ps(load8_##name(wi + (j + 8) * (size)), _mm256_loadu_ps(xi + j + 8), a1); \
                a2 = _mm256_fmadd_ps(load8_##name(wi + (j + 16) * (size)), _mm256_loadu_ps(xi + j + 16), a2); \
                a3 = _mm256_fmadd_ps(load8_##name(wi + (j + 24) * (size)), _mm256_loadu_ps(xi + j + 24), a3); \
            }                                                                                  \
            for (; j + 8 <= m; j += 8)                                                         \
                a0 = _mm256_fmadd_ps(load8_##name(wi + j * (size)), _mm256_loadu_ps(xi + j), a0); \
            float part = meshlm_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));    \
            for (; j < m; j++) part += load1_##name(wi + j * (size)) * xi[j];                   \
            sum += part;                                                                       \
        }                                                                                      \
        return sum;                                                                            \
    }

FLOAT_DOT(f32, 4)
FLOAT_DOT(f16, 2)
FLOAT_DOT(bf16, 2)

/* ---- 32-element blocks ---- */

TARGET static float dot_q8_0(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q8_0_BYTES, x += QK) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(b + 2));
        acc = _mm256_fmadd_ps(dot32(q, x), _mm256_set1_ps(half(b)), acc);
    }
    return meshlm_hsum8(acc);
}

TARGET static float dot_q4_0(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i m8 = _mm256_set1_epi32(-8), add[4] = {m8, m8, m8, m8};
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q4_0_BYTES, x += QK)
        acc = _mm256_fmadd_ps(dot_nib32(b + 2, x, add), _mm256_set1_ps(half(b)), acc);
    return meshlm_hsum8(acc);
}

/* Affine blocks: sum (d*q + m)*x = d * sum q*x + m * sum x. */
TARGET static float dot_q4_1(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i z = _mm256_setzero_si256(), add[4] = {z, z, z, z};
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q4_1_BYTES, x += QK) {
        acc = _mm256_fmadd_ps(dot_nib32(b + 4, x, add), _mm256_set1_ps(half(b)), acc);
        acc = _mm256_fmadd_ps(sum32(x), _mm256_set1_ps(half(b + 2)), acc);
    }
    return meshlm_hsum8(acc);
}

TARGET static float dot_q5_0(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q5_0_BYTES, x += QK) {
        __m256i q = _mm256_or_si256(meshlm_nibbles32(b + 6), meshlm_fifth_bits(b + 2));
        q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        acc = _mm256_fmadd_ps(dot32(q, x), _mm256_set1_ps(half(b)), acc);
    }
    return meshlm_hsum8(acc);
}

TARGET static float dot_q5_1(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q5_1_BYTES, x += QK) {
        __m256i q = _mm256_or_si256(meshlm_nibbles32(b + 8), meshlm_fifth_bits(b + 4));
        acc = _mm256_fmadd_ps(dot32(q, x), _mm256_set1_ps(half(b)), acc);
        acc = _mm256_fmadd_ps(sum32(x), _mm256_set1_ps(half(b + 2)), acc);
    }
    return meshlm_hsum8(acc);
}

/* ---- K-quants: 256-element super-blocks (layouts in quant_k.c) ---- */

/* Sub-block j's 6-bit scale and min from the 12 packed bytes. */
static inline void scale_min_k(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K (qh NULL for Q4_K): sub-block j sums d*sc_j * sum q*x - dmin*m_j * sum x;
 * the scale terms and the min terms run in separate lanes so neither chain waits. Each
 * 64-element chunk c holds sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles); going
 * through the chunks 8 bytes at a time widens each 8 bytes of qh once for all of them. */
TARGET static inline float dot_k_affine(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, size_t bytes,
                                        const float *x, int64_t n) {
    const __m256i sixteen = _mm256_set1_epi32(16);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK_K, b += bytes, qs += bytes, x += QK_K) {
        float d = half(b), dmin = half(b + 2);
        __m256 sub[QK_K / 32];
        for (int j = 0; j < QK_K / 32; j++) sub[j] = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            __m256i h = qh ? _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + 8 * k)))
                           : _mm256_setzero_si256();
            for (int c = 0; c < QK_K / 64; c++) {
                /* Bit 2c of h (and 2c + 1) moved to bit 4: the sub-blocks' fifth bits. */
                __m256i f0 = c < 2 ? _mm256_slli_epi32(h, 4 - 2 * c) : _mm256_srli_epi32(h, 2 * c - 4);
                __m256i f1 = c < 2 ? _mm256_slli_epi32(h, 3 - 2 * c) : _mm256_srli_epi32(h, 2 * c - 3);
                nib8(qs + 32 * c + 8 * k, x + 64 * c + 8 * k, 32, _mm256_and_si256(f0, sixteen),
                     _mm256_and_si256(f1, sixteen), &sub[2 * c], &sub[2 * c + 1]);
            }
        }
        for (int j = 0; j < QK_K / 32; j++) {
            int sc, mn;
            scale_min_k(b + 4, j, &sc, &mn);
            acc = _mm256_fmadd_ps(sub[j], _mm256_set1_ps(d * (float)sc), acc);
            accm = _mm256_fmadd_ps(sum32(x + 32 * j), _mm256_set1_ps(dmin * (float)mn), accm);
        }
        if (qh) qh += bytes;
    }
    return meshlm_hsum8(_mm256_sub_ps(acc, accm));
}

TARGET static float dot_q4_k(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    return dot_k_affine(b, NULL, b + 16, MESHLM_Q4K_BYTES, x, n);
}

TARGET static float dot_q5_k(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    return dot_k_affine(b, b + 16, b + 16 + QK_K / 8, MESHLM_Q5K_BYTES, x, n);
}

/* Q6_K, one 128-element half at a time: quarter r takes the low (r < 2) or high nibbles
 * of ql[32(r & 1)..], and bits 2r..2r+1 of qh; each 16 elements have their own scale. */
TARGET static float dot_q6_k(const void *row, const float *x, int64_t n) {
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q6K_BYTES) {
        const int8_t *scales = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
        float d = half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
        for (int h = 0; h < 2; h++, x += 128) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(b + QK_K / 2 + 32 * h));
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)),
            };
            for (int r = 0; r < 4; r++) {
                __m256i v = _mm256_sub_epi8(q[r], off);
                const int8_t *sc = scales + 8 * h + 2 * r;
                acc0 = _mm256_fmadd_ps(dot16(_mm256_castsi256_si128(v), x + 32 * r), _mm256_set1_ps(d * sc[0]), acc0);
                acc1 = _mm256_fmadd_ps(dot16(_mm256_extracti128_si256(v, 1), x + 32 * r + 16),
                                       _mm256_set1_ps(d * sc[1]), acc1);
            }
        }
    }
    return meshlm_hsum8(_mm256_add_ps(acc0, acc1));
}

/* ---- several tokens against one row ----
 * Each block of the row is decoded once and applied to a tile of tokens. For every token
 * the f32 operations are those of the one-token kernel above, lane for lane and in the
 * same order, so a result does not depend on how many tokens were computed together
 * (batch invariance: prefill must match token-by-token decode bit for bit). The tile
 * functions take the tile size as a constant so each instance keeps its accumulators in
 * registers. */

#define TILE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#define MAXT 4

/* The tile loop: full tiles of nt_max tokens, then one tile of the remainder. */
#define MULTI_DRIVER(name, nt_max, ...)                                                        \
    TARGET static void multi_##name(const void *row, const float *x, int64_t n, int64_t n_tok, \
                                    int64_t xs, float *y, int64_t ys) {                        \
        int64_t t = 0;                                                                         \
        for (; t + (nt_max) <= n_tok; t += (nt_max)) tile_##name(row, x + t * xs, n, xs, y + t * ys, ys, nt_max); \
        switch (n_tok - t) { __VA_ARGS__ }                                                     \
    }
#define REST(name, k) \
    case k: tile_##name(row, x + t * xs, n, xs, y + t * ys, ys, k); break;

/* The four 8-lane parts of 32 signed bytes, in the order dot16/dot32 consume them. */
TILE void widen32(__m256i q, __m256 w[4]) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    w[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    w[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    w[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    w[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* dot16 on a widened half. */
TILE __m256 wdot16(__m256 w0, __m256 w1, const float *x) {
    return _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), _mm256_mul_ps(w0, _mm256_loadu_ps(x)));
}

/* dot32 on widened bytes. */
TILE __m256 wdot32(const __m256 w[4], const float *x) {
    return _mm256_add_ps(wdot16(w[0], w[1], x), wdot16(w[2], w[3], x + 16));
}

/* Block formats whose 32 codes become signed bytes (Q8_0, Q5_0, Q5_1): acc += d * dot32,
 * and for the affine ones acc += m * sum32 after it. nr rows (at most 2, rs bytes apart)
 * share each token's block of x while it is in L1; y[r + u * ys] is row r, token u. */
TILE void tile_bytes(const uint8_t *row, size_t rs, int nr, size_t bytes, int kind, const float *x, int64_t n,
                     int64_t xs, float *y, int64_t ys, int nt) {
    __m256 acc[2][MAXT];
    for (int r = 0; r < nr; r++)
        for (int u = 0; u < nt; u++) acc[r][u] = _mm256_setzero_ps();
    for (int64_t i = 0, k = 0; i < n; i += QK, k++)
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            __m256i q;
            if (kind == MESHLM_TYPE_Q8_0) {
                q = _mm256_loadu_si256((const __m256i *)(b + 2));
            } else if (kind == MESHLM_TYPE_Q5_0) {
                q = _mm256_or_si256(meshlm_nibbles32(b + 6), meshlm_fifth_bits(b + 2));
                q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
            } else {
                q = _mm256_or_si256(meshlm_nibbles32(b + 8), meshlm_fifth_bits(b + 4));
            }
            __m256 w[4];
            widen32(q, w);
            __m256 d = _mm256_set1_ps(half(b));
            for (int u = 0; u < nt; u++) {
                const float *xu = x + u * xs + i;
                acc[r][u] = _mm256_fmadd_ps(wdot32(w, xu), d, acc[r][u]);
                if (kind == MESHLM_TYPE_Q5_1)
                    acc[r][u] = _mm256_fmadd_ps(sum32(xu), _mm256_set1_ps(half(b + 2)), acc[r][u]);
            }
        }
    for (int r = 0; r < nr; r++)
        for (int u = 0; u < nt; u++) y[r + u * ys] = meshlm_hsum8(acc[r][u]);
}

TILE void tile_q8_0(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    tile_bytes(row, 0, 1, MESHLM_Q8_0_BYTES, MESHLM_TYPE_Q8_0, x, n, xs, y, ys, nt);
}
TILE void tile2_q8_0(const void *row, size_t rs, const float *x, int64_t n, int64_t xs, float *y, int64_t ys,
                     int nt) {
    tile_bytes(row, rs, 2, MESHLM_Q8_0_BYTES, MESHLM_TYPE_Q8_0, x, n, xs, y, ys, nt);
}
TILE void tile_q5_0(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    tile_bytes(row, 0, 1, MESHLM_Q5_0_BYTES, MESHLM_TYPE_Q5_0, x, n, xs, y, ys, nt);
}
TILE void tile2_q5_0(const void *row, size_t rs, const float *x, int64_t n, int64_t xs, float *y, int64_t ys,
                     int nt) {
    tile_bytes(row, rs, 2, MESHLM_Q5_0_BYTES, MESHLM_TYPE_Q5_0, x, n, xs, y, ys, nt);
}
TILE void tile_q5_1(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    tile_bytes(row, 0, 1, MESHLM_Q5_1_BYTES, MESHLM_TYPE_Q5_1, x, n, xs, y, ys, nt);
}
TILE void tile2_q5_1(const void *row, size_t rs, const float *x, int64_t n, int64_t xs, float *y, int64_t ys,
                     int nt) {
    tile_bytes(row, rs, 2, MESHLM_Q5_1_BYTES, MESHLM_TYPE_Q5_1, x, n, xs, y, ys, nt);
}

/* Q4_0 and Q4_1 (affine): dot_nib32's two chains, then the block scale (and min); rows
 * as in tile_bytes. */
TILE void tile_nib(const uint8_t *row, size_t rs, int nr, size_t bytes, bool affine, const float *x, int64_t n,
                   int64_t xs, float *y, int64_t ys, int nt) {
    const __m256i mf = _mm256_set1_epi32(0xf), add = _mm256_set1_epi32(affine ? 0 : -8);
    const int qs_at = affine ? 4 : 2;
    __m256 acc[2][MAXT];
    for (int r = 0; r < nr; r++)
        for (int u = 0; u < nt; u++) acc[r][u] = _mm256_setzero_ps();
    for (int64_t i = 0, k = 0; i < n; i += QK, k++)
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            __m256i w0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + qs_at)));
            __m256i w1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + qs_at + 8)));
            __m256 l0 = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_and_si256(w0, mf), add));
            __m256 h0 = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(w0, 4), add));
            __m256 l1 = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_and_si256(w1, mf), add));
            __m256 h1 = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(w1, 4), add));
            __m256 d = _mm256_set1_ps(half(b)), z = _mm256_setzero_ps();
            for (int u = 0; u < nt; u++) {
                const float *xu = x + u * xs + i;
                __m256 lo = _mm256_fmadd_ps(l0, _mm256_loadu_ps(xu), z);
                __m256 hi = _mm256_fmadd_ps(h0, _mm256_loadu_ps(xu + 16), z);
                lo = _mm256_fmadd_ps(l1, _mm256_loadu_ps(xu + 8), lo);
                hi = _mm256_fmadd_ps(h1, _mm256_loadu_ps(xu + 24), hi);
                acc[r][u] = _mm256_fmadd_ps(_mm256_add_ps(lo, hi), d, acc[r][u]);
                if (affine) acc[r][u] = _mm256_fmadd_ps(sum32(xu), _mm256_set1_ps(half(b + 2)), acc[r][u]);
            }
        }
    for (int r = 0; r < nr; r++)
        for (int u = 0; u < nt; u++) y[r + u * ys] = meshlm_hsum8(acc[r][u]);
}

TILE void tile_q4_0(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    tile_nib(row, 0, 1, MESHLM_Q4_0_BYTES, false, x, n, xs, y, ys, nt);
}
TILE void tile2_q4_0(const void *row, size_t rs, const float *x, int64_t n, int64_t xs, float *y, int64_t ys,
                     int nt) {
    tile_nib(row, rs, 2, MESHLM_Q4_0_BYTES, false, x, n, xs, y, ys, nt);
}
TILE void tile_q4_1(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    tile_nib(row, 0, 1, MESHLM_Q4_1_BYTES, true, x, n, xs, y, ys, nt);
}
TILE void tile2_q4_1(const void *row, size_t rs, const float *x, int64_t n, int64_t xs, float *y, int64_t ys,
                     int nt) {
    tile_nib(row, rs, 2, MESHLM_Q4_1_BYTES, true, x, n, xs, y, ys, nt);
}

/* Q4_K and Q5_K (qh NULL for Q4_K), a sub-block at a time: dot_k_affine's sub[j] chain
 * over its four 8-element groups, then the scale and min chains. */
TILE void tile_k_affine(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, size_t bytes, const float *x,
                        int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    const __m256i mf = _mm256_set1_epi32(0xf), sixteen = _mm256_set1_epi32(16);
    __m256 acc[MAXT], accm[MAXT];
    for (int u = 0; u < nt; u++) acc[u] = accm[u] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK_K, b += bytes, qs += bytes) {
        float d = half(b), dmin = half(b + 2);
        for (int j = 0; j < QK_K / 32; j++) {
            const uint8_t *q = qs + 32 * (j / 2);
            __m256 w[4];
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * k)));
                v = j & 1 ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, mf);
                if (qh) {
                    __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + 8 * k)));
                    h = j < 4 ? _mm256_slli_epi32(h, 4 - j) : _mm256_srli_epi32(h, j - 4);
                    v = _mm256_add_epi32(v, _mm256_and_si256(h, sixteen));
                }
                w[k] = _mm256_cvtepi32_ps(v);
            }
            int sc, mn;
            scale_min_k(b + 4, j, &sc, &mn);
            __m256 dsc = _mm256_set1_ps(d * (float)sc), dmn = _mm256_set1_ps(dmin * (float)mn);
            for (int u = 0; u < nt; u++) {
                const float *xj = x + u * xs + i + 32 * j;
                __m256 s = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xj), _mm256_setzero_ps());
                for (int k = 1; k < 4; k++) s = _mm256_fmadd_ps(w[k], _mm256_loadu_ps(xj + 8 * k), s);
                acc[u] = _mm256_fmadd_ps(s, dsc, acc[u]);
                accm[u] = _mm256_fmadd_ps(sum32(xj), dmn, accm[u]);
            }
        }
        if (qh) qh += bytes;
    }
    for (int u = 0; u < nt; u++) y[u * ys] = meshlm_hsum8(_mm256_sub_ps(acc[u], accm[u]));
}

TILE void tile_q4_k(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    const uint8_t *b = row;
    tile_k_affine(b, NULL, b + 16, MESHLM_Q4K_BYTES, x, n, xs, y, ys, nt);
}
TILE void tile_q5_k(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    const uint8_t *b = row;
    tile_k_affine(b, b + 16, b + 16 + QK_K / 8, MESHLM_Q5K_BYTES, x, n, xs, y, ys, nt);
}

TILE void tile_q6_k(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) {
    const uint8_t *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    __m256 acc0[MAXT], acc1[MAXT];
    for (int u = 0; u < nt; u++) acc0[u] = acc1[u] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q6K_BYTES) {
        const int8_t *scales = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
        float d = half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(b + QK_K / 2 + 32 * h));
            for (int r = 0; r < 4; r++) {
                __m256i lo = r & 1 ? ql1 : ql0;
                lo = r < 2 ? lo : _mm256_srli_epi16(lo, 4);
                __m256i hb = r == 0 ? _mm256_slli_epi16(qh, 4)
                             : r == 1 ? _mm256_slli_epi16(qh, 2)
                             : r == 2 ? qh
                                      : _mm256_srli_epi16(qh, 2);
                __m256i v = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_and_si256(hb, m2));
                __m256 w[4];
                widen32(_mm256_sub_epi8(v, off), w);
                const int8_t *sc = scales + 8 * h + 2 * r;
                __m256 s0 = _mm256_set1_ps(d * sc[0]), s1 = _mm256_set1_ps(d * sc[1]);
                for (int u = 0; u < nt; u++) {
                    const float *xr = x + u * xs + i + 128 * h + 32 * r;
                    acc0[u] = _mm256_fmadd_ps(wdot16(w[0], w[1], xr), s0, acc0[u]);
                    acc1[u] = _mm256_fmadd_ps(wdot16(w[2], w[3], xr + 16), s1, acc1[u]);
                }
            }
        }
    }
    for (int u = 0; u < nt; u++) y[u * ys] = meshlm_hsum8(_mm256_add_ps(acc0[u], acc1[u]));
}

/* FLOAT_DOT for two tokens: its four chains per token leave no registers for more. */
#define FLOAT_TILE(name, size)                                                                  \
    TILE void tile_##name(const void *row, const float *x, int64_t n, int64_t xs, float *y, int64_t ys, int nt) { \
        const uint8_t *w = row;                                                                \
        float sum[2] = {0.0f, 0.0f};                                                           \
        for (int64_t i = 0; i < n; i += CHUNK) {                                               \
            int64_t m = n - i < CHUNK ? n - i : CHUNK, j = 0;                                   \
            const uint8_t *wi = w + (size_t)i * (size);                                        \
            __m256 a[2][4];                                                                    \
            for (int u = 0; u < nt; u++)                                                       \
                for (int c = 0; c < 4; c++) a[u][c] = _mm256_setzero_ps();                     \
            for (; j + 32 <= m; j += 32) {                                                     \
                __m256 v[4];                                                                   \
                for (int c = 0; c < 4; c++) v[c] = load8_##name(wi + (j + 8 * c) * (size));     \
                for (int u = 0; u < nt; u++)                                                   \
                    for (int c = 0; c < 4; c++)                                                \
                        a[u][c] = _mm256_fmadd_ps(v[c], _mm256_loadu_ps(x + u * xs + i + j + 8 * c), a[u][c]); \
            }                                                                                  \
            for (; j + 8 <= m; j += 8) {                                                       \
                __m256 v = load8_##name(wi + j * (size));                                      \
                for (int u = 0; u < nt; u++)                                                   \
                    a[u][0] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + u * xs + i + j), a[u][0]); \
            }                                                                                  \
            float part[2];                                                                     \
            for (int u = 0; u < nt; u++)                                                       \
                part[u] = meshlm_hsum8(_mm256_add_ps(_mm256_add_ps(a[u][0], a[u][1]), _mm256_add_ps(a[u][2], a[u][3]))); \
            for (; j < m; j++)                                                                 \
                for (int u = 0; u < nt; u++) part[u] += load1_##name(wi + j * (size)) * x[u * xs + i + j]; \
            for (int u = 0; u < nt; u++) sum[u] += part[u];                                    \
        }                                                                                      \
        for (int u = 0; u < nt; u++) y[u * ys] = sum[u];                                       \
    }

FLOAT_TILE(f32, 4)
FLOAT_TILE(f16, 2)
FLOAT_TILE(bf16, 2)

#define BLOCK_MULTI(name) MULTI_DRIVER(name, 4, REST(name, 1) REST(name, 2) REST(name, 3) default: break;)
#define FLOAT_MULTI(name) MULTI_DRIVER(name, 2, REST(name, 1) default: break;)

/* Pairs of rows against tiles of tokens, an odd last row alone. */
#define ROWS_DRIVER(name)                                                                      \
    TARGET static void rows_##name(const void *rows, size_t rs, int64_t n_rows, const float *x, int64_t n, \
                                   int64_t n_tok, int64_t xs, float *y, int64_t ys) {          \
        const uint8_t *p = rows;                                                               \
        int64_t r = 0;                                                                         \
        for (; r + 2 <= n_rows; r += 2) {                                                      \
            int64_t t = 0;                                                                     \
            for (; t + MAXT <= n_tok; t += MAXT)                                               \
                tile2_##name(p + r * rs, rs, x + t * xs, n, xs, y + r + t * ys, ys, MAXT);     \
            switch (n_tok - t) {                                                               \
            case 1: tile2_##name(p + r * rs, rs, x + t * xs, n, xs, y + r + t * ys, ys, 1); break; \
            case 2: tile2_##name(p + r * rs, rs, x + t * xs, n, xs, y + r + t * ys, ys, 2); break; \
            case 3: tile2_##name(p + r * rs, rs, x + t * xs, n, xs, y + r + t * ys, ys, 3); break; \
            default: break;                                                                    \
            }                                                                                  \
        }                                                                                      \
        if (r < n_rows) multi_##name(p + r * rs, x, n, n_tok, xs, y + r, ys);                   \
    }

/* The float types over rows and tokens: token pairs outside, rows inside. A float tile
 * takes one row and two tokens (all its registers), so each loaded x feeds one multiply-add;
 * running a pair's 8 KiB-per-token x past every row keeps those loads in L1, and the rows
 * come from L2 instead, eight times fewer bytes (two-byte weights shared by both tokens). */
#define FLOAT_ROWS(name)                                                                       \
    TARGET static void rows_##name(const void *rows, size_t rs, int64_t n_rows, const float *x, int64_t n, \
                                   int64_t n_tok, int64_t xs, float *y, int64_t ys) {          \
        const uint8_t *p = rows;                                                               \
        int64_t t = 0;                                                                         \
        for (; t + 2 <= n_tok; t += 2)                                                         \
            for (int64_t r = 0; r < n_rows; r++) tile_##name(p + r * rs, x + t * xs, n, xs, y + r + t * ys, ys, 2); \
        if (t < n_tok)                                                                         \
            for (int64_t r = 0; r < n_rows; r++) tile_##name(p + r * rs, x + t * xs, n, xs, y + r + t * ys, ys, 1); \
    }

FLOAT_MULTI(f32)
FLOAT_MULTI(f16)
FLOAT_MULTI(bf16)
FLOAT_ROWS(f32)
FLOAT_ROWS(f16)
FLOAT_ROWS(bf16)
BLOCK_MULTI(q8_0)
BLOCK_MULTI(q4_0)
BLOCK_MULTI(q4_1)
BLOCK_MULTI(q5_0)
BLOCK_MULTI(q5_1)
BLOCK_MULTI(q4_k)
BLOCK_MULTI(q5_k)
BLOCK_MULTI(q6_k)
ROWS_DRIVER(q8_0)
ROWS_DRIVER(q4_0)
ROWS_DRIVER(q4_1)
ROWS_DRIVER(q5_0)
ROWS_DRIVER(q5_1)

/* Row decoders for the 16-bit types: both conversions are exact, so these give the
 * reference decoder's values; attention decodes F16/BF16 KV rows with them. */
TARGET static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const void *)(p + 2 * i))));
    for (; i < n; i++) dst[i] = half(p + 2 * i);
}

TARGET static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, meshlm_bf16x8(p + 2 * i));
    for (; i < n; i++) {
        uint32_t u = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        u <<= 16;
        memcpy(dst + i, &u, sizeof u);
    }
}

#endif

meshlm_dequant_fn meshlm_dequant_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    if (type == MESHLM_TYPE_F16) return dequant_f16;
    if (type == MESHLM_TYPE_BF16) return dequant_bf16;
#else
    (void)type;
#endif
    return NULL;
}

meshlm_dot_fn meshlm_dot_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_F32: return dot_f32;
    case MESHLM_TYPE_F16: return dot_f16;
    case MESHLM_TYPE_BF16: return dot_bf16;
    case MESHLM_TYPE_Q8_0: return dot_q8_0;
    case MESHLM_TYPE_Q4_0: return dot_q4_0;
    case MESHLM_TYPE_Q4_1: return dot_q4_1;
    case MESHLM_TYPE_Q5_0: return dot_q5_0;
    case MESHLM_TYPE_Q5_1: return dot_q5_1;
    case MESHLM_TYPE_Q4_K: return dot_q4_k;
    case MESHLM_TYPE_Q5_K: return dot_q5_k;
    case MESHLM_TYPE_Q6_K: return dot_q6_k;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_dot_multi_fn meshlm_dot_multi_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_F32: return multi_f32;
    case MESHLM_TYPE_F16: return multi_f16;
    case MESHLM_TYPE_BF16: return multi_bf16;
    case MESHLM_TYPE_Q8_0: return multi_q8_0;
    case MESHLM_TYPE_Q4_0: return multi_q4_0;
    case MESHLM_TYPE_Q4_1: return multi_q4_1;
    case MESHLM_TYPE_Q5_0: return multi_q5_0;
    case MESHLM_TYPE_Q5_1: return multi_q5_1;
    case MESHLM_TYPE_Q4_K: return multi_q4_k;
    case MESHLM_TYPE_Q5_K: return multi_q5_k;
    case MESHLM_TYPE_Q6_K: return multi_q6_k;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_dot_rows_fn meshlm_dot_rows_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_F32: return rows_f32;
    case MESHLM_TYPE_F16: return rows_f16;
    case MESHLM_TYPE_BF16: return rows_bf16;
    case MESHLM_TYPE_Q8_0: return rows_q8_0;
    case MESHLM_TYPE_Q4_0: return rows_q4_0;
    case MESHLM_TYPE_Q4_1: return rows_q4_1;
    case MESHLM_TYPE_Q5_0: return rows_q5_0;
    case MESHLM_TYPE_Q5_1: return rows_q5_1;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

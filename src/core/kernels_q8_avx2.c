/* AVX2 forms of the integer path of kernels_q8.c: the activation quantizers and the dots
 * of weight rows with quantized activation rows, for one token and for tiles of rows and
 * tokens. Their bits are the reference's: the integer lanes are exact in any order, and
 * the float steps (one fused multiply-add per lane per block, the min chain, the lane
 * tree) happen in the reference's order for every (row, token), whatever the tile.
 *
 * Products use vpmaddubsw, which multiplies unsigned bytes by signed bytes: unsigned
 * weight codes go in as they are (the symmetric formats' offset comes off afterwards, see
 * tile32); Q8_0's signed codes go in as |w| against the activation with w's sign
 * (vpsignb), which is w * a. No pair of products can saturate its int16: at most
 * 2 * 128 * 127. */
#include "core/kernels.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/dtype.h"
#include "core/quant_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

#include "core/simd_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define QK MESHLM_QK
#define QK_K MESHLM_QK_K
#define MT 4 /* tokens per tile */

TARGET static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

TARGET static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* ---- activation quantizers ---- */

/* Largest |x| of n (a multiple of 32) floats; a NaN never wins, as in the reference. */
TARGET static inline float absmax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* 32 values times id as codes, stored in order at q; returns the sums of the first and the
 * second 16 codes in *s0, *s1. The float clamp before the conversion gives the reference's
 * answer for NaN (-127) and for infinities. */
TARGET static inline void codes32(const float *x, float id, int8_t *q, int *s0, int *s1) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f), vid = _mm256_set1_ps(id);
    __m256i c[4];
    for (int k = 0; k < 4; k++) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid);
        c[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
    }
    *s0 = hsum_i32(_mm256_add_epi32(c[0], c[1]));
    *s1 = hsum_i32(_mm256_add_epi32(c[2], c[3]));
    /* The packs interleave 4-code groups across the 128-bit halves; the permute undoes it. */
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
}

TARGET static void quant_act32(const float *x, void *dst, int64_t n) {
    meshlm_act32 *a = dst;
    for (int64_t i = 0; i < n; i += QK, x += QK, a++) {
        float amax = absmax(x, QK);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int s0, s1;
        a->d = amax / 127.0f;
        codes32(x, id, a->q, &s0, &s1);
        a->s = a->d * (float)(s0 + s1);
    }
}

TARGET static void quant_act256(const float *x, void *dst, int64_t n) {
    meshlm_act256 *a = dst;
    for (int64_t i = 0; i < n; i += QK_K, x += QK_K, a++) {
        float amax = absmax(x, QK_K);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        a->d = amax / 127.0f;
        for (int c = 0; c < QK_K / 32; c++) {
            int s0, s1;
            codes32(x + 32 * c, id, a->q + 32 * c, &s0, &s1);
            a->bsum[2 * c] = (int16_t)s0;
            a->bsum[2 * c + 1] = (int16_t)s1;
        }
    }
}

/* ---- 32-element weight blocks ---- */

static inline bool affine32(int type) { return type == MESHLM_TYPE_Q4_1 || type == MESHLM_TYPE_Q5_1; }

static inline size_t bytes32(int type) {
    switch (type) {
    case MESHLM_TYPE_Q8_0: return MESHLM_Q8_0_BYTES;
    case MESHLM_TYPE_Q4_0: return MESHLM_Q4_0_BYTES;
    case MESHLM_TYPE_Q4_1: return MESHLM_Q4_1_BYTES;
    case MESHLM_TYPE_Q5_0: return MESHLM_Q5_0_BYTES;
    default: return MESHLM_Q5_1_BYTES;
    }
}

/* The block's codes as the unsigned operand of vpmaddubsw: Q8_0's magnitudes (its signs
 * go onto the activations), the other formats' codes before any offset (0..15, or 0..31
 * with the fifth bit). */
INLINE __m256i block_codes(int type, const uint8_t *b) {
    switch (type) {
    case MESHLM_TYPE_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case MESHLM_TYPE_Q4_0: return meshlm_nibbles32(b + 2);
    case MESHLM_TYPE_Q4_1: return meshlm_nibbles32(b + 4);
    case MESHLM_TYPE_Q5_0: return _mm256_or_si256(meshlm_nibbles32(b + 6), meshlm_fifth_bits(b + 2));
    default: return _mm256_or_si256(meshlm_nibbles32(b + 8), meshlm_fifth_bits(b + 4));
    }
}

/* The offset of the symmetric formats (Q4_0: 8, Q5_0: 16), 0 for the others. */
static inline int offset32(int type) {
    return type == MESHLM_TYPE_Q4_0 ? 8 : type == MESHLM_TYPE_Q5_0 ? 16 : 0;
}

/* nr rows (rs bytes apart) against nt tokens (as bytes apart), n elements each: every
 * weight block is decoded once for all tokens; type, nr and nt are constants at every call
 * so the tile lives in registers.
 *
 * The symmetric 4- and 5-bit formats multiply their unsigned codes and take the offset
 * off as (off * a) pairs, one vpmaddubsw per token shared by every row: the int16 pairs
 * stay exact (|c * a| <= 31 * 127 per product), and sum(c - off) * a is then the
 * reference's lane without the per-row sign step that signed codes need. */
INLINE void tile32(int type, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as,
                   int64_t n, float *y, int64_t ys, int nt) {
    const bool affine = affine32(type), q8 = type == MESHLM_TYPE_Q8_0;
    const int off = offset32(type);
    const size_t bytes = bytes32(type);
    const __m256i ones = _mm256_set1_epi16(1), voff = _mm256_set1_epi8((char)off);
    __m256 acc[4][MT];
    float accm[4][MT];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) acc[r][t] = _mm256_setzero_ps(), accm[r][t] = 0.0f;
    for (int64_t k = 0; k < n / QK; k++) {
        __m256i w[4], u[4];
        __m256 dw[4];
        float mw[4];
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            w[r] = block_codes(type, b);
            u[r] = q8 ? _mm256_abs_epi8(w[r]) : w[r];
            dw[r] = _mm256_set1_ps(half(b));
            mw[r] = affine ? half(b + 2) : 0.0f;
        }
        /* Each token's codes, scale and offset pairs are loaded once for all the rows. */
        for (int t = 0; t < nt; t++) {
            const meshlm_act32 *a = (const meshlm_act32 *)(act + t * as) + k;
            __m256i q = _mm256_loadu_si256((const __m256i *)a->q);
            __m256i qo = off ? _mm256_maddubs_epi16(voff, q) : _mm256_setzero_si256();
            __m256 da = _mm256_broadcast_ss(&a->d);
            for (int r = 0; r < nr; r++) {
                __m256i p = _mm256_maddubs_epi16(u[r], q8 ? _mm256_sign_epi8(q, w[r]) : q);
                if (off) p = _mm256_sub_epi16(p, qo);
                p = _mm256_madd_epi16(p, ones);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], da), acc[r][t]);
                if (affine) accm[r][t] = fmaf(mw[r], a->s, accm[r][t]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) y[r + t * ys] = affine ? meshlm_hsum8(acc[r][t]) + accm[r][t] : meshlm_hsum8(acc[r][t]);
}

/* ---- K-quants ---- */

/* The eight 6-bit sub-block scales and mins of a Q4_K/Q5_K super-block (the 12 bytes at
 * s; layout in quant_k.c) as a byte each, sub-block j in byte j, with word operations
 * rather than eight branchy extractions: sub-blocks 0..3 keep the low 6 bits of bytes
 * 0..3 (scales) and 4..7 (mins); 4..7 take the nibbles of bytes 8..11 and, as bits 4..5,
 * the top two bits of bytes 0..3 (scales) and 4..7 (mins). */
TARGET static inline void scales_k(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, top2 = 0x30303030u;
    *sc = (a & lo6) | (uint64_t)((c & lo4) | ((a >> 2) & top2)) << 32;
    *mn = (b & lo6) | (uint64_t)(((c >> 4) & lo4) | ((b >> 2) & top2)) << 32;
}

/* Bit j of each byte of h moved to bit 4 (the fifth bit of Q5_K sub-block j); the 16-bit
 * shifts leak bits across bytes only below bit 4 or above it, which the mask drops. */
TARGET static inline __m256i bit_to_4(__m256i h, int j) {
    __m256i v = j < 4 ? _mm256_slli_epi16(h, 4 - j) : _mm256_srli_epi16(h, j - 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* The sums of the int32 lanes of each of a, b, c, d, in that order. */
TARGET static inline __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i v = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

/* Q4_K and Q5_K, nr rows (rs bytes apart) against nt tokens: per 64-element chunk each
 * row's two sub-blocks are decoded once for all tokens, and each (row, token) lane gathers
 * sub-block scale times codes times activation exactly in int32. The min terms of the
 * whole tile are reduced together, four per horizontal-add tree. */
INLINE void tile_k_affine(bool five, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as,
                          int64_t n, float *y, int64_t ys, int nt) {
    const size_t bytes = five ? MESHLM_Q5K_BYTES : MESHLM_Q4K_BYTES;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m128i pair = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m256 acc[4][MT];
    float accm[4][MT];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) acc[r][t] = _mm256_setzero_ps(), accm[r][t] = 0.0f;
    for (int64_t k = 0; k < n / QK_K; k++) {
        __m256i p[4][MT], scb[4], mins[4];
        float d[4], dmin[4];
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            uint64_t sc, mn;
            scales_k(b + 4, &sc, &mn);
            scb[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            mins[r] = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)mn), pair));
            d[r] = half(b), dmin[r] = half(b + 2);
            for (int t = 0; t < nt; t++) p[r][t] = _mm256_setzero_si256();
        }
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < nr; r++) {
                const uint8_t *b = row + r * rs + k * bytes, *qs = b + 16 + (five ? QK_K / 8 : 0);
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (five) {
                    __m256i h = _mm256_loadu_si256((const __m256i *)(b + 16));
                    lo = _mm256_or_si256(lo, bit_to_4(h, 2 * c));
                    hi = _mm256_or_si256(hi, bit_to_4(h, 2 * c + 1));
                }
                /* The scale of sub-block j in every int16: bytes 2j, 2j+1 of scb. */
                __m256i slo = _mm256_shuffle_epi8(scb[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c))));
                __m256i shi = _mm256_shuffle_epi8(scb[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1))));
                for (int t = 0; t < nt; t++) {
                    const int8_t *q = ((const meshlm_act256 *)(act + t * as) + k)->q + 64 * c;
                    __m256i a0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q)), slo);
                    __m256i a1 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q + 32))), shi);
                    p[r][t] = _mm256_add_epi32(p[r][t], _mm256_add_epi32(a0, a1));
                }
            }
        __m256i mv[4 * MT + 3];
        int msum[4 * MT + 3];
        for (int t = 0; t < nt; t++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)((const meshlm_act256 *)(act + t * as) + k)->bsum);
            for (int r = 0; r < nr; r++) mv[r + nr * t] = _mm256_madd_epi16(bs, mins[r]);
        }
        for (int i = nr * nt; i % 4; i++) mv[i] = _mm256_setzero_si256();
        for (int i = 0; i < nr * nt; i += 4)
            _mm_storeu_si128((__m128i *)(msum + i), hsum4_i32(mv[i], mv[i + 1], mv[i + 2], mv[i + 3]));
        for (int t = 0; t < nt; t++) {
            float da = ((const meshlm_act256 *)(act + t * as) + k)->d;
            for (int r = 0; r < nr; r++) {
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p[r][t]), _mm256_set1_ps(d[r] * da), acc[r][t]);
                accm[r][t] = fmaf((float)msum[r + nr * t], dmin[r] * da, accm[r][t]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) y[r + t * ys] = meshlm_hsum8(acc[r][t]) - accm[r][t];
}

/* Q6_K, one row against nt tokens: unsigned 6-bit codes, each 16 with its own scale
 * (the madd's two halves), the offset 32 in the extra chain. */
INLINE void tile_q6_k(const uint8_t *b, const uint8_t *act, size_t as, int64_t n, float *y,
                                    int64_t ys, int nt) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    __m256 acc[MT];
    float accm[MT];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps(), accm[t] = 0.0f;
    for (int64_t k = 0; k < n / QK_K; k++, b += MESHLM_Q6K_BYTES) {
        const int8_t *sc = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
        __m256i p[MT];
        for (int t = 0; t < nt; t++) p[t] = _mm256_setzero_si256();
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
                int g = 8 * h + 2 * r;
                __m256i s = _mm256_setr_m128i(_mm_set1_epi16(sc[g]), _mm_set1_epi16(sc[g + 1]));
                for (int t = 0; t < nt; t++) {
                    const int8_t *q = ((const meshlm_act256 *)(act + t * as) + k)->q + 128 * h + 32 * r;
                    __m256i x = _mm256_maddubs_epi16(v, _mm256_loadu_si256((const __m256i *)q));
                    p[t] = _mm256_add_epi32(p[t], _mm256_madd_epi16(x, s));
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        float d = half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
        for (int t = 0; t < nt; t++) {
            const meshlm_act256 *a = (const meshlm_act256 *)(act + t * as) + k;
            float dd = d * a->d;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p[t]), _mm256_set1_ps(dd), acc[t]);
            int offs = hsum_i32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a->bsum), sc16));
            accm[t] = fmaf((float)(32 * offs), dd, accm[t]);
        }
    }
    for (int t = 0; t < nt; t++) y[t * ys] = meshlm_hsum8(acc[t]) - accm[t];
}

/* ---- per-type entry points ---- */

/* nr rows against all n_tok tokens, MT at a time, then the last few with their own
 * constant tile sizes. */
INLINE void tokens32(int type, const uint8_t *p, size_t rs, int nr, const uint8_t *x, size_t as, int64_t n,
                     int64_t n_tok, float *y, int64_t ys) {
    int64_t t = 0;
    for (; t + MT <= n_tok; t += MT) tile32(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, MT);
    switch (n_tok - t) {
    case 1: tile32(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 1); break;
    case 2: tile32(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 2); break;
    case 3: tile32(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 3); break;
    default: break;
    }
}

/* One token takes four rows at a time: their independent chains hide the latency of
 * each one's multiply-add chain, and the token's codes and offset pairs serve all four.
 * Several tokens take pairs of rows against tiles of MT tokens; a last odd row goes
 * alone. */
INLINE void rows32(int type, const uint8_t *p, size_t rs, int64_t n_rows, const uint8_t *x, size_t as, int64_t n,
                   int64_t n_tok, float *y, int64_t ys) {
    int64_t r = 0;
    if (n_tok == 1)
        for (; r + 4 <= n_rows; r += 4) tile32(type, p + r * rs, rs, 4, x, as, n, y + r, ys, 1);
    else
        for (; r + 2 <= n_rows; r += 2) tokens32(type, p + r * rs, rs, 2, x, as, n, n_tok, y + r, ys);
    for (; r < n_rows; r++) tokens32(type, p + r * rs, 0, 1, x, as, n, n_tok, y + r, ys);
}

#define DOT32(name, TYPE)                                                                        \
    TARGET static float qdot_##name(const void *row, const void *act, int64_t n) {              \
        float y;                                                                                 \
        tile32(TYPE, row, 0, 1, act, 0, n, &y, 0, 1);                                            \
        return y;                                                                                \
    }                                                                                            \
    TARGET static void qrows_##name(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, \
                                    int64_t n, int64_t n_tok, float *y, int64_t ys) {           \
        rows32(TYPE, rows, rs, n_rows, act, as, n, n_tok, y, ys);                                \
    }

/* Q4_K and Q5_K over rows and tokens, tiled as rows32 tiles the 32-element formats. */
INLINE void tokens_k(bool five, const uint8_t *p, size_t rs, int nr, const uint8_t *x, size_t as, int64_t n,
                     int64_t n_tok, float *y, int64_t ys) {
    int64_t t = 0;
    for (; t + MT <= n_tok; t += MT) tile_k_affine(five, p, rs, nr, x + t * as, as, n, y + t * ys, ys, MT);
    switch (n_tok - t) {
    case 1: tile_k_affine(five, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 1); break;
    case 2: tile_k_affine(five, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 2); break;
    case 3: tile_k_affine(five, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 3); break;
    default: break;
    }
}

INLINE void rows_k(bool five, const uint8_t *p, size_t rs, int64_t n_rows, const uint8_t *x, size_t as, int64_t n,
                   int64_t n_tok, float *y, int64_t ys) {
    int64_t r = 0;
    if (n_tok == 1)
        for (; r + 4 <= n_rows; r += 4) tile_k_affine(five, p + r * rs, rs, 4, x, as, n, y + r, ys, 1);
    else
        for (; r + 2 <= n_rows; r += 2) tokens_k(five, p + r * rs, rs, 2, x, as, n, n_tok, y + r, ys);
    for (; r < n_rows; r++) tokens_k(five, p + r * rs, 0, 1, x, as, n, n_tok, y + r, ys);
}

#define DOTKA(name, FIVE)                                                                        \
    TARGET static float qdot_##name(const void *row, const void *act, int64_t n) {              \
        float y;                                                                                 \
        tile_k_affine(FIVE, row, 0, 1, act, 0, n, &y, 0, 1);                                     \
        return y;                                                                                \
    }                                                                                            \
    TARGET static void qrows_##name(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, \
                                    int64_t n, int64_t n_tok, float *y, int64_t ys) {           \
        rows_k(FIVE, rows, rs, n_rows, act, as, n, n_tok, y, ys);                                \
    }

/* Q6_K: one row at a time against tiles of MT tokens. */
#define DOTK(name, CALL)                                                                         \
    TARGET static float qdot_##name(const void *row, const void *act, int64_t n) {              \
        float y;                                                                                 \
        const uint8_t *b = row, *x = act;                                                        \
        const size_t as = 0;                                                                     \
        float *yy = &y;                                                                          \
        const int64_t ys = 0;                                                                    \
        CALL(1);                                                                                 \
        return y;                                                                                \
    }                                                                                            \
    TARGET static void qrows_##name(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, \
                                    int64_t n, int64_t n_tok, float *y, int64_t ys) {           \
        for (int64_t r = 0; r < n_rows; r++) {                                                   \
            const uint8_t *b = (const uint8_t *)rows + r * rs;                                   \
            int64_t t = 0;                                                                       \
            for (; t + MT <= n_tok; t += MT) {                                                   \
                const uint8_t *x = (const uint8_t *)act + t * as;                                \
                float *yy = y + r + t * ys;                                                      \
                CALL(MT);                                                                        \
            }                                                                                    \
            const uint8_t *x = (const uint8_t *)act + t * as;                                    \
            float *yy = y + r + t * ys;                                                          \
            switch (n_tok - t) {                                                                 \
            case 1: CALL(1); break;                                                              \
            case 2: CALL(2); break;                                                              \
            case 3: CALL(3); break;                                                              \
            default: break;                                                                      \
            }                                                                                    \
        }                                                                                        \
    }

#define CALL_Q6K(nt) tile_q6_k(b, x, as, n, yy, ys, nt)

DOT32(q8_0, MESHLM_TYPE_Q8_0)
DOT32(q4_0, MESHLM_TYPE_Q4_0)
DOT32(q4_1, MESHLM_TYPE_Q4_1)
DOT32(q5_0, MESHLM_TYPE_Q5_0)
DOT32(q5_1, MESHLM_TYPE_Q5_1)
DOTKA(q4_k, false)
DOTKA(q5_k, true)
DOTK(q6_k, CALL_Q6K)

#endif

meshlm_act_quant_fn meshlm_act_quant_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0:
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q5_1: return quant_act32;
    case MESHLM_TYPE_Q4_K:
    case MESHLM_TYPE_Q5_K:
    case MESHLM_TYPE_Q6_K: return quant_act256;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_qdot_fn meshlm_qdot_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0: return qdot_q8_0;
    case MESHLM_TYPE_Q4_0: return qdot_q4_0;
    case MESHLM_TYPE_Q4_1: return qdot_q4_1;
    case MESHLM_TYPE_Q5_0: return qdot_q5_0;
    case MESHLM_TYPE_Q5_1: return qdot_q5_1;
    case MESHLM_TYPE_Q4_K: return qdot_q4_k;
    case MESHLM_TYPE_Q5_K: return qdot_q5_k;
    case MESHLM_TYPE_Q6_K: return qdot_q6_k;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_qdot_rows_fn meshlm_qdot_rows_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0: return qrows_q8_0;
    case MESHLM_TYPE_Q4_0: return qrows_q4_0;
    case MESHLM_TYPE_Q4_1: return qrows_q4_1;
    case MESHLM_TYPE_Q5_0: return qrows_q5_0;
    case MESHLM_TYPE_Q5_1: return qrows_q5_1;
    case MESHLM_TYPE_Q4_K: return qrows_q4_k;
    case MESHLM_TYPE_Q5_K: return qrows_q5_k;
    case MESHLM_TYPE_Q6_K: return qrows_q6_k;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

/* AVX-512 VNNI forms of the integer dots of kernels_q8.c, one token and tiles of rows x
 * tokens, for all types but Q8_0 and Q4_0 (whose kernels are kernels_q8_blk.h and
 * kernels_q8_amx.c). Their bits are the reference's. For the lane-order types vpdpbusd's
 * int32 lane l over a 32-byte block sums exactly elements 4l..4l+3, the reference's lane,
 * and the float steps (one fused multiply-add per lane per block, the min chain, the lane
 * tree) run in the reference's order for every (row, token). The K-quants' lanes sum to
 * one exact integer per super-block before their float step (block order).
 *
 * vpdpbusd multiplies unsigned bytes by signed ones. Weight codes go in unsigned: the
 * symmetric format's codes plus their offset o (Q5_0 is stored as w + 16), so a lane
 * gathers sum w*q + o * sum q. The accumulator
 * starts at -o * sum q over the lane's four activation codes, which depends on the token
 * alone and is found once per token and block for all the tile's rows.
 *
 * A zmm holds two tokens' lanes, token t in the low 256 bits and t + 1 in the high ones,
 * each against the same weight block broadcast to both halves: every lane keeps its own
 * accumulator chain over the blocks, as in the reference. An odd last token pairs with
 * itself and its copy is dropped. */
#include "core/kernels.h"

#include <stdbool.h>
#include <stddef.h>

#include "core/dtype.h"
#include "core/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "core/simd_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define QK MESHLM_QK
#define QK_K MESHLM_QK_K
#define TP 4  /* token pairs per full tile */
#define KC 32 /* weight blocks whose scales are converted at once */

static inline bool affine32(int type) { return type == MESHLM_TYPE_Q4_1 || type == MESHLM_TYPE_Q5_1; }

static inline size_t bytes32(int type) {
    switch (type) {
    case MESHLM_TYPE_Q4_1: return MESHLM_Q4_1_BYTES;
    case MESHLM_TYPE_Q5_0: return MESHLM_Q5_0_BYTES;
    default: return MESHLM_Q5_1_BYTES;
    }
}

/* The offset o that the unsigned weight codes carry (0 for the affine formats). */
static inline int offset32(int type) {
    return type == MESHLM_TYPE_Q5_0 ? 16 : 0;
}

/* Elements 0..15 from the low nibbles of the 16 bytes at qs, 16..31 from the high ones, in
 * both 256-bit halves: the bytes go to all four 128-bit lanes and lanes 1 and 3 shift. */
INLINE __m512i nibbles(const uint8_t *qs) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs));
    v = _mm512_mask_srli_epi16(v, 0xff00ff00u, v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

/* Adds 16 to byte j of each half when bit j of the little-endian word at p is set. */
INLINE __m512i fifth(__m512i v, const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, sizeof qh);
    __mmask64 k = _cvtu64_mask64((uint64_t)qh | (uint64_t)qh << 32);
    return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
}

/* The block's 32 unsigned codes in element order, in both halves. */
INLINE __m512i block_codes(int type, const uint8_t *b) {
    switch (type) {
    case MESHLM_TYPE_Q4_1: return nibbles(b + 4);
    case MESHLM_TYPE_Q5_0: return fifth(nibbles(b + 6), b + 2);
    default: return fifth(nibbles(b + 8), b + 4);
    }
}

TARGET static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

/* The fp16 scales at byte at of m <= KC consecutive blocks (bytes apart) of nr rows (rs
 * apart), as floats: copied by the integer units, which the tile leaves idle, and
 * converted 16 at a time, where one conversion and broadcast per block would take the
 * vector ports that the products need. */
INLINE void block_scales(const uint8_t *row, size_t rs, int nr, size_t bytes, int at, int m, float (*out)[KC]) {
    for (int r = 0; r < nr; r++) {
        uint16_t h[KC] = {0};
        for (int i = 0; i < m; i++) memcpy(&h[i], row + r * rs + i * bytes + at, sizeof h[i]);
        for (int i = 0; i < m; i += 16)
            _mm512_storeu_ps(out[r] + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    }
}

/* One float of each of two tokens, in the low and the high half. */
INLINE __m512 pair_ps(const float *lo, const float *hi) {
    return _mm512_mask_broadcastss_ps(_mm512_set1_ps(*lo), 0xff00, _mm_load_ss(hi));
}

/* 32 bytes of each of two tokens, in the low and the high half. */
INLINE __m512i pair_si(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
                              _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* Half h of v (token 2j + h of its pair). */
INLINE __m256 half_ps(__m512 v, int h) {
    return h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)) : _mm512_castps512_ps256(v);
}

/* nr rows (rs bytes apart) against np token pairs (as bytes apart), nt <= 2 * np tokens
 * of them real, n elements each. type, nr and np are constants at every call, so the
 * tile's accumulators stay in registers; each weight block is decoded once for all the
 * tokens, each token block loaded once for all the rows. */
INLINE void tile32(int type, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as, int64_t n,
                   float *y, int64_t ys, int np, int nt) {
    const bool affine = affine32(type);
    const size_t bytes = bytes32(type);
    const int off = offset32(type);
    const meshlm_act32 *alo[TP], *ahi[TP];
    __m512 acc[4][TP], accm[4][TP];
    float dws[4][KC], mws[4][KC];
    for (int j = 0; j < np; j++) {
        alo[j] = (const meshlm_act32 *)(act + 2 * j * as);
        ahi[j] = (const meshlm_act32 *)(act + (2 * j + 1 < nt ? 2 * j + 1 : 2 * j) * as);
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < np; j++) acc[r][j] = _mm512_setzero_ps(), accm[r][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n / QK; k++) {
        const int kc = (int)(k % KC);
        if (!kc) {
            const int m = n / QK - k < KC ? (int)(n / QK - k) : KC;
            block_scales(row + k * bytes, rs, nr, bytes, 0, m, dws);
            if (affine) block_scales(row + k * bytes, rs, nr, bytes, 2, m, mws);
        }
        __m512i q[TP], corr[TP];
        __m512 da[TP], sa[TP];
        for (int j = 0; j < np; j++) {
            const meshlm_act32 *a0 = alo[j] + k, *a1 = ahi[j] + k;
            q[j] = pair_si(a0->q, a1->q);
            corr[j] = _mm512_setzero_si512();
            if (off)
                corr[j] = _mm512_sub_epi32(corr[j], _mm512_dpbusd_epi32(corr[j], _mm512_set1_epi8((char)off), q[j]));
            da[j] = pair_ps(&a0->d, &a1->d);
            if (affine) sa[j] = pair_ps(&a0->s, &a1->s);
        }
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            __m512i w = block_codes(type, b);
            __m512 dw = _mm512_set1_ps(dws[r][kc]);
            __m512 mw = affine ? _mm512_set1_ps(mws[r][kc]) : dw;
            for (int j = 0; j < np; j++) {
                __m512i p = _mm512_dpbusd_epi32(corr[j], w, q[j]);
                acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, da[j]), acc[r][j]);
                if (affine) accm[r][j] = _mm512_fmadd_ps(mw, sa[j], accm[r][j]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < np; j++)
            for (int h = 0; h < 2 && 2 * j + h < nt; h++) {
                float s = meshlm_hsum8(half_ps(acc[r][j], h));
                y[r + (2 * j + h) * ys] = affine ? s + _mm256_cvtss_f32(half_ps(accm[r][j], h)) : s;
            }
}

/* ---- Q4_K and Q5_K ----
 * A lane sums sc_j * (its four codes times activations) over the super-block's eight
 * sub-blocks j. vpdpbusd gives the inner sum (at most 4 * 31 * 127, an int16), and
 * vpdpwssd against the int32 sc_j multiplies that int16 and adds it: the int32's upper
 * half, 0 or -1, meets sc_j's upper half, 0. */

TARGET static inline void scale_min_k(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Bit j of each byte of h moved to bit 4 (the fifth bit of Q5_K sub-block j); what the
 * 16-bit shifts carry across bytes lands outside bit 4, which the mask drops. */
INLINE __m512i bit_to_4(__m512i h, int j) {
    __m512i v = j < 4 ? _mm512_slli_epi16(h, (unsigned)(4 - j)) : _mm512_srli_epi16(h, (unsigned)(j - 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x10));
}

/* The int32s of each half of v summed, in every lane of the half. */
INLINE __m512i half_sums(__m512i v) {
    v = _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
    v = _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
    return _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
}

/* One row against np token pairs, nt of the tokens real: per 64-element chunk both
 * sub-blocks are decoded once for all the tokens. The min term of each (row, token) is
 * its own f32 chain, in lane 0 of the token's half. */
INLINE void tile_k_affine(bool five, const uint8_t *b, const uint8_t *act, size_t as, int64_t n, float *y,
                          int64_t ys, int np, int nt) {
    const size_t bytes = five ? MESHLM_Q5K_BYTES : MESHLM_Q4K_BYTES;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const meshlm_act256 *alo[TP], *ahi[TP];
    __m512 acc[TP], accm[TP];
    for (int j = 0; j < np; j++) {
        alo[j] = (const meshlm_act256 *)(act + 2 * j * as);
        ahi[j] = (const meshlm_act256 *)(act + (2 * j + 1 < nt ? 2 * j + 1 : 2 * j) * as);
        acc[j] = _mm512_setzero_ps(), accm[j] = _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < n / QK_K; k++, b += bytes) {
        const uint8_t *qs = b + 16 + (five ? QK_K / 8 : 0);
        int sc[8], mn[8];
        int16_t mins[16];
        for (int j = 0; j < 8; j++) {
            scale_min_k(b + 4, j, &sc[j], &mn[j]);
            mins[2 * j] = mins[2 * j + 1] = (int16_t)mn[j];
        }
        __m512i p[TP];
        for (int j = 0; j < np; j++) p[j] = _mm512_setzero_si512();
        const __m512i h = five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16)))
                               : _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            if (five) {
                lo = _mm512_or_si512(lo, bit_to_4(h, 2 * c));
                hi = _mm512_or_si512(hi, bit_to_4(h, 2 * c + 1));
            }
            const __m512i slo = _mm512_set1_epi32(sc[2 * c]), shi = _mm512_set1_epi32(sc[2 * c + 1]);
            for (int j = 0; j < np; j++) {
                const int8_t *q0 = alo[j][k].q + 64 * c, *q1 = ahi[j][k].q + 64 * c;
                __m512i x0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, pair_si(q0, q1));
                __m512i x1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, pair_si(q0 + 32, q1 + 32));
                p[j] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(p[j], x0, slo), x1, shi);
            }
        }
        const __m512i m16 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)mins));
        const __m512 d = _mm512_set1_ps(half(b)), dmin = _mm512_set1_ps(half(b + 2));
        for (int j = 0; j < np; j++) {
            const meshlm_act256 *a0 = alo[j] + k, *a1 = ahi[j] + k;
            __m512 da = pair_ps(&a0->d, &a1->d);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(half_sums(p[j])), _mm512_mul_ps(d, da), acc[j]);
            __m512i m = half_sums(_mm512_madd_epi16(pair_si(a0->bsum, a1->bsum), m16));
            accm[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, da), accm[j]);
        }
    }
    for (int j = 0; j < np; j++)
        for (int h = 0; h < 2 && 2 * j + h < nt; h++)
            y[(2 * j + h) * ys] = _mm256_cvtss_f32(half_ps(acc[j], h)) - _mm256_cvtss_f32(half_ps(accm[j], h));
}

/* Q6_K, one row against np token pairs: unsigned 6-bit codes (a lane's inner sum is at
 * most 4 * 63 * 127, an int16), each 16 with its own signed scale, which vpdpwssd takes
 * zero-extended from 16 bits so that the inner sum's upper half meets zeros; the offset 32
 * in the extra chain. */
INLINE void tile_q6_k(const uint8_t *b, const uint8_t *act, size_t as, int64_t n, float *y, int64_t ys, int np,
                      int nt) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
    const meshlm_act256 *alo[TP], *ahi[TP];
    __m512 acc[TP];
    for (int j = 0; j < np; j++) {
        alo[j] = (const meshlm_act256 *)(act + 2 * j * as);
        ahi[j] = (const meshlm_act256 *)(act + (2 * j + 1 < nt ? 2 * j + 1 : 2 * j) * as);
        acc[j] = _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < n / QK_K; k++, b += MESHLM_Q6K_BYTES) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + QK_K / 2 + QK_K / 4)));
        const __m512i sc32 = _mm512_cvtepu16_epi32(sc16);
        __m512i p[TP];
        for (int j = 0; j < np; j++) p[j] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i ql0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 64 * h)));
            const __m512i ql1 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 64 * h + 32)));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + QK_K / 2 + 32 * h)));
            for (int r = 0; r < 4; r++) {
                __m512i lo = r & 1 ? ql1 : ql0;
                lo = r < 2 ? lo : _mm512_srli_epi16(lo, 4);
                __m512i hb = r == 0 ? _mm512_slli_epi16(qh, 4)
                             : r == 1 ? _mm512_slli_epi16(qh, 2)
                             : r == 2 ? qh
                                      : _mm512_srli_epi16(qh, 2);
                __m512i v = _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_and_si512(hb, m2));
                const int g = 8 * h + 2 * r;
                const __m512i sel = _mm512_setr_epi32(g, g, g, g, g + 1, g + 1, g + 1, g + 1, g, g, g, g, g + 1,
                                                      g + 1, g + 1, g + 1);
                const __m512i sv = _mm512_permutexvar_epi32(sel, sc32);
                for (int j = 0; j < np; j++) {
                    const int8_t *q0 = alo[j][k].q + 128 * h + 32 * r, *q1 = ahi[j][k].q + 128 * h + 32 * r;
                    __m512i x = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, pair_si(q0, q1));
                    p[j] = _mm512_dpwssd_epi32(p[j], x, sv);
                }
            }
        }
        const __m512i s16 = _mm512_broadcast_i64x4(sc16);
        const __m512 d = _mm512_set1_ps(half(b + QK_K / 2 + QK_K / 4 + QK_K / 16));
        for (int j = 0; j < np; j++) {
            const meshlm_act256 *a0 = alo[j] + k, *a1 = ahi[j] + k;
            __m512 dd = _mm512_mul_ps(d, pair_ps(&a0->d, &a1->d));
            __m512i offs = half_sums(_mm512_madd_epi16(pair_si(a0->bsum, a1->bsum), s16));
            __m512i sum = _mm512_sub_epi32(half_sums(p[j]), _mm512_slli_epi32(offs, 5));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), dd, acc[j]);
        }
    }
    for (int j = 0; j < np; j++)
        for (int h = 0; h < 2 && 2 * j + h < nt; h++) y[(2 * j + h) * ys] = _mm256_cvtss_f32(half_ps(acc[j], h));
}

/* Token tiles over the n_tok tokens at x: full ones of TP pairs, then one of the pairs
 * left, each with a constant pair count; TILE(np, nt) runs one at token t. */
#define TOKEN_TILES(TILE)                                                                                       \
    do {                                                                                                        \
        int64_t t = 0;                                                                                          \
        for (; t + 2 * TP <= n_tok; t += 2 * TP) TILE(TP, 2 * TP);                                              \
        switch ((n_tok - t + 1) / 2) {                                                                          \
        case 1: TILE(1, (int)(n_tok - t)); break;                                                               \
        case 2: TILE(2, (int)(n_tok - t)); break;                                                               \
        case 3: TILE(3, (int)(n_tok - t)); break;                                                               \
        case 4: TILE(4, (int)(n_tok - t)); break;                                                               \
        default: break;                                                                                         \
        }                                                                                                       \
    } while (0)

/* One row, one token; and groups of RB rows, then single rows, against the token tiles. RB
 * is 2 for the affine formats, whose min chains need registers of their own. A single
 * token (decode) takes the AVX2 kernel, whose bits are the same: with half of every zmm a
 * copy, the 256-bit integer ops' third port makes it the faster one there. */
#define DOT32(name, TYPE, RB)                                                                                   \
    TARGET static float qdot_##name(const void *row, const void *act, int64_t n) {                              \
        float y;                                                                                                \
        tile32(TYPE, row, 0, 1, act, 0, n, &y, 0, 1, 1);                                                        \
        return y;                                                                                               \
    }                                                                                                           \
    TARGET static void qrows_##name(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as,    \
                                    int64_t n, int64_t n_tok, float *y, int64_t ys) {                           \
        if (n_tok == 1) {                                                                                       \
            meshlm_qdot_rows_avx2(TYPE)(rows, rs, n_rows, act, as, n, n_tok, y, ys);                            \
            return;                                                                                             \
        }                                                                                                       \
        const uint8_t *p = rows, *x = act;                                                                      \
        int64_t r = 0;                                                                                          \
        const int type = TYPE, rb = RB;                                                                         \
        for (; r + RB <= n_rows; r += RB) TOKEN_TILES(TILE32_GROUP);                                            \
        for (; r < n_rows; r++) TOKEN_TILES(TILE32_ONE);                                                        \
    }

#define TILE32_GROUP(np, nt) tile32(type, p + r * rs, rs, rb, x + t * as, as, n, y + r + t * ys, ys, np, nt)
#define TILE32_ONE(np, nt) tile32(type, p + r * rs, 0, 1, x + t * as, as, n, y + r + t * ys, ys, np, nt)

/* The K-quant tiles by type (a constant at every call). */
INLINE void tile_k(int type, const uint8_t *b, const uint8_t *act, size_t as, int64_t n, float *y, int64_t ys,
                   int np, int nt) {
    if (type == MESHLM_TYPE_Q6_K)
        tile_q6_k(b, act, as, n, y, ys, np, nt);
    else
        tile_k_affine(type == MESHLM_TYPE_Q5_K, b, act, as, n, y, ys, np, nt);
}

/* K-quants: one row at a time against the token tiles; a single token as above. */
#define DOTK(name, TYPE)                                                                                        \
    TARGET static float qdot_##name(const void *row, const void *act, int64_t n) {                              \
        float y;                                                                                                \
        tile_k(TYPE, row, act, 0, n, &y, 0, 1, 1);                                                              \
        return y;                                                                                               \
    }                                                                                                           \
    TARGET static void qrows_##name(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as,    \
                                    int64_t n, int64_t n_tok, float *y, int64_t ys) {                           \
        if (n_tok == 1) {                                                                                       \
            meshlm_qdot_rows_avx2(TYPE)(rows, rs, n_rows, act, as, n, n_tok, y, ys);                            \
            return;                                                                                             \
        }                                                                                                       \
        const uint8_t *x = act;                                                                                 \
        const int type = TYPE;                                                                                  \
        for (int64_t r = 0; r < n_rows; r++) {                                                                  \
            const uint8_t *b = (const uint8_t *)rows + r * rs;                                                  \
            TOKEN_TILES(TILE_K);                                                                                \
        }                                                                                                       \
    }

#define TILE_K(np, nt) tile_k(type, b, x + t * as, as, n, y + r + t * ys, ys, np, nt)

DOT32(q4_1, MESHLM_TYPE_Q4_1, 2)
DOT32(q5_0, MESHLM_TYPE_Q5_0, 4)
DOT32(q5_1, MESHLM_TYPE_Q5_1, 2)
DOTK(q4_k, MESHLM_TYPE_Q4_K)
DOTK(q5_k, MESHLM_TYPE_Q5_K)
DOTK(q6_k, MESHLM_TYPE_Q6_K)

#endif

meshlm_qdot_fn meshlm_qdot_avx512(int type) {
#if defined(__x86_64__)
    switch (type) {
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

meshlm_qdot_rows_fn meshlm_qdot_rows_avx512(int type) {
#if defined(__x86_64__)
    switch (type) {
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

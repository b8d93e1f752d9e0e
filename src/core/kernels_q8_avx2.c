/* AVX2 forms of the integer path of kernels_q8.c: the activation quantizers and the dots
 * of weight rows with quantized activation rows, for one token and for tiles of rows and
 * tokens. Their bits are the reference's: the integer lanes are exact in any order, and
 * the float steps (one fused multiply-add per lane per block, the min chain, the lane
 * tree) happen in the reference's order for every (row, token), whatever the tile.
 *
 * Products use vpmaddubsw, which multiplies unsigned bytes by signed bytes: unsigned
 * weight codes go in as they are (the symmetric formats' offset comes off afterwards, see
 * tile32 in kernels_q8_tiles.h); Q8_0's signed codes go in as |w| against the activation
 * with w's sign (vpsignb), which is w * a. No pair of products can saturate its int16: at
 * most 2 * 128 * 127. The VNNI instance of the tiles sums the products straight into
 * int32 (vpdpbusd), which cannot saturate at all. */
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
    case MESHLM_TYPE_Q4_1: return MESHLM_Q4_1_BYTES;
    case MESHLM_TYPE_Q5_0: return MESHLM_Q5_0_BYTES;
    default: return MESHLM_Q5_1_BYTES;
    }
}

/* The block's codes as the unsigned operand of vpmaddubsw: Q8_0's magnitudes (its signs
 * go onto the activations), the other formats' codes before any offset (0..15, or 0..31
 * with the fifth bit). MXFP4's come out signed, its table's values looked up by vpshufb
 * (each nibble indexes the 16 bytes of its own 128-bit lane), and go in as Q8_0's do. */
INLINE __m256i block_codes(int type, const uint8_t *b) {
    switch (type) {
    case MESHLM_TYPE_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case MESHLM_TYPE_Q4_0: return meshlm_nibbles32(b + 2);
    case MESHLM_TYPE_MXFP4: {
        const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)meshlm_mxfp4_values));
        return _mm256_shuffle_epi8(lut, meshlm_nibbles32(b + 1));
    }
    case MESHLM_TYPE_Q4_1: return meshlm_nibbles32(b + 4);
    case MESHLM_TYPE_Q5_0: return _mm256_or_si256(meshlm_nibbles32(b + 6), meshlm_fifth_bits(b + 2));
    default: return _mm256_or_si256(meshlm_nibbles32(b + 8), meshlm_fifth_bits(b + 4));
    }
}

/* The offset of the lane-order symmetric format (Q5_0: 16), 0 for the others. */
static inline int offset32(int type) { return type == MESHLM_TYPE_Q5_0 ? 16 : 0; }

/* The half scales (meshlm_e8m0_to_fp32_half) of the exponent bytes e[0..8): biased
 * exponent e - 1, or for e < 2 the denormal mantissa 0x200000 shifted left by e. */
TARGET static inline __m256 e8m0_half8(const uint8_t *e) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)e));
    const __m256i norm = _mm256_slli_epi32(_mm256_sub_epi32(v, _mm256_set1_epi32(1)), 23);
    const __m256i den = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), v);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(norm, den, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), v)));
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

/* ---- the tiles and per-type entry points, in two instances ---- */

#define KV 0
#define KTARGET TARGET
#define KN(name) name##_avx2
#define KPR 2
#include "core/kernels_q8_tiles.h"
#include "core/kernels_q8_blk.h"
#undef KV
#undef KTARGET
#undef KN
#undef KPR

/* With 32 vector registers the VNNI instance holds 4 rows x MT tokens. */
#define KV 1
#define KTARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define KN(name) name##_vnni
#define KPR 4
#include "core/kernels_q8_tiles.h"
#include "core/kernels_q8_blk.h"
#undef KV
#undef KTARGET
#undef KN
#undef KPR

#endif

meshlm_act_quant_fn meshlm_act_quant_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0:
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q5_1:
    case MESHLM_TYPE_MXFP4: return quant_act32;
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
    case MESHLM_TYPE_Q8_0: return qdot_q8_0_avx2;
    case MESHLM_TYPE_Q4_0: return qdot_q4_0_avx2;
    case MESHLM_TYPE_MXFP4: return qdot_mxfp4_avx2;
    case MESHLM_TYPE_Q4_1: return qdot_q4_1_avx2;
    case MESHLM_TYPE_Q5_0: return qdot_q5_0_avx2;
    case MESHLM_TYPE_Q5_1: return qdot_q5_1_avx2;
    case MESHLM_TYPE_Q4_K: return qdot_q4_k_avx2;
    case MESHLM_TYPE_Q5_K: return qdot_q5_k_avx2;
    case MESHLM_TYPE_Q6_K: return qdot_q6_k_avx2;
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
    case MESHLM_TYPE_Q8_0: return qrows_q8_0_avx2;
    case MESHLM_TYPE_Q4_0: return qrows_q4_0_avx2;
    case MESHLM_TYPE_MXFP4: return qrows_mxfp4_avx2;
    case MESHLM_TYPE_Q4_1: return qrows_q4_1_avx2;
    case MESHLM_TYPE_Q5_0: return qrows_q5_0_avx2;
    case MESHLM_TYPE_Q5_1: return qrows_q5_1_avx2;
    case MESHLM_TYPE_Q4_K: return qrows_q4_k_avx2;
    case MESHLM_TYPE_Q5_K: return qrows_q5_k_avx2;
    case MESHLM_TYPE_Q6_K: return qrows_q6_k_avx2;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_qdot_fn meshlm_qdot_vnni(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0: return qdot_q8_0_vnni;
    case MESHLM_TYPE_Q4_0: return qdot_q4_0_vnni;
    case MESHLM_TYPE_MXFP4: return qdot_mxfp4_vnni;
    case MESHLM_TYPE_Q4_1: return qdot_q4_1_vnni;
    case MESHLM_TYPE_Q5_0: return qdot_q5_0_vnni;
    case MESHLM_TYPE_Q5_1: return qdot_q5_1_vnni;
    case MESHLM_TYPE_Q4_K: return qdot_q4_k_vnni;
    case MESHLM_TYPE_Q5_K: return qdot_q5_k_vnni;
    case MESHLM_TYPE_Q6_K: return qdot_q6_k_vnni;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

meshlm_qdot_rows_fn meshlm_qdot_rows_vnni(int type) {
#if defined(__x86_64__) || defined(__i386__)
    switch (type) {
    case MESHLM_TYPE_Q8_0: return qrows_q8_0_vnni;
    case MESHLM_TYPE_Q4_0: return qrows_q4_0_vnni;
    case MESHLM_TYPE_MXFP4: return qrows_mxfp4_vnni;
    case MESHLM_TYPE_Q4_1: return qrows_q4_1_vnni;
    case MESHLM_TYPE_Q5_0: return qrows_q5_0_vnni;
    case MESHLM_TYPE_Q5_1: return qrows_q5_1_vnni;
    case MESHLM_TYPE_Q4_K: return qrows_q4_k_vnni;
    case MESHLM_TYPE_Q5_K: return qrows_q5_k_vnni;
    case MESHLM_TYPE_Q6_K: return qrows_q6_k_vnni;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}

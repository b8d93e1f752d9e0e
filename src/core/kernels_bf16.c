/* BF16 weights against BF16 activations, where the CPU has AVX512-BF16 (as llama.cpp pairs
 * them there): activations are rounded to BF16 once per matmul, and each dot is what the
 * vdpbf16ps instruction computes. Its arithmetic, on each of 16 lanes over every 32-value
 * chunk: the lane's odd product is added, then its even product, each product exact and
 * each sum rounded to nearest even, denormal inputs read as zero and denormal results
 * flushed to zero. The scalar reference here repeats that and the final fold of the lanes,
 * bit for bit for finite values (NaN payloads may differ), so every path agrees. */
#include <stdint.h>
#include <string.h>

#include "core/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

enum { LANES = 16, CHUNK = 32 };

size_t meshlm_act_bf16_bytes(int64_t n) { return (size_t)((n + CHUNK - 1) / CHUNK) * CHUNK * sizeof(uint16_t); }

/* A BF16 input as the instruction reads it: denormals as zero. */
static float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Denormals become zero of the same sign, as the instruction's results do. */
static float flush(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f32 to BF16 as vcvtneps2bf16: round to nearest even, denormals to signed zero, NaNs quiet. */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void meshlm_act_bf16_ref(const float *x, void *dst, int64_t n) {
    uint16_t *a = dst;
    int64_t padded = (int64_t)(meshlm_act_bf16_bytes(n) / sizeof(uint16_t));
    for (int64_t i = 0; i < padded; i++) a[i] = i < n ? to_bf16(x[i]) : 0;
}

/* The lanes' sums folded as the kernels fold them: halves, then quarters, then pairs. */
static float fold(const float *l) {
    float s8[8], s4[4], s2[2];
    for (int j = 0; j < 8; j++) s8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    for (int j = 0; j < 2; j++) s2[j] = s4[j] + s4[j + 2];
    return s2[0] + s2[1];
}

float meshlm_qdot_bf16_ref(const void *row, const void *act, int64_t n) {
    const uint16_t *w = row, *a = act;
    float l[LANES] = {0};
    for (int64_t c = 0; c < n; c += CHUNK)
        for (int j = 0; j < LANES; j++)
            for (int p = 1; p >= 0; p--) {
                int64_t i = c + 2 * j + p;
                float wv = i < n ? from_bf16(w[i]) : 0.0f;
                l[j] = flush(l[j] + flush(wv * from_bf16(a[i])));
            }
    return fold(l);
}

#ifdef HAVE_X86
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

BF16_TARGET static void act_avx512(const float *x, void *dst, int64_t n) {
    uint16_t *a = dst;
    int64_t padded = (int64_t)(meshlm_act_bf16_bytes(n) / sizeof(uint16_t));
    for (int64_t i = 0; i < padded; i += 16) {
        int64_t left = n - i;
        __mmask16 m = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_storeu_si256((__m256i *)(a + i), (__m256i)h);
    }
}

BF16_TARGET static float fold_avx512(__m512 acc) {
    __m256 hi = _mm512_castps512_ps256(_mm512_shuffle_f32x4(acc, acc, 0xee));
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* An nr x nt tile: each weight chunk loaded once for nt tokens, each activation chunk once
 * for nr rows; one accumulator per (row, token), as the reference has. Inlined with
 * constant shapes, so the accumulators stay in registers. */
BF16_TARGET __attribute__((always_inline)) static inline void tile(const uint8_t *rows, size_t row_stride,
                                                                   const uint8_t *act, size_t act_stride, int64_t n,
                                                                   float *y, int64_t y_stride, int nr, int nt) {
    __m512 acc[4][4];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < n; c += CHUNK) {
        int64_t left = n - c;
        __mmask32 m = left >= CHUNK ? 0xffffffffu : (__mmask32)((1u << left) - 1);
        __m512i w[4], a[4];
        for (int r = 0; r < nr; r++) w[r] = _mm512_maskz_loadu_epi16(m, rows + (size_t)r * row_stride + (size_t)c * 2);
        for (int t = 0; t < nt; t++) a[t] = _mm512_loadu_si512(act + (size_t)t * act_stride + (size_t)c * 2);
        for (int r = 0; r < nr; r++)
            for (int t = 0; t < nt; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)w[r], (__m512bh)a[t]);
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) y[r + t * y_stride] = fold_avx512(acc[r][t]);
}

BF16_TARGET static float qdot_avx512(const void *row, const void *act, int64_t n) {
    float y;
    tile(row, 0, act, 0, n, &y, 0, 1, 1);
    return y;
}

/* Rows in fours and tokens in fours; the edges take the smaller tiles. */
BF16_TARGET static void qrows_avx512(const void *rows, size_t row_stride, int64_t n_rows, const void *act,
                                     size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
    for (int64_t r = 0; r < n_rows; r += 4) {
        int nr = n_rows - r < 4 ? (int)(n_rows - r) : 4;
        const uint8_t *rp = (const uint8_t *)rows + (size_t)r * row_stride;
        for (int64_t t = 0; t < n_tok; t += 4) {
            int nt = n_tok - t < 4 ? (int)(n_tok - t) : 4;
            const uint8_t *ap = (const uint8_t *)act + (size_t)t * act_stride;
            float *yp = y + r + t * y_stride;
#define TILE(R, T) tile(rp, row_stride, ap, act_stride, n, yp, y_stride, R, T)
            switch (nr * 4 + nt) {
            case 4 * 4 + 4: TILE(4, 4); break;
            case 4 * 4 + 3: TILE(4, 3); break;
            case 4 * 4 + 2: TILE(4, 2); break;
            case 4 * 4 + 1: TILE(4, 1); break;
            case 3 * 4 + 4: TILE(3, 4); break;
            case 2 * 4 + 4: TILE(2, 4); break;
            case 1 * 4 + 4: TILE(1, 4); break;
            default:
                for (int i = 0; i < nr; i++)
                    for (int k = 0; k < nt; k++)
                        tile(rp + (size_t)i * row_stride, row_stride, ap + (size_t)k * act_stride, act_stride, n,
                             yp + i + k * y_stride, y_stride, 1, 1);
                break;
            }
#undef TILE
        }
    }
}
#endif

meshlm_act_quant_fn meshlm_act_bf16_avx512(void) {
#ifdef HAVE_X86
    return act_avx512;
#else
    return NULL;
#endif
}

meshlm_qdot_fn meshlm_qdot_bf16_avx512(void) {
#ifdef HAVE_X86
    return qdot_avx512;
#else
    return NULL;
#endif
}

meshlm_qdot_rows_fn meshlm_qrows_bf16_avx512(void) {
#ifdef HAVE_X86
    return qrows_avx512;
#else
    return NULL;
#endif
}

/* BF16 weights against BF16 activations, where the CPU has AVX512-BF16 (as llama.cpp pairs
 * them there): activations are rounded to BF16 once per matmul, and each dot is what an AMX
 * tile (TDPBF16PS) computes, whatever the number of tokens, so prefill and decode agree.
 *
 * The order, found on the hardware: per 32-value chunk the even-indexed products go into
 * one running sum and the odd-indexed into another, pair after pair, each step x + w * a
 * with the product exact and one rounding; the chunk adds (even + odd) to the row's sum.
 * Every rounding is to nearest even on 24 bits, and a result below the normal range then
 * becomes zero of its sign (FTZ); denormal inputs read as zero (DAZ). vdpbf16ps cannot
 * repeat it (it drops a product below the normal range before adding it), so the AVX-512
 * form uses f32 FMAs with MXCSR's FTZ and DAZ set, which round and flush as the tiles do.
 * The scalar reference repeats it bit for bit for finite values (NaN payloads may differ). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/bf16_tile.h"
#include "core/kernels.h"

enum { CHUNK = 32, PAIRS = CHUNK / 2 };

size_t meshlm_act_bf16_bytes(int64_t n) { return (size_t)((n + CHUNK - 1) / CHUNK) * CHUNK * sizeof(uint16_t); }

/* A BF16 input as the tiles read it: denormals as zero. */
static float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    float f;
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

/* x + y * z as one tile step: fmaf rounds on the denormal grid below FLT_MIN, the tiles on
 * 24 bits and then flush; the two differ only when fmaf lands on FLT_MIN from an exact value
 * that 24 bits keep below it, which the (there exact) double decides. */
static float mac(float x, float y, float z) {
    float r = fmaf(y, z, x), m = fabsf(r);
    if (m < FLT_MIN) return copysignf(0.0f, r);
    if (m == FLT_MIN && fabs(fma((double)y, (double)z, (double)x)) < (double)FLT_MIN - ldexp(1.0, -151))
        return copysignf(0.0f, r);
    return r;
}

float meshlm_qdot_bf16_ref(const void *row, const void *act, int64_t n) {
    const uint16_t *w = row, *a = act;
    float acc = 0.0f;
    for (int64_t c = 0; c < n; c += CHUNK) {
        float sum[2] = {0.0f, 0.0f}; /* even, odd */
        for (int64_t i = c; i < c + CHUNK; i++) {
            float wv = i < n ? from_bf16(w[i]) : 0.0f; /* the tiles see zeros past the row */
            sum[i & 1] = mac(sum[i & 1], wv, from_bf16(a[i]));
        }
        acc = mac(acc, mac(sum[0], sum[1], 1.0f), 1.0f);
    }
    return acc;
}

#if defined(__x86_64__)
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

TARGET static void act_avx512(const float *x, void *dst, int64_t n) {
    uint16_t *a = dst;
    int64_t padded = (int64_t)(meshlm_act_bf16_bytes(n) / sizeof(uint16_t));
    for (int64_t i = 0; i < padded; i += 16) {
        int64_t left = n - i;
        __mmask16 m = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_storeu_si256((__m256i *)(a + i), (__m256i)h);
    }
}

/* Up to 16 rows (lanes) by nt tokens: each chunk of the rows is transposed once, so that
 * vector k holds pair k of every row, and serves all nt tokens; a token's pair k is two
 * broadcast floats. Rows past nr repeat the last one and are not stored. Inlined with a
 * constant nt, so the sums stay in registers. Needs FTZ and DAZ in MXCSR. */
TARGET __attribute__((always_inline)) static inline void panel(const uint8_t *rows, size_t rs, int nr,
                                                               const uint8_t *act, size_t as, int64_t n, float *y,
                                                               int64_t ys, int nt) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[4];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < n; c += CHUNK) {
        const int64_t left = n - c;
        const __mmask32 m = left >= CHUNK ? 0xffffffffu : (__mmask32)((1u << left) - 1);
        __m512i w[16];
        for (int r = 0; r < 16; r++)
            w[r] = _mm512_maskz_loadu_epi16(m, rows + (size_t)(r < nr ? r : nr - 1) * rs + (size_t)c * 2);
        meshlm_transpose16(w);
        float x[4][2][PAIRS];
        for (int t = 0; t < nt; t++) {
            __m512i v = _mm512_loadu_si512(act + (size_t)t * as + (size_t)c * 2);
            _mm512_storeu_ps(x[t][0], _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
            _mm512_storeu_ps(x[t][1], _mm512_castsi512_ps(_mm512_and_si512(v, hi)));
        }
        __m512 e[4], o[4];
        for (int t = 0; t < nt; t++) e[t] = o[t] = _mm512_setzero_ps();
        for (int k = 0; k < PAIRS; k++) {
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(w[k], 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(w[k], hi));
            for (int t = 0; t < nt; t++) {
                e[t] = _mm512_fmadd_ps(we, _mm512_set1_ps(x[t][0][k]), e[t]);
                o[t] = _mm512_fmadd_ps(wo, _mm512_set1_ps(x[t][1][k]), o[t]);
            }
        }
        for (int t = 0; t < nt; t++) acc[t] = _mm512_add_ps(acc[t], _mm512_add_ps(e[t], o[t]));
    }
    const __mmask16 out = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    for (int t = 0; t < nt; t++) _mm512_mask_storeu_ps(y + t * ys, out, acc[t]);
}

/* Panels of 16 rows by tokens in fours. Not inlined into the caller that sets MXCSR, so
 * that none of its arithmetic can move outside the FTZ and DAZ window. */
TARGET __attribute__((noinline)) static void rows_ftz(const uint8_t *rows, size_t rs, int64_t n_rows,
                                                      const uint8_t *act, size_t as, int64_t n, int64_t n_tok,
                                                      float *y, int64_t ys) {
    for (int64_t r = 0; r < n_rows; r += 16) {
        const int nr = n_rows - r < 16 ? (int)(n_rows - r) : 16;
        for (int64_t t = 0; t < n_tok; t += 4) {
            const uint8_t *rp = rows + (size_t)r * rs, *ap = act + (size_t)t * as;
            float *yp = y + r + t * ys;
            switch (n_tok - t < 4 ? n_tok - t : 4) {
            case 4: panel(rp, rs, nr, ap, as, n, yp, ys, 4); break;
            case 3: panel(rp, rs, nr, ap, as, n, yp, ys, 3); break;
            case 2: panel(rp, rs, nr, ap, as, n, yp, ys, 2); break;
            default: panel(rp, rs, nr, ap, as, n, yp, ys, 1); break;
            }
        }
    }
}

enum { MXCSR_FTZ_DAZ = 0x8040 };

TARGET static void qrows_avx512(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, int64_t n,
                                int64_t n_tok, float *y, int64_t ys) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | MXCSR_FTZ_DAZ);
    rows_ftz(rows, rs, n_rows, act, as, n, n_tok, y, ys);
    _mm_setcsr(csr);
}

TARGET static float qdot_avx512(const void *row, const void *act, int64_t n) {
    float y;
    qrows_avx512(row, 0, 1, act, 0, n, 1, &y, 1);
    return y;
}
#endif

meshlm_act_quant_fn meshlm_act_bf16_avx512(void) {
#if defined(__x86_64__)
    return act_avx512;
#else
    return NULL;
#endif
}

meshlm_qdot_fn meshlm_qdot_bf16_avx512(void) {
#if defined(__x86_64__)
    return qdot_avx512;
#else
    return NULL;
#endif
}

meshlm_qdot_rows_fn meshlm_qrows_bf16_avx512(void) {
#if defined(__x86_64__)
    return qrows_avx512;
#else
    return NULL;
#endif
}

/* ggml's K-quants: 256-element super-blocks whose sub-block scales are themselves
 * quantized against one or two fp16 super-scales.
 *
 * Q4_K (144 B): d, dmin (fp16), scales[12], qs[128]. Eight sub-blocks of 32; sub-block j
 *   decodes as d*sc_j*q - dmin*m_j with 6-bit sc_j, m_j packed into scales[12].
 * Q5_K (176 B): as Q4_K plus qh[32] before qs: bit j of qh[l] is the fifth bit of element l
 *   of sub-block j.
 * Q6_K (210 B): ql[128], qh[64], int8 scales[16], d (fp16) last. Sixteen sub-blocks of 16;
 *   value = d*scale_j*(q - 32) with 6-bit q split into a nibble in ql and two bits in qh.
 * The 4-bit nibbles are interleaved in 64-element chunks: byte 32c + l holds element l of
 * sub-block 2c in its low nibble and of sub-block 2c + 1 in its high nibble. */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant_impl.h"

#define QK_K MESHLM_QK_K
#define SUB 32     /* Q4_K/Q5_K sub-block */
#define SUB6 16    /* Q6_K sub-block */
#define NSUB (QK_K / SUB)
#define NSUB6 (QK_K / SUB6)


static float load_half(const uint8_t *p) {
    return meshlm_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

static void store_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

/* The 12 scale bytes hold eight 6-bit scales and eight 6-bit mins. Sub-blocks 0-3 use the
 * low 6 bits of bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 keep their low nibbles in
 * bytes 8-11 (scale low, min high) and their top two bits in the spare top bits of the
 * bytes used by sub-blocks 0-3. */
static void unpack_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void pack_scales_mins(const int *sc, const int *mn, uint8_t *s) {
    memset(s, 0, 12);
    for (int j = 0; j < NSUB; j++) {
        if (j < 4) {
            s[j] |= (uint8_t)sc[j];
            s[j + 4] |= (uint8_t)mn[j];
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 0xf) | ((mn[j] & 0xf) << 4));
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

/* ---- Q4_K, Q5_K ---- */

/* Shared by Q4_K and Q5_K: qh is NULL for Q4_K. */
static void dequant_k_affine(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    float d = load_half(b), dmin = load_half(b + 2);
    const uint8_t *scales = b + 4;
    for (int j = 0; j < NSUB; j++) {
        int sc, mn;
        unpack_scale_min(scales, j, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        const uint8_t *q = qs + SUB * (j / 2);
        int shift = (j & 1) * 4;
        for (int l = 0; l < SUB; l++) {
            int v = (q[l] >> shift) & 0xf;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            y[SUB * j + l] = d1 * (float)v - m1;
        }
    }
}

void meshlm_dequantize_row_q4_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q4K_BYTES, dst += QK_K)
        dequant_k_affine(b, NULL, b + 16, dst);
}

void meshlm_dequantize_row_q5_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q5K_BYTES, dst += QK_K)
        dequant_k_affine(b, b + 16, b + 16 + QK_K / 8, dst);
}

/* v rounded half up and clamped into [0, top]; NaN gives 0. The scale search calls this
 * 21 times per value, where lroundf's library call cost most of the time. */
static inline int round_code(float v, int top) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)top) return top;
    return (int)(v + 0.5f);
}

/* Fits x ~ s*q - m with q in [0, top], s >= 0 and m >= 0 (the format cannot add a
 * positive offset). Tries grids slightly finer and coarser than the plain min/max one,
 * refits (s, m) by least squares for each grid's codes, and keeps the lowest error, which
 * follows from the same sums: sum (s q + c - x)^2 expanded, with no second pass. */
static void fit_affine(const float *x, int n, int top, float *s_out, float *m_out) {
    float lo = 0.0f, hi = x[0], sx = 0.0f, sxx = 0.0f;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sx += x[i];
        sxx += x[i] * x[i];
    }
    *s_out = 0.0f;
    *m_out = -lo;
    if (!(hi > lo)) return;
    float best = INFINITY;
    for (int k = -10; k <= 10; k++) {
        float iscale = ((float)top + 0.1f * (float)k) / (hi - lo);
        float sq = 0, sqq = 0, sqx = 0;
        for (int i = 0; i < n; i++) {
            int q = round_code(iscale * (x[i] - lo), top);
            sq += (float)q;
            sqq += (float)(q * q);
            sqx += (float)q * x[i];
        }
        float det = (float)n * sqq - sq * sq;
        if (det <= 0.0f) continue;
        float s = ((float)n * sqx - sq * sx) / det;
        float c = (sqq * sx - sq * sqx) / det;
        if (c > 0.0f) {
            c = 0.0f;
            s = sqx / sqq;
        }
        if (!(s > 0.0f)) continue;
        float err = s * s * sqq + 2.0f * s * c * sq - 2.0f * s * sqx + (float)n * c * c - 2.0f * c * sx + sxx;
        if (err < best) {
            best = err;
            *s_out = s;
            *m_out = -c;
        }
    }
}

/* Encodes one Q4_K/Q5_K super-block: fit each sub-block, quantize the eight scales and
 * eight mins to 6 bits against their maxima, then requantize every value with the scales
 * as they will actually decode. */
static void quant_k_affine(const float *x, uint8_t *b, uint8_t *qh, uint8_t *qs, int bits) {
    const int top = (1 << bits) - 1;
    float s[NSUB], m[NSUB], smax = 0.0f, mmax = 0.0f;
    for (int j = 0; j < NSUB; j++) {
        fit_affine(x + SUB * j, SUB, top, &s[j], &m[j]);
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, m[j]);
    }
    uint16_t dh = meshlm_scale_to_fp16(smax / 63.0f), mh = meshlm_scale_to_fp16(mmax / 63.0f);
    float d = meshlm_fp16_to_fp32(dh), dmin = meshlm_fp16_to_fp32(mh);
    int sc[NSUB], mn[NSUB];
    for (int j = 0; j < NSUB; j++) {
        sc[j] = d > 0.0f ? meshlm_round_clamp(s[j] / d, 0, 63) : 0;
        mn[j] = dmin > 0.0f ? meshlm_round_clamp(m[j] / dmin, 0, 63) : 0;
    }
    store_half(b, dh);
    store_half(b + 2, mh);
    pack_scales_mins(sc, mn, b + 4);
    memset(qs, 0, QK_K / 2);
    if (qh) memset(qh, 0, QK_K / 8);
    for (int j = 0; j < NSUB; j++) {
        float d1 = d * (float)sc[j], m1 = dmin * (float)mn[j];
        float id = d1 > 0.0f ? 1.0f / d1 : 0.0f;
        uint8_t *q = qs + SUB * (j / 2);
        int shift = (j & 1) * 4;
        for (int l = 0; l < SUB; l++) {
            int v = d1 > 0.0f ? meshlm_round_clamp((x[SUB * j + l] + m1) * id, 0, top) : 0;
            q[l] |= (uint8_t)((v & 0xf) << shift);
            if (qh) qh[l] |= (uint8_t)(((v >> 4) & 1) << j);
        }
    }
}

void meshlm_quantize_row_q4_k(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += QK_K, src += QK_K, b += MESHLM_Q4K_BYTES)
        quant_k_affine(src, b, NULL, b + 16, 4);
}

void meshlm_quantize_row_q5_k(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += QK_K, src += QK_K, b += MESHLM_Q5K_BYTES)
        quant_k_affine(src, b, b + 16, b + 16 + QK_K / 8, 5);
}

/* ---- Q6_K ----
 * Element e of a super-block: half h = e / 128, quarter r = (e % 128) / 32, l = e % 32.
 * Its low nibble is in ql[64h + l + 32(r & 1)] (high nibble of that byte when r >= 2),
 * its top two bits are bits 2r..2r+1 of qh[32h + l], and its scale is scales[e / 16]. */

static int q6_ql_index(int e) { return 64 * (e / 128) + e % 32 + 32 * ((e % 128 / 32) & 1); }
static int q6_ql_shift(int e) { return (e % 128) / 64 * 4; }
static int q6_qh_index(int e) { return 32 * (e / 128) + e % 32; }
static int q6_qh_shift(int e) { return 2 * ((e % 128) / 32); }

void meshlm_dequantize_row_q6_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q6K_BYTES, dst += QK_K) {
        const uint8_t *ql = b, *qh = b + QK_K / 2;
        const int8_t *scales = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
        float d = load_half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
        for (int j = 0; j < NSUB6; j++) {
            float ds = d * (float)scales[j];
            for (int l = 0; l < SUB6; l++) {
                int e = SUB6 * j + l;
                int lo = (ql[q6_ql_index(e)] >> q6_ql_shift(e)) & 0xf;
                int hi = (qh[q6_qh_index(e)] >> q6_qh_shift(e)) & 3;
                dst[e] = ds * (float)((lo | (hi << 4)) - 32);
            }
        }
    }
}

/* Fits x ~ s*q with q in [-32, 31]: as for Q4_0 the value of largest magnitude goes to the
 * extra level -32; grids around that one are refit by least squares, lowest error wins. */
static float fit_sym6(const float *x, int n) {
    float amax = 0.0f, max = 0.0f, sxx = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
        sxx += x[i] * x[i];
    }
    if (amax == 0.0f) return 0.0f;
    float best = INFINITY, best_s = max / -32.0f;
    for (int k = -9; k <= 9; k++) {
        float iscale = -(32.0f + 0.1f * (float)k) / max;
        float sqx = 0.0f, sqq = 0.0f;
        for (int i = 0; i < n; i++) {
            float v = iscale * x[i];
            int q = !(v >= -32.0f) ? -32 : v >= 31.0f ? 31 : (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
            sqx += (float)q * x[i];
            sqq += (float)(q * q);
        }
        if (sqq <= 0.0f) continue;
        float err = sxx - sqx * sqx / sqq;
        if (err < best) {
            best = err;
            best_s = sqx / sqq;
        }
    }
    return best_s;
}

/* Sub-block scales go to int8 against the one of largest magnitude (mapped to -128), then
 * values are requantized with the scales as they decode. */
static void quant_q6_k_block(const float *x, uint8_t *b) {
    uint8_t *ql = b, *qh = b + QK_K / 2;
    uint8_t *scales = b + QK_K / 2 + QK_K / 4;
    float s[NSUB6], smax = 0.0f;
    for (int j = 0; j < NSUB6; j++) {
        s[j] = fit_sym6(x + SUB6 * j, SUB6);
        if (fabsf(s[j]) > fabsf(smax)) smax = s[j];
    }
    uint16_t dh = meshlm_scale_to_fp16(smax / -128.0f);
    float d = meshlm_fp16_to_fp32(dh);
    store_half(b + QK_K / 2 + QK_K / 4 + QK_K / 16, dh);
    memset(ql, 0, QK_K / 2);
    memset(qh, 0, QK_K / 4);
    for (int j = 0; j < NSUB6; j++) {
        int sc = d != 0.0f ? meshlm_round_clamp(s[j] / d, -128, 127) : 0;
        scales[j] = (uint8_t)(int8_t)sc;
        float ds = d * (float)sc;
        float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int l = 0; l < SUB6; l++) {
            int e = SUB6 * j + l;
            int q = meshlm_round_clamp(x[e] * id, -32, 31) + 32;
            ql[q6_ql_index(e)] |= (uint8_t)((q & 0xf) << q6_ql_shift(e));
            qh[q6_qh_index(e)] |= (uint8_t)((q >> 4) << q6_qh_shift(e));
        }
    }
}

void meshlm_quantize_row_q6_k(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += QK_K, src += QK_K, b += MESHLM_Q6K_BYTES) quant_q6_k_block(src, b);
}

/* Reference codecs and dot for the block floats (encoding in core/bfp.h). Quantization
 * works on the f32 bit patterns with integer arithmetic, so rounding is exact whatever the
 * block's scale (2^-133 is no f32 normal, and a float division there would round twice). */
#include "core/bfp.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"

#define BLK MESHLM_BFP_BLOCK

/* Callers that can report (repacking) check lengths here; the row functions themselves
 * have no status to return. */
int meshlm_bfp_check_row(int type, int64_t n) {
    if (type != MESHLM_TYPE_BFP8 && type != MESHLM_TYPE_BFP4)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "type %s is not a block-float type", meshlm_type_name(type));
    if (n <= 0 || n % BLK)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "%s: a row of %lld values is not a positive multiple of the %d-value block",
                           meshlm_type_name(type), (long long)n, BLK);
    return MESHLM_OK;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Built from bits, not ldexpf: the reference and the kernels then share one definition,
 * and steps below 2^-126 are f32 subnormals, still exact. */
float meshlm_bfp_step(int e, int m_bits) {
    int k = e - 127 - (m_bits - 1);
    if (k >= -126) return bits_f32((uint32_t)(k + 127) << 23);
    return bits_f32(1u << (k + 149));
}

/* The row functions' guard: anything but whole blocks is refused, not truncated. */
static bool valid_len(int64_t n) { return n > 0 && n % BLK == 0; }

/* The shared exponent of a block: the largest exponent field of its finite non-zero
 * values, subnormals counting as 1 because that is their scale. */
static int block_exponent(const float *x) {
    int e = 0;
    for (int j = 0; j < BLK; j++) {
        uint32_t u = f32_bits(x[j]) & 0x7fffffffu;
        int ex = (int)(u >> 23);
        if (u == 0 || ex == 255) continue;
        if (ex == 0) ex = 1;
        if (ex > e) e = ex;
    }
    return e;
}

/* Sign bit and magnitude code (m_bits wide) of v in a block of exponent e, per the rules
 * in bfp.h: round to nearest even on the 24-bit significand, then saturate. */
static unsigned encode(float v, int e, int m_bits) {
    uint32_t u = f32_bits(v), sign = u >> 31, mag_max = (1u << m_bits) - 1;
    uint32_t ex = (u >> 23) & 0xff, mant = u & 0x7fffff;
    if (ex == 255) return mant ? 0 : (sign << m_bits) | mag_max;
    if (ex == 0 && mant == 0) return sign << m_bits;
    uint32_t sig = ex ? (mant | 0x800000u) : mant;
    int eff = ex ? (int)ex : 1;
    int shift = 24 - m_bits + (e - eff); /* |v| / step = sig / 2^shift, shift >= 17 */
    uint32_t q = 0;
    if (shift <= 24) {
        uint32_t rem = sig & ((1u << shift) - 1), half = 1u << (shift - 1);
        q = sig >> shift;
        if (rem > half || (rem == half && (q & 1))) q++;
    }
    if (q > mag_max) q = mag_max;
    return (sign << m_bits) | q;
}

/* code: sign at bit m_bits, magnitude below it; the product is exact (see bfp.h). */
static float decode(unsigned code, float step, int m_bits) {
    float v = (float)(code & ((1u << m_bits) - 1)) * step;
    return (code >> m_bits) & 1 ? -v : v;
}

/* Codes go one per byte, in element order. */
void meshlm_quantize_row_bfp8(const float *src, void *dst, int64_t n) {
    if (!valid_len(n)) return;
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += BLK, src += BLK, b += MESHLM_BFP8_BYTES) {
        int e = block_exponent(src);
        b[0] = (uint8_t)e;
        for (int j = 0; j < BLK; j++) b[1 + j] = (uint8_t)encode(src[j], e, 7);
    }
}

/* Element j in the low nibble of byte j, j + 8 in its high nibble: a kernel splits 8
 * bytes into the block's two halves with one shift. */
void meshlm_quantize_row_bfp4(const float *src, void *dst, int64_t n) {
    if (!valid_len(n)) return;
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += BLK, src += BLK, b += MESHLM_BFP4_BYTES) {
        int e = block_exponent(src);
        b[0] = (uint8_t)e;
        for (int j = 0; j < BLK / 2; j++)
            b[1 + j] = (uint8_t)(encode(src[j], e, 3) | (encode(src[j + BLK / 2], e, 3) << 4));
    }
}

/* One block's 16 values; the dequantizers and the reference dot share it. */
static void decode_block_bfp8(const uint8_t *b, float *out) {
    float step = meshlm_bfp_step(b[0], 7);
    for (int j = 0; j < BLK; j++) out[j] = decode(b[1 + j], step, 7);
}

static void decode_block_bfp4(const uint8_t *b, float *out) {
    float step = meshlm_bfp_step(b[0], 3);
    for (int j = 0; j < BLK / 2; j++) {
        out[j] = decode(b[1 + j] & 0xf, step, 3);
        out[j + BLK / 2] = decode(b[1 + j] >> 4, step, 3);
    }
}

/* A refused row decodes to NaN so the mistake shows in any result it reaches. */
static void fill_nan(float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = NAN;
}

void meshlm_dequantize_row_bfp8(const void *src, float *dst, int64_t n) {
    if (!valid_len(n)) {
        fill_nan(dst, n);
        return;
    }
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += BLK) decode_block_bfp8(b + (size_t)(i / BLK) * MESHLM_BFP8_BYTES, dst + i);
}

void meshlm_dequantize_row_bfp4(const void *src, float *dst, int64_t n) {
    if (!valid_len(n)) {
        fill_nan(dst, n);
        return;
    }
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += BLK) decode_block_bfp4(b + (size_t)(i / BLK) * MESHLM_BFP4_BYTES, dst + i);
}

/* The order of meshlm_vec_dot_ref for a 16-value block type, so that once quant.c
 * dispatches here the two agree bit for bit. */
static float dot_ref(void (*decode_block)(const uint8_t *, float *), size_t block_bytes, const void *row,
                     const float *x, int64_t n) {
    if (!valid_len(n)) return NAN;
    const uint8_t *b = row;
    float buf[BLK], sum = 0.0f;
    for (int64_t i = 0; i < n; i += BLK) {
        decode_block(b + (size_t)(i / BLK) * block_bytes, buf);
        float part = 0.0f;
        for (int j = 0; j < BLK; j++) part += buf[j] * x[i + j];
        sum += part;
    }
    return sum;
}

float meshlm_vec_dot_bfp8(const void *row, const float *x, int64_t n) {
    return dot_ref(decode_block_bfp8, MESHLM_BFP8_BYTES, row, x, n);
}

float meshlm_vec_dot_bfp4(const void *row, const float *x, int64_t n) {
    return dot_ref(decode_block_bfp4, MESHLM_BFP4_BYTES, row, x, n);
}

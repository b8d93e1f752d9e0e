/* The block formats against an independent reading of GGUF's layouts: every quantized
 * value is pulled out bit by bit with the offsets spelled out below, and hand-built blocks
 * with known scales and codes must decode to the values the format defines. Then the
 * quantizers: round-trip error, determinism, edge cases, and vec_dot against a double dot. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "t.h"

static const int all_types[] = {
    MESHLM_TYPE_F32,  MESHLM_TYPE_F16,  MESHLM_TYPE_BF16, MESHLM_TYPE_Q4_0,
    MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0, MESHLM_TYPE_Q5_1, MESHLM_TYPE_Q8_0,
    MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q6_K, MESHLM_TYPE_MXFP4,
};
#define NTYPES ((int)(sizeof all_types / sizeof all_types[0]))

/* ---- helpers ---- */

static uint32_t rng = 0x9e3779b9u;

static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f; }

static float gaussian(void) {
    float u = uniform() + 1e-7f, v = uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* count bits starting at bit position pos (bit 0 = least significant bit of byte 0). */
static unsigned bits_at(const uint8_t *p, int pos, int count) {
    unsigned v = 0;
    for (int i = 0; i < count; i++) v |= (unsigned)((p[(pos + i) / 8] >> ((pos + i) % 8)) & 1) << i;
    return v;
}

static double half_at(const uint8_t *p) {
    unsigned h = bits_at(p, 0, 16);
    int exp = (h >> 10) & 31, mant = h & 1023;
    double v = exp ? ldexp(1024 + mant, exp - 25) : ldexp(mant, -24);
    return (h & 0x8000) ? -v : v;
}

static void put_half(uint8_t *p, float f) {
    uint16_t h = meshlm_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void fill_random_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(next_u32() >> 24);
}

/* ---- the reference decoders: one block, straight from the format definition ---- */

/* E2M1 (OCP MX): sign in bit 3, exponent in bits 1-2 (bias 1), mantissa in bit 0; exponent
 * 0 is subnormal, 0.5 * m. */
static double e2m1(unsigned c) {
    unsigned ex = (c >> 1) & 3, m = c & 1;
    double v = ex ? ldexp(1.0 + 0.5 * m, (int)ex - 1) : 0.5 * m;
    return (c & 8) ? -v : v;
}

/* Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/MXFP4: element e < 16 is the low nibble of quant byte e, element
 * e >= 16 the high nibble of byte e - 16; the fifth bit of element e is bit e of the
 * 4-byte qh field. */
static void ref_block32(int type, const uint8_t *b, double *y) {
    for (int e = 0; e < 32; e++) {
        int nib_pos = (e % 16) * 8 + (e >= 16 ? 4 : 0);
        switch (type) {
        case MESHLM_TYPE_Q4_0:
            y[e] = half_at(b) * ((int)bits_at(b + 2, nib_pos, 4) - 8);
            break;
        case MESHLM_TYPE_Q4_1:
            y[e] = half_at(b) * bits_at(b + 4, nib_pos, 4) + half_at(b + 2);
            break;
        case MESHLM_TYPE_Q5_0:
            y[e] = half_at(b) * ((int)(bits_at(b + 6, nib_pos, 4) | bits_at(b + 2, e, 1) << 4) - 16);
            break;
        case MESHLM_TYPE_Q5_1:
            y[e] = half_at(b) * (bits_at(b + 8, nib_pos, 4) | bits_at(b + 4, e, 1) << 4) + half_at(b + 2);
            break;
        case MESHLM_TYPE_Q8_0:
            y[e] = half_at(b) * (int8_t)b[2 + e];
            break;
        case MESHLM_TYPE_MXFP4: /* E8M0 scale 2^(b[0] - 127), no NaN code */
            y[e] = ldexp(e2m1(bits_at(b + 1, nib_pos, 4)), b[0] - 127);
            break;
        }
    }
}

/* Q4_K/Q5_K: d at 0, dmin at 2, 12 scale bytes at 4; Q5_K's qh (32 B) at 16, then the
 * nibbles. Sub-block j < 4: scale = bits 0-5 of scale byte j, min = bits 0-5 of byte j+4.
 * j >= 4: scale = bits 0-3 of byte j+4, then bits 6-7 of byte j-4 on top; min = bits 4-7
 * of byte j+4, then bits 6-7 of byte j on top. Element l of sub-block j: nibble (j odd:
 * high) of byte 32*(j/2) + l; Q5_K's fifth bit is bit j of qh byte l. */
static void ref_block_k(int type, const uint8_t *b, double *y) {
    const uint8_t *sc = b + 4;
    const uint8_t *qh = b + 16;
    const uint8_t *qs = type == MESHLM_TYPE_Q5_K ? b + 48 : b + 16;
    for (int j = 0; j < 8; j++) {
        unsigned s, m;
        if (j < 4) {
            s = bits_at(sc + j, 0, 6);
            m = bits_at(sc + j + 4, 0, 6);
        } else {
            s = bits_at(sc + j + 4, 0, 4) | bits_at(sc + j - 4, 6, 2) << 4;
            m = bits_at(sc + j + 4, 4, 4) | bits_at(sc + j, 6, 2) << 4;
        }
        for (int l = 0; l < 32; l++) {
            unsigned q = bits_at(qs + 32 * (j / 2) + l, (j % 2) * 4, 4);
            if (type == MESHLM_TYPE_Q5_K) q |= bits_at(qh + l, j, 1) << 4;
            y[32 * j + l] = half_at(b) * s * q - half_at(b + 2) * m;
        }
    }
}

/* Q6_K: ql (128 B), qh (64 B), 16 int8 scales, d. Each 128-element half h uses 64 ql bytes
 * and 32 qh bytes; for l < 32 the four elements 128h + l + 32k (k = 0..3) take the low
 * nibble of ql[l] (k=0), low of ql[l+32] (k=1), high of ql[l] (k=2), high of ql[l+32]
 * (k=3), and bits 2k..2k+1 of qh[l] above it; the code is stored plus 32. Scale i covers
 * elements 16i..16i+15. */
static void ref_block_q6k(const uint8_t *b, double *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    double d = half_at(b + 208);
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            for (int k = 0; k < 4; k++) {
                int e = 128 * h + 32 * k + l;
                unsigned lo = bits_at(ql + 64 * h + l + (k % 2) * 32, (k / 2) * 4, 4);
                unsigned hi = bits_at(qh + 32 * h + l, 2 * k, 2);
                y[e] = d * sc[e / 16] * ((int)(lo | hi << 4) - 32);
            }
        }
    }
}

/* The whole row, block by block. */
static void ref_decode(int type, const uint8_t *row, double *y, int64_t n) {
    int64_t be = meshlm_type_block_elems(type);
    size_t bb = meshlm_type_block_bytes(type);
    for (int64_t i = 0; i < n; i += be, row += bb, y += be) {
        switch (type) {
        case MESHLM_TYPE_F32: {
            float f;
            memcpy(&f, row, 4);
            y[0] = f;
            break;
        }
        case MESHLM_TYPE_F16:
            y[0] = half_at(row);
            break;
        case MESHLM_TYPE_BF16: {
            uint32_t u = bits_at(row, 0, 16) << 16;
            float f;
            memcpy(&f, &u, 4);
            y[0] = f;
            break;
        }
        case MESHLM_TYPE_Q4_K:
        case MESHLM_TYPE_Q5_K:
            ref_block_k(type, row, y);
            break;
        case MESHLM_TYPE_Q6_K:
            ref_block_q6k(row, y);
            break;
        default:
            ref_block32(type, row, y);
            break;
        }
    }
}

/* The library's decode of a row must equal the reference decode. */
static int decode_mismatches(int type, const uint8_t *row, int64_t n) {
    float *got = malloc((size_t)n * sizeof *got);
    double *want = malloc((size_t)n * sizeof *want);
    meshlm_dequantize_row(type, row, got, n);
    ref_decode(type, row, want, n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = 1e-6 * fabs(want[i]);
        if (!(fabs((double)got[i] - want[i]) <= tol)) {
            if (bad < 3)
                fprintf(stderr, "%s[%lld]: got %g want %g\n", meshlm_type_name(type), (long long)i,
                        (double)got[i], want[i]);
            bad++;
        }
    }
    free(got);
    free(want);
    return bad;
}

/* ---- known blocks ---- */

/* Q4_0: d = 0.5, byte j holds j in its low nibble and 15 - j in its high one. */
static void test_known_q4_0(void) {
    uint8_t b[18];
    put_half(b, 0.5f);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    meshlm_dequantize_row(MESHLM_TYPE_Q4_0, b, y, 32);
    for (int j = 0; j < 16; j++) {
        CHECK(y[j] == 0.5f * (float)(j - 8));
        CHECK(y[16 + j] == 0.5f * (float)(7 - j));
    }
    CHECK(decode_mismatches(MESHLM_TYPE_Q4_0, b, 32) == 0);
}

/* Q4_1: d = 0.25, m = -1.5; byte 3 = 0xA5 gives element 3 code 5 and element 19 code 10. */
static void test_known_q4_1(void) {
    uint8_t b[20] = {0};
    put_half(b, 0.25f);
    put_half(b + 2, -1.5f);
    b[4 + 3] = 0xA5;
    float y[32];
    meshlm_dequantize_row(MESHLM_TYPE_Q4_1, b, y, 32);
    CHECK(y[3] == 5 * 0.25f - 1.5f);
    CHECK(y[19] == 10 * 0.25f - 1.5f);
    CHECK(y[0] == -1.5f);
}

/* Q5_0: d = 2, qh = 0x80000001: element 0 gets the fifth bit, element 31 too. Byte 15 =
 * 0xF3: element 15 code 3, element 31 code 15 | 16 = 31. */
static void test_known_q5_0(void) {
    uint8_t b[22] = {0};
    put_half(b, 2.0f);
    b[2] = 0x01;
    b[5] = 0x80;
    b[6 + 0] = 0x07;
    b[6 + 15] = 0xF3;
    float y[32];
    meshlm_dequantize_row(MESHLM_TYPE_Q5_0, b, y, 32);
    CHECK(y[0] == 2.0f * ((7 | 16) - 16));
    CHECK(y[16] == 2.0f * -16);
    CHECK(y[15] == 2.0f * (3 - 16));
    CHECK(y[31] == 2.0f * (31 - 16));
}

/* Q5_1: d = 0.5, m = 1; qh bit 17 set: element 17 gets 16 plus its nibble (high of byte 1). */
static void test_known_q5_1(void) {
    uint8_t b[24] = {0};
    put_half(b, 0.5f);
    put_half(b + 2, 1.0f);
    b[4 + 2] = 0x02; /* bit 17 */
    b[8 + 1] = 0x9C; /* element 1 = 12, element 17 = 9 */
    float y[32];
    meshlm_dequantize_row(MESHLM_TYPE_Q5_1, b, y, 32);
    CHECK(y[1] == 0.5f * 12 + 1.0f);
    CHECK(y[17] == 0.5f * (9 + 16) + 1.0f);
    CHECK(y[2] == 1.0f);
}

/* Q8_0: d = 0.125, codes -128, 127, -1. */
static void test_known_q8_0(void) {
    uint8_t b[34] = {0};
    put_half(b, 0.125f);
    b[2] = 0x80;
    b[3] = 0x7f;
    b[4] = 0xff;
    float y[32];
    meshlm_dequantize_row(MESHLM_TYPE_Q8_0, b, y, 32);
    CHECK(y[0] == -16.0f);
    CHECK(y[1] == 15.875f);
    CHECK(y[2] == -0.125f);
    CHECK(y[3] == 0.0f);
}

/* MXFP4: byte j holds code j low and 15 - j high, so the block shows every E2M1 value.
 * Scales at the ends of E8M0's range, as ggml reads them: e = 0 and 1 are the denormal
 * 2^-127 and 2^-126 (ggml_e8m0_to_fp32_half keeps them, no flush), 254 is 2^127 and 255
 * is 2^128, a number rather than the OCP format's NaN, so 0.5 * 2^128 = 2^127 is finite
 * and the codes whose value passes FLT_MAX are inf, as ggml's dequantize_row_mxfp4 gives. */
static void test_known_mxfp4(void) {
    static const float e2m1_vals[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    uint8_t b[17];
    float y[32];
    for (int j = 0; j < 16; j++) b[1 + j] = (uint8_t)(j | (15 - j) << 4);
    static const int exps[] = {0, 1, 2, 126, 127, 128, 200, 252};
    for (size_t k = 0; k < sizeof exps / sizeof exps[0]; k++) {
        b[0] = (uint8_t)exps[k];
        meshlm_dequantize_row(MESHLM_TYPE_MXFP4, b, y, 32);
        const float scale = ldexpf(1.0f, exps[k] - 127);
        bool ok = true;
        for (int j = 0; j < 16; j++) ok = ok && y[j] == e2m1_vals[j] * scale && y[16 + j] == e2m1_vals[15 - j] * scale;
        CHECK_MSG(ok, "MXFP4 e = %d", exps[k]);
        CHECK(decode_mismatches(MESHLM_TYPE_MXFP4, b, 32) == 0);
    }
    b[0] = 0;
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, b, y, 32);
    CHECK(y[1] == ldexpf(1.0f, -128) && y[1] > 0.0f && y[7] == 6.0f * ldexpf(1.0f, -127));
    b[0] = 255;
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, b, y, 32);
    CHECK(y[0] == 0.0f && y[1] == ldexpf(1.0f, 127) && y[9] == -ldexpf(1.0f, 127));
    CHECK(isinf(y[2]) && y[2] > 0.0f && isinf(y[16 + 5]) && y[16 + 5] < 0.0f); /* codes 2 and 10: +-2^128 */
    b[0] = 254;
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, b, y, 32);
    CHECK(y[3] == 1.5f * ldexpf(1.0f, 127) && isinf(y[4]));
    CHECK(meshlm_e8m0_to_fp32_half(0) == ldexpf(1.0f, -128) && meshlm_e8m0_to_fp32_half(1) == ldexpf(1.0f, -127));
    CHECK(meshlm_e8m0_to_fp32_half(2) == ldexpf(1.0f, -126) && meshlm_e8m0_to_fp32_half(128) == 1.0f);
    CHECK(meshlm_e8m0_to_fp32_half(255) == ldexpf(1.0f, 127));
}

/* MXFP4's quantizer, ggml's reference: the exponent is floor(log2(amax)) - 2 + 127, so the
 * E2M1 unit s = 2^(e - 127) puts amax at 4..8 units; each value takes the nearest of
 * s * {0, 0.5, 1, 1.5, 2, 3, 4, 6} with its sign, so the error is at most half the widest
 * gap, s, below 6s, and amax - 6s (clipping) above it. Also hand-picked blocks. */
static void test_quant_mxfp4(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t q[N / 32 * 17];
    for (int i = 0; i < N; i++) x[i] = gaussian() * ldexpf(1.0f, (int)(i / 32) % 40 - 20);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;              /* an all-zero block */
    x[160] = 1e-39f, x[161] = -3e-39f;                          /* a denormal-only block */
    for (int i = 162; i < 192; i++) x[i] = 0.0f;
    meshlm_quantize_row(MESHLM_TYPE_MXFP4, x, q, N);
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        int want_e = amax > 0.0f ? (int)floorf(log2f(amax)) - 2 + 127 : 0;
        if (want_e < 0) want_e = 0;
        bad += q[17 * b] != want_e;
        double s = ldexp(1.0, q[17 * b] - 127), tol = fmax(s, (double)amax - 6.0 * s) * (1.0 + 1e-6);
        for (int j = 0; j < 32; j++) bad += !(fabs((double)y[32 * b + j] - x[32 * b + j]) <= tol);
    }
    CHECK_MSG(bad == 0, "MXFP4: %d exponents or values beyond the rounding bound", bad);
    CHECK(q[17 * 2] == 0 && q[17 * 5] == 0);
    /* amax 5 -> e = 2 - 2 + 127, s = 1: 5 ties between 4 and 6 and takes the first (4), 2.9
     * rounds to 3, -0.74 to -0.5, 0.76 to 1, 7.9 would clip but amax is 5. */
    float v[32] = {5.0f, 2.9f, -0.74f, 0.76f, -5.0f, 0.25f, -0.26f, 1.25f};
    uint8_t blk[17];
    meshlm_quantize_row(MESHLM_TYPE_MXFP4, v, blk, 32);
    float w[32];
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, blk, w, 32);
    CHECK(blk[0] == 127);
    CHECK(w[0] == 4.0f && w[1] == 3.0f && w[2] == -0.5f && w[3] == 1.0f && w[4] == -4.0f);
    CHECK(w[5] == 0.0f && w[6] == -0.5f && w[7] == 1.0f);
    /* amax 7.5 -> s = 1 still, and 7.5 clips to 6. */
    v[0] = 7.5f;
    meshlm_quantize_row(MESHLM_TYPE_MXFP4, v, blk, 32);
    meshlm_dequantize_row(MESHLM_TYPE_MXFP4, blk, w, 32);
    CHECK(blk[0] == 127 && w[0] == 6.0f);
    free(x);
    free(y);
}

/* Q4_K and Q5_K with d = 0.5, dmin = 0.25 and these scale bytes. Worked out by hand:
 * sub-block 0: scale = 0xC1 & 63 = 1, min = 0x45 & 63 = 5;
 * sub-block 4: scale = (0x9A & 15) | (0xC1 >> 6) << 4 = 58, min = (0x9A >> 4) | (0x45 >> 6) << 4 = 25;
 * sub-block 5: scale = (0xBC & 15) | (0x42 >> 6) << 4 = 28, min = (0xBC >> 4) | (0x86 >> 6) << 4 = 43;
 * sub-block 6: scale = (0xDE & 15) | (0x83 >> 6) << 4 = 46, min = (0xDE >> 4) | (0xC7 >> 6) << 4 = 61.
 * Quant byte 64 = 0x73 is element 0 of sub-block 4 (code 3) and of sub-block 5 (code 7). */
static const uint8_t k_scales[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0xBC, 0xDE, 0xF1};

static void test_known_q4_k(void) {
    uint8_t b[144];
    fill_random_bytes(b, sizeof b);
    put_half(b, 0.5f);
    put_half(b + 2, 0.25f);
    memcpy(b + 4, k_scales, 12);
    b[16 + 64] = 0x73;
    b[16 + 0] = 0x0F; /* sub-block 0, element 0: code 15 */
    float y[256];
    meshlm_dequantize_row(MESHLM_TYPE_Q4_K, b, y, 256);
    CHECK(y[0] == 0.5f * 1 * 15 - 0.25f * 5);
    CHECK(y[128] == 0.5f * 58 * 3 - 0.25f * 25);
    CHECK(y[160] == 0.5f * 28 * 7 - 0.25f * 43);
    CHECK(decode_mismatches(MESHLM_TYPE_Q4_K, b, 256) == 0);
}

/* Same scales; qh byte 0 = 0x30 gives element 0 of sub-blocks 4 and 5 their fifth bit. */
static void test_known_q5_k(void) {
    uint8_t b[176];
    fill_random_bytes(b, sizeof b);
    put_half(b, 0.5f);
    put_half(b + 2, 0.25f);
    memcpy(b + 4, k_scales, 12);
    b[16 + 0] = 0x30;
    b[16 + 6] = 0x40; /* element 6 of sub-block 6 */
    b[48 + 64] = 0x73;
    b[48 + 96 + 6] = 0x02; /* sub-block 6 element 6: code 2 | 16 */
    float y[256];
    meshlm_dequantize_row(MESHLM_TYPE_Q5_K, b, y, 256);
    CHECK(y[128] == 0.5f * 58 * (3 + 16) - 0.25f * 25);
    CHECK(y[160] == 0.5f * 28 * (7 + 16) - 0.25f * 43);
    CHECK(y[192 + 6] == 0.5f * 46 * (2 + 16) - 0.25f * 61);
    CHECK(decode_mismatches(MESHLM_TYPE_Q5_K, b, 256) == 0);
}

/* Q6_K, d = 0.25. Element 200 = 128 + 64 + 8: half 1, k = 2, l = 8, so its nibble is the
 * high one of ql[64 + 8], its top bits are bits 4-5 of qh[32 + 8], its scale is scales[12].
 * Element 0: low nibble of ql[0], bits 0-1 of qh[0], scale 0. */
static void test_known_q6_k(void) {
    uint8_t b[210];
    fill_random_bytes(b, sizeof b);
    put_half(b + 208, 0.25f);
    b[72] = 0xA5;             /* element 200 low bits 0xA, element 136 low bits 0x5 */
    b[128 + 40] = 0x20;       /* element 200 top bits 2; elements 136, 168, 232 top bits 0 */
    b[192 + 12] = 0xFD;       /* scale -3 */
    b[0] = 0x0F;
    b[128] = 0x03;
    b[192] = 0x7F;
    float y[256];
    meshlm_dequantize_row(MESHLM_TYPE_Q6_K, b, y, 256);
    CHECK(y[200] == 0.25f * -3 * ((0xA | 2 << 4) - 32));
    CHECK(y[136] == 0.25f * (float)(int8_t)b[192 + 8] * (0x5 - 32));
    CHECK(y[0] == 0.25f * 127 * (63 - 32));
    CHECK(decode_mismatches(MESHLM_TYPE_Q6_K, b, 256) == 0);
}

/* Random bytes with sane (finite, moderate) scales decode the same in both decoders. */
static void test_random_blocks(void) {
    for (int t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        int64_t n = meshlm_type_block_elems(type) == 256 ? 256 * 3 : 32 * 7;
        size_t bytes = meshlm_type_row_bytes(type, n), bb = meshlm_type_block_bytes(type);
        uint8_t *row = malloc(bytes);
        fill_random_bytes(row, bytes);
        for (size_t off = 0; off < bytes && meshlm_type_block_elems(type) > 1; off += bb) {
            size_t d_at = type == MESHLM_TYPE_Q6_K ? 208 : 0;
            if (type == MESHLM_TYPE_MXFP4) {
                row[off] = (uint8_t)(100 + next_u32() % 50);
                continue;
            }
            put_half(row + off + d_at, 0.01f + uniform());
            if (type == MESHLM_TYPE_Q4_1 || type == MESHLM_TYPE_Q5_1 || type == MESHLM_TYPE_Q4_K ||
                type == MESHLM_TYPE_Q5_K)
                put_half(row + off + 2, uniform() - 0.5f);
        }
        if (type == MESHLM_TYPE_F32)
            for (int64_t i = 0; i < n; i++) {
                float f = gaussian();
                memcpy(row + 4 * i, &f, 4);
            }
        if (type == MESHLM_TYPE_F16 || type == MESHLM_TYPE_BF16)
            for (int64_t i = 0; i < n; i++) row[2 * i + 1] = (uint8_t)(row[2 * i + 1] & 0xbf);
        CHECK_MSG(decode_mismatches(type, row, n) == 0, "%s", meshlm_type_name(type));
        free(row);
    }
}

/* ---- quantizers ---- */

static int64_t test_len(int type) { return meshlm_type_block_elems(type) == 256 ? 256 * 3 : 32 * 7; }

/* Relative RMS error of quantize -> dequantize on Gaussian data; bounds sit a little above
 * what the formats achieve (ggml's reference quantizers land at about the same levels). */
static void test_round_trip(void) {
    struct {
        int type;
        double max_rel_rmse;
    } bounds[] = {
        {MESHLM_TYPE_F32, 0.0},      {MESHLM_TYPE_F16, 3e-4},     {MESHLM_TYPE_BF16, 2.5e-3},
        {MESHLM_TYPE_Q8_0, 0.0075},  {MESHLM_TYPE_Q4_0, 0.11},    {MESHLM_TYPE_Q4_1, 0.10},
        {MESHLM_TYPE_Q5_0, 0.06},    {MESHLM_TYPE_Q5_1, 0.05},    {MESHLM_TYPE_Q4_K, 0.085},
        {MESHLM_TYPE_Q5_K, 0.043},   {MESHLM_TYPE_Q6_K, 0.022},   {MESHLM_TYPE_MXFP4, 0.15},
    };
    for (size_t t = 0; t < sizeof bounds / sizeof bounds[0]; t++) {
        int type = bounds[t].type;
        int64_t n = test_len(type);
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        uint8_t *q = malloc(meshlm_type_row_bytes(type, n));
        for (int64_t i = 0; i < n; i++) x[i] = gaussian() * 3.0f + 0.5f;
        meshlm_quantize_row(type, x, q, n);
        meshlm_dequantize_row(type, q, y, n);
        double se = 0, sx = 0, maxerr = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = (double)y[i] - x[i];
            se += e * e;
            sx += (double)x[i] * x[i];
            if (fabs(e) > maxerr) maxerr = fabs(e);
        }
        double rel = sqrt(se / sx);
        printf("%-5s rel rmse %.5f  max abs err %.4f\n", meshlm_type_name(type), rel, maxerr);
        CHECK_MSG(rel <= bounds[t].max_rel_rmse, "%s: rel rmse %g", meshlm_type_name(type), rel);
        CHECK_MSG(decode_mismatches(type, q, n) == 0, "%s", meshlm_type_name(type));
        free(x);
        free(y);
        free(q);
    }
}

/* Same input, same bytes, and every byte written (output buffers pre-filled differently). */
static void test_deterministic(void) {
    for (int t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        int64_t n = test_len(type);
        size_t bytes = meshlm_type_row_bytes(type, n);
        float *x = malloc((size_t)n * sizeof *x);
        uint8_t *a = malloc(bytes), *b = malloc(bytes);
        for (int64_t i = 0; i < n; i++) x[i] = gaussian();
        memset(a, 0x00, bytes);
        memset(b, 0xff, bytes);
        meshlm_quantize_row(type, x, a, n);
        meshlm_quantize_row(type, x, b, n);
        CHECK_MSG(memcmp(a, b, bytes) == 0, "%s", meshlm_type_name(type));
        free(x);
        free(a);
        free(b);
    }
}

/* Quantizes one row built by fill, returns the dequantized values in y. */
static void round_trip(int type, const float *x, float *y, int64_t n) {
    uint8_t *q = malloc(meshlm_type_row_bytes(type, n));
    meshlm_quantize_row(type, x, q, n);
    meshlm_dequantize_row(type, q, y, n);
    free(q);
}

static bool all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return false;
    return true;
}

static void test_edge_cases(void) {
    for (int t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        const char *name = meshlm_type_name(type);
        int64_t n = test_len(type);
        /* MXFP4 clips values past 6/8 of the block's power-of-two range (test_quant_mxfp4
         * bounds it), so the closeness checks here are for the other formats. */
        const bool clips = type == MESHLM_TYPE_MXFP4;
        float *x = calloc((size_t)n, sizeof *x), *y = malloc((size_t)n * sizeof *y);

        /* All zeros decode to exact zeros. */
        round_trip(type, x, y, n);
        bool zeros = true;
        for (int64_t i = 0; i < n; i++) zeros = zeros && y[i] == 0.0f;
        CHECK_MSG(zeros, "%s: zero block", name);

        /* One huge value among small ones: it survives, nothing becomes inf or NaN, and
         * the small ones stay within the huge value's quantization step. */
        for (int pass = 0; pass < 2; pass++) {
            float huge = pass ? -1000.0f : 1000.0f;
            for (int64_t i = 0; i < n; i++) x[i] = gaussian() * 0.5f;
            x[37] = huge;
            round_trip(type, x, y, n);
            CHECK_MSG(all_finite(y, n), "%s: huge value gave non-finite output", name);
            CHECK_MSG(clips || fabsf(y[37] - huge) <= 0.02f * fabsf(huge), "%s: huge %g -> %g", name,
                      (double)huge, (double)y[37]);
            float maxerr = 0.0f;
            for (int64_t i = 0; i < n; i++) maxerr = fmaxf(maxerr, fabsf(y[i] - x[i]));
            CHECK_MSG(maxerr <= (clips ? 0.25f : 0.1f) * fabsf(huge), "%s: max err %g", name, (double)maxerr);
        }

        /* Negative extremes: all-negative data, and the most negative representable
         * magnitudes the scales can carry. */
        for (int64_t i = 0; i < n; i++) x[i] = -1.0f - 4.0f * uniform();
        round_trip(type, x, y, n);
        double se = 0, sx = 0;
        for (int64_t i = 0; i < n; i++) {
            se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            sx += (double)x[i] * x[i];
        }
        CHECK_MSG(sqrt(se / sx) < (clips ? 0.15 : 0.06), "%s: all-negative rel rmse %g", name, sqrt(se / sx));
        for (int64_t i = 0; i < n; i++) x[i] = (i % 3 == 0) ? -30000.0f : -30000.0f * uniform();
        round_trip(type, x, y, n);
        CHECK_MSG(all_finite(y, n), "%s: large negatives gave non-finite output", name);
        bool kept = true;
        for (int64_t i = 0; i < n; i += 3) kept = kept && fabsf(y[i] + 30000.0f) <= 0.02f * 30000.0f;
        CHECK_MSG(clips || kept, "%s: -30000 not kept", name);

        /* Values beyond what a half-precision scale can carry saturate, never inf/NaN. */
        for (int64_t i = 0; i < n; i++) x[i] = (i % 2 ? 1e9f : -1e9f) * uniform();
        round_trip(type, x, y, n);
        if (type != MESHLM_TYPE_F16) CHECK_MSG(all_finite(y, n), "%s: 1e9 gave non-finite output", name);
        free(x);
        free(y);
    }
}

/* ---- vec_dot ---- */

/* vec_dot against a double-precision dot of the dequantized row. Chunks of at most 256
 * are summed in f32 and the chunk sums added in f32, so the error is bounded by
 * (256 + chunks) * FLT_EPSILON * sum |a_i x_i|. */
static void test_vec_dot(void) {
    for (int t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        int64_t sizes[2] = {test_len(type), meshlm_type_block_elems(type) == 1 ? 1037 : 256 * 5};
        for (int s = 0; s < 2; s++) {
            int64_t n = sizes[s];
            float *x = malloc((size_t)n * sizeof *x), *v = malloc((size_t)n * sizeof *v);
            float *deq = malloc((size_t)n * sizeof *deq);
            uint8_t *q = malloc(meshlm_type_row_bytes(type, n));
            for (int64_t i = 0; i < n; i++) {
                v[i] = gaussian();
                x[i] = gaussian();
            }
            meshlm_quantize_row(type, v, q, n);
            meshlm_dequantize_row(type, q, deq, n);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                want += (double)deq[i] * x[i];
                mag += fabs((double)deq[i] * x[i]);
            }
            float got = meshlm_vec_dot(type, q, x, n);
            double tol = (256.0 + (double)n / 256.0 + 1.0) * FLT_EPSILON * mag;
            CHECK_MSG(fabs((double)got - want) <= tol, "%s n=%lld: %g vs %g (tol %g)", meshlm_type_name(type),
                      (long long)n, (double)got, want, tol);
            free(x);
            free(v);
            free(deq);
            free(q);
        }
    }
}

static void test_unsupported(void) {
    float y[32] = {1.0f}, x[32] = {1.0f};
    uint8_t raw[64] = {0};
    CHECK(!meshlm_quant_supported(4));
    CHECK(!meshlm_quant_supported(-1));
    CHECK(!meshlm_quant_supported(MESHLM_TYPE_COUNT));
    for (int t = 0; t < NTYPES; t++) CHECK(meshlm_quant_supported(all_types[t]));
    meshlm_dequantize_row(4, raw, y, 32);
    CHECK(y[0] == 0.0f);
    CHECK(meshlm_vec_dot(4, raw, x, 32) == 0.0f);
}

int main(void) {
    test_known_q4_0();
    test_known_q4_1();
    test_known_q5_0();
    test_known_q5_1();
    test_known_q8_0();
    test_known_q4_k();
    test_known_q5_k();
    test_known_q6_k();
    test_known_mxfp4();
    test_quant_mxfp4();
    test_random_blocks();
    test_round_trip();
    test_deterministic();
    test_edge_cases();
    test_vec_dot();
    test_unsupported();
    return t_done();
}

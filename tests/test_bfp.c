/* The block floats (core/bfp.h) against an independent reading of their encoding: codes
 * pulled out bit by bit and valued with ldexp in double; hand-built blocks; round trips of
 * odd values (zeros, subnormals, huge, negative, mixed magnitudes, ties, saturation, inf
 * and NaN by the documented policy); the error bound |v - q(v)| <= amax * 2^-M per block;
 * the AVX2 dot against the reference on every length 16..16*40 and a long row, at
 * unaligned addresses, with codes from the quantizer and raw random bytes:
 *   |kernel - reference| <= 1e-5 * sum_i |w_i x_i| + FLT_MIN;
 * and lengths that are not a multiple of 16 refused (NaN, nothing written, a message). */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bfp.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "meshlm.h"
#include "t.h"

typedef struct fmt {
    int type, m_bits;
    size_t bytes;
    void (*quant)(const float *, void *, int64_t);
    void (*dequant)(const void *, float *, int64_t);
    float (*dot)(const void *, const float *, int64_t);
} fmt;

static const fmt fmts[2] = {
    {MESHLM_TYPE_BFP8, 7, 17, meshlm_quantize_row_bfp8, meshlm_dequantize_row_bfp8, meshlm_vec_dot_bfp8},
    {MESHLM_TYPE_BFP4, 3, 9, meshlm_quantize_row_bfp4, meshlm_dequantize_row_bfp4, meshlm_vec_dot_bfp4},
};

static uint32_t rng = 0x2545f491u;

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

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* count bits from bit position pos (bit 0 = least significant bit of byte 0). */
static unsigned bits_at(const uint8_t *p, int pos, int count) {
    unsigned v = 0;
    for (int i = 0; i < count; i++) v |= (unsigned)((p[(pos + i) / 8] >> ((pos + i) % 8)) & 1) << i;
    return v;
}

/* Value j of a block as bfp.h defines it, in double. BFP8: byte 1 + j; BFP4: nibble
 * (j % 8) of bytes 1.., low half for j < 8. */
static double ref_value(const fmt *f, const uint8_t *blk, int j) {
    int e = (int)bits_at(blk, 0, 8), width = f->m_bits + 1;
    int pos = f->m_bits == 7 ? 8 + 8 * j : 8 + 8 * (j % 8) + (j < 8 ? 0 : 4);
    unsigned code = bits_at(blk, pos, width);
    unsigned mag = code & ((1u << f->m_bits) - 1), sign = code >> f->m_bits;
    double v = ldexp((double)mag, e - 127 - (f->m_bits - 1));
    return sign ? -v : v;
}

static void test_hand_blocks(void) {
    /* BFP8, e = 127 (step 2^-6): 64 = 1.0, 0x80 | 64 = -1.0, 127 = 127/64, 1 = 1/64. */
    uint8_t b8[17] = {127, 64, 0x80 | 64, 127, 1, 0x80, 0, 0x80 | 127, 32};
    float out[16];
    meshlm_dequantize_row_bfp8(b8, out, 16);
    CHECK(out[0] == 1.0f && out[1] == -1.0f && out[2] == 127.0f / 64 && out[3] == 1.0f / 64);
    CHECK(out[4] == 0.0f && signbit(out[4]) && out[5] == 0.0f && !signbit(out[5]));
    CHECK(out[6] == -127.0f / 64 && out[7] == 0.5f);
    /* BFP4, e = 130 (step 2^1): byte 1 = element 0 (low) and element 8 (high). */
    uint8_t b4[9] = {130, 0x4 | (0xc << 4), 0x7 | (0xf << 4), 0x1 | (0x9 << 4), 0x8};
    meshlm_dequantize_row_bfp4(b4, out, 16);
    CHECK(out[0] == 8.0f && out[8] == -8.0f && out[1] == 14.0f && out[9] == -14.0f);
    CHECK(out[2] == 2.0f && out[10] == -2.0f && out[3] == 0.0f && signbit(out[3]) && out[11] == 0.0f);
    /* The extremes of the exponent byte stay exact: 2^-133 is an f32 subnormal. */
    uint8_t lo[17] = {0, 1, 127};
    meshlm_dequantize_row_bfp8(lo, out, 16);
    CHECK(out[0] == 0x1p-133f && out[1] == 127 * 0x1p-133f);
    uint8_t hi[17] = {254, 127};
    meshlm_dequantize_row_bfp8(hi, out, 16);
    CHECK(out[0] == 127 * 0x1p121f && isfinite(out[0]));
    CHECK(meshlm_bfp_step(127, 7) == 0x1p-6f && meshlm_bfp_step(0, 3) == 0x1p-129f &&
          meshlm_bfp_step(255, 3) == 0x1p126f);
}

/* dequantize == the bit-level decoder, on random bytes (every code and exponent 0..255)
 * and on quantized random data. */
static void test_decoder_independent(void) {
    for (int fi = 0; fi < 2; fi++) {
        const fmt *f = &fmts[fi];
        enum { NB = 300 };
        uint8_t *q = malloc(NB * f->bytes);
        float out[NB * 16];
        for (size_t i = 0; i < NB * f->bytes; i++) q[i] = (uint8_t)(next_u32() >> 24);
        int bad = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                float src[NB * 16];
                for (int i = 0; i < NB * 16; i++) src[i] = gaussian() * powf(10.0f, (float)(i / 16 % 13) - 6.0f);
                f->quant(src, q, NB * 16);
            }
            f->dequant(q, out, NB * 16);
            for (int b = 0; b < NB; b++)
                for (int j = 0; j < 16; j++) {
                    double want = ref_value(f, q + b * f->bytes, j);
                    float got = out[b * 16 + j];
                    if (fabs(want) > FLT_MAX) { /* exponent byte 255, never written: overflows */
                        if (!isinf(got) || !signbit(got) != !signbit(want)) bad++;
                    } else if ((double)got != want || (want == 0 && !signbit(got) != !signbit(want))) {
                        bad++;
                    }
                }
        }
        CHECK_MSG(bad == 0, "%s: %d values differ from the bit-level decoder", meshlm_type_name(f->type), bad);
        free(q);
    }
}

/* Quantizes one block, decodes it; returns the codes' exponent byte. */
static int trip(const fmt *f, const float *src, float *out) {
    uint8_t q[17];
    memset(q, 0xaa, sizeof q);
    f->quant(src, q, 16);
    f->dequant(q, out, 16);
    return q[0];
}

static void test_odd_values(void) {
    for (int fi = 0; fi < 2; fi++) {
        const fmt *f = &fmts[fi];
        const char *name = meshlm_type_name(f->type);
        int M = f->m_bits, top = (1 << M) - 1;
        float src[16], out[16];

        /* Zeros, both signs: exponent 0, decoded zeros keep their sign. */
        for (int j = 0; j < 16; j++) src[j] = j % 2 ? -0.0f : 0.0f;
        CHECK(trip(f, src, out) == 0);
        for (int j = 0; j < 16; j++) CHECK_MSG(out[j] == 0 && !signbit(out[j]) == !(j % 2), "%s zero %d", name, j);

        /* Every magnitude of a block with leading value 1.0 (e = 127) is exact. */
        for (int j = 0; j < 16; j++) {
            int k = (j * 37) % (top + 1);
            src[j] = (j == 0 ? 1.0f : (float)k * ldexpf(1.0f, 1 - M)) * (j % 3 ? 1.0f : -1.0f);
        }
        src[0] = 1.0f;
        CHECK(trip(f, src, out) == 127);
        for (int j = 0; j < 16; j++) CHECK_MSG(out[j] == src[j], "%s exact %d: %g vs %g", name, j, out[j], src[j]);

        /* Ties to even, and saturation of a maximum that rounds up to 2^M steps. */
        float step = ldexpf(1.0f, 1 - M);
        for (int j = 0; j < 16; j++) src[j] = 0.0f;
        src[0] = 1.0f;
        src[1] = 2.5f * step;
        src[2] = -3.5f * step;
        src[3] = 2.5f * step + ldexpf(step, -20);
        src[4] = (float)top * step + 0.5f * step; /* 2^M - 1/2 steps: rounds to 2^M, saturates */
        trip(f, src, out);
        CHECK_MSG(out[1] == 2 * step && out[2] == -4 * step && out[3] == 3 * step, "%s ties: %g %g %g", name, out[1],
                  out[2], out[3]);
        CHECK_MSG(out[4] == (float)top * step, "%s saturation: %g", name, out[4]);

        /* Huge: FLT_MAX takes e = 254 and saturates; everything stays finite. */
        src[0] = FLT_MAX, src[1] = -FLT_MAX, src[2] = 1e30f, src[3] = 1.0f;
        CHECK(trip(f, src, out) == 254);
        CHECK(isfinite(out[0]) && out[0] == (float)top * ldexpf(1.0f, 127 - (M - 1)) && out[1] == -out[0]);
        CHECK(fabsf(out[0] - FLT_MAX) <= FLT_MAX * ldexpf(1.0f, -M));
        CHECK(out[3] == 0.0f);

        /* Mixed magnitudes in one block: the small ones flush to signed zero. */
        for (int j = 0; j < 16; j++) src[j] = (j % 2 ? -1e-6f : 1e-6f) * (float)(j + 1);
        src[5] = 1e6f;
        trip(f, src, out);
        for (int j = 0; j < 16; j++)
            if (j != 5) CHECK_MSG(out[j] == 0 && !signbit(out[j]) == !(j % 2), "%s mixed %d: %g", name, j, out[j]);
        CHECK(fabsf(out[5] - 1e6f) <= 1e6f * ldexpf(1.0f, -M));

        /* f32 subnormals: exponent 1, within half a step 2^(-126-M) of the value. */
        for (int j = 0; j < 16; j++) src[j] = bits_f32(((uint32_t)(j % 2) << 31) | (next_u32() >> 9));
        CHECK(trip(f, src, out) == 1);
        for (int j = 0; j < 16; j++)
            CHECK_MSG(fabs((double)out[j] - src[j]) <= ldexp(1.0, -126 - M), "%s subnormal %d: %a vs %a", name, j,
                      (double)out[j], (double)src[j]);
        /* One normal value among subnormals: they all flush. */
        src[7] = 0.25f;
        CHECK(trip(f, src, out) == 125);
        for (int j = 0; j < 16; j++) CHECK(j == 7 ? out[j] == 0.25f : out[j] == 0.0f);

        /* Inf and NaN: they do not set the exponent; inf saturates at the block's scale,
         * NaN becomes +0; the other values are unharmed. */
        for (int j = 0; j < 16; j++) src[j] = 0.5f * (float)(j + 1) * step;
        src[15] = 1.0f;
        src[3] = INFINITY, src[4] = -INFINITY, src[5] = NAN, src[6] = -NAN;
        CHECK(trip(f, src, out) == 127);
        CHECK(out[3] == (float)top * step && out[4] == -(float)top * step);
        CHECK(out[5] == 0.0f && !signbit(out[5]) && out[6] == 0.0f && !signbit(out[6]));
        for (int j = 0; j < 16; j++)
            if (j < 3 || j > 6) CHECK(fabsf(out[j] - src[j]) <= 0.5f * step);
        for (int j = 0; j < 16; j++) src[j] = j % 2 ? NAN : -INFINITY;
        CHECK(trip(f, src, out) == 0);
        float inf_code = -(float)top * meshlm_bfp_step(0, M); /* -inf at e = 0 */
        for (int j = 0; j < 16; j++) CHECK(isfinite(out[j]) && out[j] == (j % 2 ? 0.0f : inf_code));
    }
}

/* Per block: max |v - q(v)| / amax <= 2^-M, over blocks of gaussians at scales 1e-30 to
 * 1e30, blocks spanning many octaves, and blocks near the saturation edge. */
static void test_error_bound(void) {
    for (int fi = 0; fi < 2; fi++) {
        const fmt *f = &fmts[fi];
        double worst = 0, bound = ldexp(1.0, -f->m_bits);
        int bad = 0;
        for (int b = 0; b < 20000; b++) {
            float src[16], out[16], amax = 0;
            float scale = powf(10.0f, (uniform() - 0.5f) * 60.0f);
            for (int j = 0; j < 16; j++) {
                switch (b % 3) {
                case 0: src[j] = gaussian() * scale; break;
                case 1: src[j] = gaussian() * scale * powf(2.0f, uniform() * 24.0f - 12.0f); break;
                default: src[j] = (2.0f - uniform() * ldexpf(1.0f, 2 - f->m_bits)) * (j % 2 ? -scale : scale);
                }
                amax = fmaxf(amax, fabsf(src[j]));
            }
            trip(f, src, out);
            for (int j = 0; j < 16; j++) {
                double r = fabs((double)out[j] - src[j]) / amax;
                if (r > worst) worst = r;
                if (r > bound) bad++;
            }
        }
        printf("%s: worst |v - q(v)| / amax = %.6f (bound 2^-%d = %.6f)\n", meshlm_type_name(f->type), worst,
               f->m_bits, bound);
        CHECK_MSG(bad == 0, "%s: %d values beyond the bound", meshlm_type_name(f->type), bad);
        CHECK(worst > 0.5 * bound); /* the bound is nearly tight, so it says something */
    }
}

/* Codes of any value with exponents in 100..154, so products and sums stay finite. */
static void raw_blocks(const fmt *f, uint8_t *q, int64_t n) {
    for (int64_t b = 0; b < n / 16; b++) {
        uint8_t *blk = q + b * f->bytes;
        for (size_t i = 0; i < f->bytes; i++) blk[i] = (uint8_t)(next_u32() >> 24);
        blk[0] = (uint8_t)(100 + next_u32() % 55);
    }
}

static void check_dot(const fmt *f, meshlm_dot_fn kernel, int64_t n, bool raw) {
    size_t rb = meshlm_type_row_bytes(f->type, n);
    uint8_t *qbuf = malloc(rb + 1), *q = qbuf + 1;
    float *xbuf = malloc((size_t)(n + 1) * sizeof(float)), *x = xbuf + 1;
    float *w = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = gaussian() * powf(10.0f, uniform() * 6.0f - 3.0f);
    if (raw) {
        raw_blocks(f, q, n);
    } else {
        for (int64_t i = 0; i < n; i++) w[i] = gaussian() * powf(10.0f, uniform() * 6.0f - 3.0f);
        f->quant(w, q, n);
    }
    f->dequant(q, w, n);
    double mag = 0, exact = 0;
    for (int64_t i = 0; i < n; i++) {
        mag += fabs((double)w[i] * x[i]);
        exact += (double)w[i] * x[i];
    }
    float ref = f->dot(q, x, n);
    double tol = 1e-5 * mag + FLT_MIN;
    CHECK_MSG(fabs((double)ref - exact) <= tol, "%s n=%lld: reference %.9g vs double %.9g", meshlm_type_name(f->type),
              (long long)n, (double)ref, exact);
    if (kernel) {
        float got = kernel(q, x, n);
        CHECK_MSG(fabs((double)got - ref) <= tol, "%s n=%lld%s: kernel %.9g vs ref %.9g (tol %g)",
                  meshlm_type_name(f->type), (long long)n, raw ? " raw" : "", (double)got, (double)ref, tol);
    }
    /* Once quant.c dispatches the block floats, its paths must be these functions. */
    if (meshlm_quant_supported(f->type)) {
        float via_ref = meshlm_vec_dot_ref(f->type, q, x, n), via = meshlm_vec_dot(f->type, q, x, n);
        CHECK_MSG(memcmp(&via_ref, &ref, 4) == 0, "%s n=%lld: vec_dot_ref %.9g vs %.9g", meshlm_type_name(f->type),
                  (long long)n, (double)via_ref, (double)ref);
        float want = kernel && meshlm_cpu_path_get() == MESHLM_CPU_AVX2 ? kernel(q, x, n) : ref;
        CHECK_MSG(memcmp(&via, &want, 4) == 0, "%s n=%lld: vec_dot %.9g vs %.9g", meshlm_type_name(f->type),
                  (long long)n, (double)via, (double)want);
        float *d = malloc((size_t)n * sizeof(float));
        meshlm_dequantize_row(f->type, q, d, n);
        CHECK(memcmp(d, w, (size_t)n * sizeof(float)) == 0);
        free(d);
    }
    free(qbuf);
    free(xbuf);
    free(w);
}

static void test_dots(void) {
    const meshlm_cpu_caps *caps = meshlm_cpu_detect();
    bool avx2 = caps->avx2 && caps->fma;
    if (!avx2) printf("no AVX2+FMA on this CPU: the kernels are not run, only the reference\n");
    if (!meshlm_quant_supported(MESHLM_TYPE_BFP8))
        printf("quant.c does not dispatch BFP8/BFP4 yet: meshlm_vec_dot and friends are not compared\n");
    for (int fi = 0; fi < 2; fi++) {
        const fmt *f = &fmts[fi];
        meshlm_dot_fn kernel = avx2 ? meshlm_dot_bfp_avx2(f->type) : NULL;
        CHECK(!avx2 || kernel != NULL);
        for (int64_t blocks = 1; blocks <= 40; blocks++) {
            check_dot(f, kernel, blocks * 16, false);
            check_dot(f, kernel, blocks * 16, true);
        }
        check_dot(f, kernel, 16 * 257, false);
        check_dot(f, kernel, 16 * 257, true);
    }
    CHECK(meshlm_dot_bfp_avx2(MESHLM_TYPE_Q8_0) == NULL);
}

/* Lengths that are not whole blocks are refused by every entry point. */
static void test_bad_lengths(void) {
    const meshlm_cpu_caps *caps = meshlm_cpu_detect();
    int64_t lens[] = {0, -16, 1, 15, 17, 24, 33, 100};
    float x[112], out[112];
    uint8_t q[200];
    for (int i = 0; i < 112; i++) x[i] = 1.0f;
    for (int fi = 0; fi < 2; fi++) {
        const fmt *f = &fmts[fi];
        meshlm_dot_fn kernel = caps->avx2 && caps->fma ? meshlm_dot_bfp_avx2(f->type) : NULL;
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            int64_t n = lens[k];
            memset(q, 0x5a, sizeof q);
            f->quant(x, q, n);
            bool untouched = true;
            for (size_t i = 0; i < sizeof q; i++) untouched &= q[i] == 0x5a;
            CHECK_MSG(untouched, "%s n=%lld: quantize wrote", meshlm_type_name(f->type), (long long)n);
            for (int i = 0; i < 112; i++) out[i] = 0.0f;
            f->dequant(q, out, n);
            for (int64_t i = 0; i < n; i++) CHECK(isnan(out[i]));
            CHECK(isnan(f->dot(q, x, n)));
            if (kernel) CHECK(isnan(kernel(q, x, n)));
            CHECK(meshlm_bfp_check_row(f->type, n) == MESHLM_ERR_INVALID_ARG);
            CHECK_MSG(strstr(meshlm_last_error(), "not a positive multiple of the 16-value block") &&
                          strstr(meshlm_last_error(), meshlm_type_name(f->type)),
                      "%s", meshlm_last_error());
        }
        CHECK(meshlm_bfp_check_row(f->type, 48) == MESHLM_OK);
    }
    CHECK(meshlm_bfp_check_row(MESHLM_TYPE_Q8_0, 64) == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "Q8_0 is not a block-float type") != NULL);
}

/* Deterministic: the same input gives the same bytes. */
static void test_deterministic(void) {
    float src[64];
    for (int i = 0; i < 64; i++) src[i] = gaussian();
    for (int fi = 0; fi < 2; fi++) {
        uint8_t a[68], b[68];
        fmts[fi].quant(src, a, 64);
        fmts[fi].quant(src, b, 64);
        CHECK(memcmp(a, b, 4 * fmts[fi].bytes) == 0);
    }
}

int main(void) {
    test_hand_blocks();
    test_decoder_independent();
    test_odd_values();
    test_error_bound();
    test_dots();
    test_bad_lengths();
    test_deterministic();
    return t_done();
}

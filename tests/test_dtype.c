/* The type table and the scalar fp16/bf16 conversions, checked against independent
 * definitions: halves decoded with ldexp, rounding checked against a search of all halves.
 * meshlm's own block-float ids must stay out of GGUF files in both directions. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "t.h"

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* IEEE binary16 from its definition; NaN for the NaN encodings. */
static double half_value(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    double v;
    if (exp == 31) v = mant ? NAN : INFINITY;
    else if (exp == 0) v = ldexp(mant, -24);
    else v = ldexp(1024 + mant, exp - 25);
    return sign ? -v : v;
}

/* Nearest half to f, ties to the even encoding, by bisection over the ordered finite
 * non-negative halves 0x0000..0x7bff; beyond the largest one, halfway to 2^16 is the
 * overflow point. */
static uint16_t nearest_half(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (half_value((uint16_t)mid) <= a) lo = mid;
        else hi = mid;
    }
    double dl = a - half_value((uint16_t)lo), dh = half_value((uint16_t)hi) - a;
    int pick = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
    return sign | (uint16_t)pick;
}

static void test_fp16_exhaustive(void) {
    int bad_value = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = meshlm_fp16_to_fp32((uint16_t)h);
        double want = half_value((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(f)) bad_nan++;
        } else if ((double)f != want || !signbit(f) != !signbit(want)) {
            bad_value++;
        }
        if (meshlm_fp32_to_fp16(f) != h) bad_trip++;
    }
    CHECK_MSG(bad_value == 0, "%d halves decode wrong", bad_value);
    CHECK_MSG(bad_nan == 0, "%d NaN halves did not stay NaN", bad_nan);
    CHECK_MSG(bad_trip == 0, "%d halves do not round-trip", bad_trip);
}

static void test_fp16_rounding(void) {
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.5f, 0x3800},
        {65504.0f, 0x7bff},                          /* largest finite half */
        {65519.0f, 0x7bff},                          /* below the overflow midpoint */
        {65520.0f, 0x7c00},                          /* midpoint ties to even: inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {1.0f + 0x1p-11f, 0x3c00},                   /* tie, 0x3c00 is even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},        /* just above the tie */
        {1.0f + 3 * 0x1p-11f, 0x3c02},               /* tie between 0x3c01 and 0x3c02 */
        {0x1p-24f, 0x0001},                          /* smallest subnormal */
        {0x1p-25f, 0x0000},                          /* tie to even: zero */
        {0x1.0002p-25f, 0x0001},                     /* above the tie */
        {3 * 0x1p-25f, 0x0002},                      /* 1.5 ulp ties to 2 */
        {0x1p-14f, 0x0400},                          /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},               /* subnormal rounds up into normal */
        {1023 * 0x1p-24f, 0x03ff},                   /* largest subnormal */
        {-0x1p-24f, 0x8001},
        {1e-10f, 0x0000},
        {FLT_MIN / 4, 0x0000},                       /* f32 subnormal */
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = meshlm_fp32_to_fp16(cases[i].f);
        CHECK_MSG(got == cases[i].h, "fp16(%a) = 0x%04x, want 0x%04x", (double)cases[i].f, got, cases[i].h);
    }
    uint16_t n = meshlm_fp32_to_fp16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    n = meshlm_fp32_to_fp16(bits_f32(0x7f800001)); /* NaN whose payload is below half's */
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);

    /* Random floats over the half range and beyond, against the bisection reference. */
    uint32_t s = 12345;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t exp = 127 - 30 + (s >> 24) % 48; /* 2^-30 .. 2^17 */
        s = s * 1664525u + 1013904223u;
        uint32_t u = (s & 0x80000000u) | (exp << 23) | (s & 0x7fffff);
        float f = bits_f32(u);
        if (meshlm_fp32_to_fp16(f) != nearest_half(f)) bad++;
    }
    CHECK_MSG(bad == 0, "%d random floats round wrong", bad);
}

static void test_bf16(void) {
    int bad = 0, bad_nan = 0, bad_value = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = meshlm_bf16_to_fp32((uint16_t)h);
        if (f32_bits(f) != h << 16) bad_value++;
        bool is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
        if (is_nan) {
            if (!isnan(f) || !isnan(meshlm_bf16_to_fp32(meshlm_fp32_to_bf16(f)))) bad_nan++;
        } else if (meshlm_fp32_to_bf16(f) != h) {
            bad++;
        }
    }
    CHECK_MSG(bad_value == 0, "%d bf16 values decode wrong", bad_value);
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
    CHECK_MSG(bad_nan == 0, "%d bf16 NaNs did not stay NaN", bad_nan);
    CHECK(meshlm_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(meshlm_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);            /* tie to even */
    CHECK(meshlm_fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);        /* tie to even, up */
    CHECK(meshlm_fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81); /* above the tie */
    CHECK(meshlm_fp32_to_bf16(1.0f + 0x1p-9f) == 0x3f80);            /* below the tie */
    CHECK(meshlm_fp32_to_bf16(-3.0f) == 0xc040);
    CHECK(meshlm_fp32_to_bf16(FLT_MAX) == 0x7f80);                   /* rounds past the top */
    CHECK(meshlm_fp32_to_bf16(INFINITY) == 0x7f80);
    CHECK(meshlm_fp32_to_bf16(-INFINITY) == 0xff80);
    CHECK(meshlm_fp32_to_bf16(-0.0f) == 0x8000);
    CHECK(meshlm_fp32_to_bf16(bits_f32(0x00000001)) == 0x0000);      /* tiny subnormal */
    uint16_t n = meshlm_fp32_to_bf16(bits_f32(0x7f800001));          /* payload in low bits */
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
}

static void test_type_table(void) {
    struct {
        int t;
        const char *name;
        int64_t elems;
        size_t bytes;
    } rows[] = {
        {MESHLM_TYPE_F32, "F32", 1, 4},        {MESHLM_TYPE_F16, "F16", 1, 2},
        {MESHLM_TYPE_BF16, "BF16", 1, 2},      {MESHLM_TYPE_Q4_0, "Q4_0", 32, 18},
        {MESHLM_TYPE_Q4_1, "Q4_1", 32, 20},    {MESHLM_TYPE_Q5_0, "Q5_0", 32, 22},
        {MESHLM_TYPE_Q5_1, "Q5_1", 32, 24},    {MESHLM_TYPE_Q8_0, "Q8_0", 32, 34},
        {MESHLM_TYPE_Q4_K, "Q4_K", 256, 144},  {MESHLM_TYPE_Q5_K, "Q5_K", 256, 176},
        {MESHLM_TYPE_Q6_K, "Q6_K", 256, 210},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int t = rows[i].t;
        CHECK(meshlm_type_supported(t));
        CHECK(strcmp(meshlm_type_name(t), rows[i].name) == 0);
        CHECK(meshlm_type_block_elems(t) == rows[i].elems);
        CHECK(meshlm_type_block_bytes(t) == rows[i].bytes);
        CHECK(meshlm_type_row_bytes(t, rows[i].elems * 6) == rows[i].bytes * 6);
        CHECK(meshlm_type_from_name(rows[i].name) == t);
        char lower[8];
        size_t len = strlen(rows[i].name);
        for (size_t k = 0; k <= len; k++)
            lower[k] = (char)(rows[i].name[k] >= 'A' && rows[i].name[k] <= 'Z' ? rows[i].name[k] + 32 : rows[i].name[k]);
        CHECK(meshlm_type_from_name(lower) == t);
    }
    CHECK(MESHLM_TYPE_Q4_0 == 2 && MESHLM_TYPE_Q8_0 == 8 && MESHLM_TYPE_Q4_K == 12 && MESHLM_TYPE_BF16 == 30);
    CHECK(meshlm_type_from_name("q6_k") == MESHLM_TYPE_Q6_K);
    CHECK(meshlm_type_from_name("bF16") == MESHLM_TYPE_BF16);
    CHECK(meshlm_type_from_name("Q4_2") == -1);
    CHECK(meshlm_type_from_name("") == -1);
    CHECK(meshlm_type_from_name("F3") == -1);
    CHECK(meshlm_type_from_name(NULL) == -1);
    CHECK(!meshlm_type_supported(4));
    CHECK(!meshlm_type_supported(-1));
    CHECK(!meshlm_type_supported(MESHLM_TYPE_COUNT));
    CHECK(!meshlm_type_supported(1000));
    CHECK(strcmp(meshlm_type_name(4), "type-4") == 0);
    CHECK(strcmp(meshlm_type_name(-7), "type--7") == 0);
    CHECK(meshlm_type_block_bytes(4) == 0 && meshlm_type_block_elems(4) == 0);
    CHECK(meshlm_type_row_bytes(MESHLM_TYPE_Q4_K, 512) == 288);
    CHECK(meshlm_type_row_bytes(MESHLM_TYPE_F32, 37) == 148);
    CHECK(meshlm_type_row_bytes(4, 32) == 0);
}

/* The block floats have a layout but no GGUF id: known, named, sized, never in a file. */
static void test_block_float_ids(void) {
    int ids[] = {MESHLM_TYPE_BFP8, MESHLM_TYPE_BFP4};
    size_t bytes[] = {17, 9};
    const char *names[] = {"BFP8", "BFP4"};
    for (int i = 0; i < 2; i++) {
        int t = ids[i];
        CHECK(t >= MESHLM_TYPE_GGUF_END && t < MESHLM_TYPE_COUNT);
        CHECK(meshlm_type_known(t));
        CHECK(!meshlm_type_in_gguf(t));
        CHECK(strcmp(meshlm_type_name(t), names[i]) == 0);
        CHECK(meshlm_type_block_elems(t) == 16);
        CHECK(meshlm_type_block_bytes(t) == bytes[i]);
        CHECK(meshlm_type_row_bytes(t, 16 * 5) == bytes[i] * 5);
        CHECK(meshlm_type_from_name(names[i]) == t);
    }
    CHECK(meshlm_type_from_name("bfp8") == MESHLM_TYPE_BFP8);
    CHECK(meshlm_type_in_gguf(MESHLM_TYPE_Q4_K) && meshlm_type_in_gguf(MESHLM_TYPE_BF16));
    CHECK(!meshlm_type_in_gguf(4) && !meshlm_type_in_gguf(-1) && !meshlm_type_in_gguf(MESHLM_TYPE_COUNT));
    CHECK(!meshlm_type_known(4) && !meshlm_type_known(MESHLM_TYPE_GGUF_END + 2));
    for (int t = 0; t < MESHLM_TYPE_COUNT; t++) {
        CHECK_MSG(!meshlm_type_supported(t) || meshlm_type_known(t), "type %d", t);
        CHECK_MSG(!meshlm_type_in_gguf(t) || t < MESHLM_TYPE_GGUF_END, "type %d", t);
    }
}

static void put_le(uint8_t **p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) *(*p)++ = (uint8_t)(v >> (8 * i));
}

/* A GGUF v3 file by hand: no keys, one tensor "w" of 16 x 1 elements of type id `type`,
 * followed by 32 bytes of data at the default alignment. */
static size_t tiny_gguf(uint8_t *buf, uint32_t type) {
    uint8_t *p = buf;
    memcpy(p, "GGUF", 4), p += 4;
    put_le(&p, 3, 4);
    put_le(&p, 1, 8); /* tensors */
    put_le(&p, 0, 8); /* keys */
    put_le(&p, 1, 8), *p++ = 'w';
    put_le(&p, 2, 4);
    put_le(&p, 16, 8), put_le(&p, 1, 8);
    put_le(&p, type, 4);
    put_le(&p, 0, 8);
    while ((p - buf) % 32) *p++ = 0;
    memset(p, 0, 64);
    return (size_t)(p - buf) + 64;
}

static void test_block_floats_not_in_files(void) {
    uint8_t buf[256];
    meshlm_gguf *g = NULL;
    CHECK_MSG(meshlm_gguf_open_memory(buf, tiny_gguf(buf, MESHLM_TYPE_F32), "tiny", &g) == MESHLM_OK, "%s",
              meshlm_last_error());
    meshlm_gguf_close(g);
    int ids[] = {MESHLM_TYPE_BFP8, MESHLM_TYPE_BFP4};
    for (int i = 0; i < 2; i++) {
        g = NULL;
        int rc = meshlm_gguf_open_memory(buf, tiny_gguf(buf, (uint32_t)ids[i]), "tiny", &g);
        char want[32];
        snprintf(want, sizeof want, "unknown type id %d", ids[i]);
        CHECK_MSG(rc == MESHLM_ERR_FORMAT && strstr(meshlm_last_error(), want), "rc %d: %s", rc,
                  meshlm_last_error());
        CHECK(g == NULL);
        meshlm_gguf_close(g);

        meshlm_gguf_writer *w = NULL;
        CHECK(meshlm_gguf_writer_create(&w) == MESHLM_OK);
        int64_t ne[2] = {16, 4};
        rc = meshlm_gguf_add_tensor(w, "w", ids[i], 2, ne);
        CHECK_MSG(rc == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), meshlm_type_name(ids[i])) &&
                      strstr(meshlm_last_error(), "no GGUF id"),
                  "rc %d: %s", rc, meshlm_last_error());
        meshlm_gguf_writer_free(w);
    }
}

int main(void) {
    test_fp16_exhaustive();
    test_fp16_rounding();
    test_bf16();
    test_type_table();
    test_block_float_ids();
    test_block_floats_not_in_files();
    return t_done();
}

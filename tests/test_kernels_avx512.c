/* The AVX-512 VNNI integer dots of the lane-order types (Q8_0 and Q4_0 have block-order
 * kernels, checked by test_kernels_amx): the tier's choice from caps and overrides; every
 * kernel bit for bit against the scalar reference on 1..9 blocks, with rows of raw random
 * codes, rows from the quantizer and rows of extreme codes and scales (Q6_K's scale -128
 * among them); the rows x tokens kernels against the reference for 1..9 rows x
 * 1..19 tokens (every tile and leftover shape) at odd strides; and the dispatch serving
 * exactly these kernels when the tier is on and the AVX2 ones when it is off. The test runs
 * itself again under MESHLM_CPU=avx2 and =scalar, where the kernels still answer (they are
 * called directly) but the dispatch must not use them. Without AVX-512 F, BW, VL and VNNI
 * the kernel checks are skipped and the test says so. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/pool.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "meshlm.h"
#include "t.h"
#include "t_rerun.h"

static const int types[] = {MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0, MESHLM_TYPE_Q5_1, MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q6_K};
#define NTYPES ((int)(sizeof types / sizeof types[0]))

enum { RAW, QUANT, EXTREME, NKINDS };

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next_u32(void) { return t_xorshift(&rng); }

static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

static void put_half(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8); }

static bool has_min(int type) {
    return type == MESHLM_TYPE_Q4_1 || type == MESHLM_TYPE_Q5_1 || type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q5_K;
}

static bool k_quant(int type) { return meshlm_type_block_elems(type) == 256; }

/* Where a block keeps its fp16 scale d. */
static size_t d_at(int type) { return type == MESHLM_TYPE_Q6_K ? 208 : 0; }

static int64_t block_of(int type) { return meshlm_type_block_elems(type); }

/* Raw: every byte random, scales finite and random. Extreme: all codes at one end of the
 * range or the other and scales from the smallest subnormal half to
 * the largest finite one, so lanes reach their largest magnitudes and scale products round
 * at both ends. */
static void make_row(int type, int kind, uint8_t *row, int64_t n) {
    size_t bb = meshlm_type_block_bytes(type), rb = meshlm_type_row_bytes(type, n);
    if (kind == QUANT) {
        float *w = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) w[i] = uniform() * (1.0f + (float)(i % 5));
        meshlm_quantize_row(type, w, row, n);
        free(w);
        return;
    }
    static const uint16_t scales[] = {0x0001, 0x03ff, 0x3c00, 0x7bff, 0xfbff, 0x8001, 0x3555, 0x0400};
    static const uint8_t ends[] = {0x00, 0xff, 0x80, 0x7f, 0x88, 0x77};
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)next_u32();
    for (size_t b = 0; b < rb; b += bb) {
        uint8_t *p = row + b;
        if (kind == EXTREME) {
            uint8_t e = ends[next_u32() % 6];
            memset(p, e, bb);
            put_half(p + d_at(type), scales[next_u32() % 8]);
            if (has_min(type)) put_half(p + 2, scales[next_u32() % 8]);
            continue;
        }
        float d = powf(10.0f, -2.0f * (uniform() + 1.0f));
        put_half(p + d_at(type), meshlm_fp32_to_fp16(d));
        if (has_min(type)) put_half(p + 2, meshlm_fp32_to_fp16(-d * 8.0f * uniform()));
    }
}

/* Activation rows: values spanning 1e-3..1e3 between blocks with zero blocks and outliers,
 * or (extreme) every code at +-127 with scales far apart (large enough that the biggest
 * products come near, but stay below, the float range). */
static void make_act(int type, bool extreme, uint8_t *act, int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i += 32) {
        float mag = powf(10.0f, 3.0f * uniform());
        int kind = (int)(next_u32() % 8);
        for (int j = 0; j < 32; j++) x[i + j] = kind == 0 ? 0.0f : mag * uniform();
        if (kind == 1) x[i + next_u32() % 32] = 50.0f * mag;
    }
    meshlm_quantize_act(type, x, act, n);
    static const float ds[] = {1e-30f, 3e20f, 1.0f, 7.0f / 127.0f};
    if (extreme && !k_quant(type))
        for (int64_t b = 0; b < n / 32; b++) {
            meshlm_act32 *a = (meshlm_act32 *)act + b;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += a->q[j] = next_u32() & 1 ? 127 : -127;
            a->d = ds[next_u32() % 4];
            a->s = a->d * (float)sum;
        }
    if (extreme && k_quant(type))
        for (int64_t b = 0; b < n / 256; b++) {
            meshlm_act256 *a = (meshlm_act256 *)act + b;
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 16 * g; j < 16 * g + 16; j++) sum += a->q[j] = next_u32() & 1 ? 127 : -127;
                a->bsum[g] = (int16_t)sum;
            }
            a->d = ds[next_u32() % 4];
        }
    free(x);
}

static bool same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* One-token kernel == reference, on 1..9 blocks and a row not aligned to anything. */
static void test_dot(int type, meshlm_qdot_fn dot) {
    int bad = 0;
    for (int kind = 0; kind < NKINDS; kind++)
        for (int nb = 1; nb <= 9; nb++)
            for (int rep = 0; rep < 4; rep++) {
                int64_t n = block_of(type) * nb;
                size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
                uint8_t *row = malloc(rb + 1), *act = malloc(ab);
                make_row(type, kind, row + 1, n);
                make_act(type, kind == EXTREME && rep & 1, act, n);
                float got = dot(row + 1, act, n), ref = meshlm_qdot_ref(type, row + 1, act, n);
                if (!same(got, ref)) {
                    if (!bad)
                        fprintf(stderr, "%s kind %d, %d blocks: %.9g vs reference %.9g\n", meshlm_type_name(type),
                                kind, nb, (double)got, (double)ref);
                    bad++;
                }
                free(row), free(act);
            }
    CHECK_MSG(bad == 0, "%s: %d one-token results differ from the reference", meshlm_type_name(type), bad);
}

/* Rows x tokens == reference for every (row, token), each shape up to 9 rows x 19 tokens,
 * rows and activations at strides that are not their lengths, results at stride 23. */
static void test_rows(int type, meshlm_qdot_rows_fn rows_fn) {
    enum { MR = 9, MT = 19, YS = 23 };
    int bad = 0;
    for (int nb = 1; nb <= 9; nb += 2) {
        int64_t n = block_of(type) * nb;
        size_t rb = meshlm_type_row_bytes(type, n) + 3;
        size_t ab = meshlm_act_row_bytes(type, n) + meshlm_act_row_bytes(type, block_of(type));
        uint8_t *rows = malloc(MR * rb), *act = malloc(MT * ab);
        float *y = malloc(sizeof(float) * YS * MT);
        for (int r = 0; r < MR; r++) make_row(type, r % NKINDS, rows + r * rb, n);
        float want[MR][MT];
        for (int t = 0; t < MT; t++) make_act(type, t % 5 == 4, act + t * ab, n);
        for (int r = 0; r < MR; r++)
            for (int t = 0; t < MT; t++) want[r][t] = meshlm_qdot_ref(type, rows + r * rb, act + t * ab, n);
        for (int nr = 1; nr <= MR; nr++)
            for (int nt = 1; nt <= MT; nt++) {
                memset(y, 0xff, sizeof(float) * YS * MT);
                rows_fn(rows, rb, nr, act, ab, n, nt, y, YS);
                for (int t = 0; t < MT; t++)
                    for (int r = 0; r < YS; r++) {
                        uint32_t u;
                        memcpy(&u, &y[r + t * YS], sizeof u);
                        /* Nothing outside the tile is written. */
                        bad += r < nr && t < nt ? !same(y[r + t * YS], want[r][t]) : u != 0xffffffffu;
                    }
            }
        free(rows), free(act), free(y);
    }
    CHECK_MSG(bad == 0, "%s: %d rows x tokens results differ from the reference", meshlm_type_name(type), bad);
}

/* The dispatch is these kernels when the tier is on, the AVX2 ones otherwise; and a matmul
 * of 37 tokens over 2 threads gives the reference dots. */
static void test_dispatch(int type) {
    int64_t n = block_of(type) * 7, n_out = 11, nt = 37;
    size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
    uint8_t *w = malloc(rb * (size_t)n_out), *act = malloc(ab * (size_t)nt);
    float *x = malloc(sizeof(float) * (size_t)(n * nt)), *y = malloc(sizeof(float) * (size_t)(n_out * nt));
    for (int64_t o = 0; o < n_out; o++) make_row(type, (int)(o % NKINDS), w + o * rb, n);
    for (int64_t i = 0; i < n * nt; i++) x[i] = uniform() * (float)(1 + i % 9);
    bool on = meshlm_cpu_avx512_get();
    meshlm_qdot_fn dot = on ? meshlm_qdot_avx512(type) : meshlm_qdot_avx2(type);
    meshlm_quantize_act(type, x, act, n);
    if (dot) CHECK(same(meshlm_vec_qdot(type, w, act, n), dot(w, act, n)));
    meshlm_pool *pool;
    CHECK(meshlm_pool_create(2, &pool) == MESHLM_OK);
    meshlm_matrix m = {w, type, n, n_out, rb, false};
    meshlm_matmul(pool, &m, x, nt, y);
    int bad = 0;
    for (int64_t t = 0; t < nt; t++) {
        meshlm_quantize_act_ref(type, x + t * n, act, n);
        for (int64_t o = 0; o < n_out; o++) bad += !same(y[t * n_out + o], meshlm_qdot_ref(type, w + o * rb, act, n));
    }
    CHECK_MSG(bad == 0, "%s: %d matmul results differ from the reference dots", meshlm_type_name(type), bad);
    meshlm_pool_free(pool);
    free(w), free(act), free(x), free(y);
}

static void test_choose(void) {
    meshlm_cpu_caps avx2 = {.avx2 = true, .fma = true, .f16c = true}, all = avx2, no_vnni;
    all.avx512f = all.avx512bw = all.avx512vl = all.avx512vnni = true;
    no_vnni = all;
    no_vnni.avx512vnni = false;
    const char *why;
    CHECK(meshlm_cpu_choose_avx512(&all, NULL) && meshlm_cpu_choose_avx512(&all, ""));
    CHECK(meshlm_cpu_choose_avx512(&all, "avx512"));
    CHECK(meshlm_cpu_choose(&all, "avx512", &why) == MESHLM_CPU_AVX2 && !why);
    CHECK(!meshlm_cpu_choose_avx512(&all, "avx2") && !meshlm_cpu_choose_avx512(&all, "scalar"));
    CHECK(meshlm_cpu_choose(&all, NULL, &why) == MESHLM_CPU_AVX2 && !why);
    CHECK(!meshlm_cpu_choose_avx512(&no_vnni, NULL) && !meshlm_cpu_choose_avx512(&avx2, "avx512"));
    CHECK(meshlm_cpu_choose(&no_vnni, "avx512", &why) == MESHLM_CPU_AVX2 && why);
    meshlm_cpu_caps no_avx2 = all;
    no_avx2.avx2 = false;
    CHECK(!meshlm_cpu_choose_avx512(&no_avx2, NULL));
    CHECK(meshlm_cpu_choose(&all, "avx1024", &why) == MESHLM_CPU_AVX2 && why);
}

int main(int argc, char **argv) {
    test_choose();
    const meshlm_cpu_caps *caps = meshlm_cpu_detect();
    printf("cpu: %s\n", meshlm_cpu_features());
    if (!meshlm_cpu_choose_avx512(caps, NULL)) {
        if (t_failed) return t_done();
        t_skip("this CPU lacks AVX2, FMA, F16C or AVX-512 F, BW, VL, VNNI: no AVX-512 kernel can run");
    }
    const char *mode = getenv("MESHLM_CPU");
    bool forced_off = mode && (!strcmp(mode, "avx2") || !strcmp(mode, "scalar"));
    CHECK(meshlm_cpu_avx512_get() == !forced_off);
    for (int i = 0; i < NTYPES; i++) {
        meshlm_qdot_fn dot = meshlm_qdot_avx512(types[i]);
        meshlm_qdot_rows_fn rows = meshlm_qdot_rows_avx512(types[i]);
        CHECK_MSG(dot && rows, "%s has no AVX-512 kernel", meshlm_type_name(types[i]));
        if (!dot || !rows) continue;
        test_dot(types[i], dot);
        test_rows(types[i], rows);
        test_dispatch(types[i]);
    }
    CHECK(!meshlm_qdot_avx512(MESHLM_TYPE_F32) && !meshlm_qdot_rows_avx512(MESHLM_TYPE_BF16));
    if (argc == 1) {
        t_rerun(argv[0], "avx2");
        t_rerun(argv[0], "scalar");
    }
    return t_done();
}

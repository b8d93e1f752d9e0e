/* The integer path (int8 activations): the AVX2 activation quantizers against the
 * reference byte for byte; every integer dot kernel against its reference bit for bit, on
 * 1..9 blocks, with rows from the quantizers and rows of raw random codes (every code a
 * file may hold, Q8_0's -128 and Q6_K's scale -128 included); the multi-row/multi-token
 * kernels against the one-token one bit for bit for 1..5 rows x 1..9 tokens; meshlm_matmul
 * against per-row dots for 1 and 3 threads; and the integer dot against the f32 reference
 * dot within the bound the activation rounding allows:
 *   |qdot - dot_ref| <= sum over blocks of (d_a / 2) * sum_i |w_i|  +  1e-5 * sum_i |w_i x_i|
 * (|x - d_a q| <= d_a / 2 for each activation; the second term covers f32 reassociation).
 * Both instances of the AVX2 kernels (plain, and with the VNNI dot instructions) are also
 * checked directly against the reference, whichever one the dispatch picks.
 * The test runs itself again under MESHLM_CPU=scalar, where the dispatch is the reference. */
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

static const int int_types[] = {MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0, MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0,
                                MESHLM_TYPE_Q5_1, MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q6_K,
                                MESHLM_TYPE_MXFP4};
#define NTYPES ((int)(sizeof int_types / sizeof int_types[0]))

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t next_u32(void) { return t_xorshift(&rng); }

static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* Values whose magnitudes span 1e-3..1e3 from block to block, with some all-zero blocks
 * and single large outliers. */
static void fill_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        float mag = powf(10.0f, 3.0f * uniform());
        int kind = (int)(next_u32() % 8);
        for (int j = 0; j < 32; j++) x[i + j] = kind == 0 ? 0.0f : mag * uniform();
        if (kind == 1) x[i + next_u32() % 32] = 50.0f * mag;
    }
}

static void put_half(uint8_t *p, float v) {
    uint16_t h = meshlm_fp32_to_fp16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* A row of random codes with finite random scales (d, and the min where there is one;
 * MXFP4's exponents within 2^-18..2^11, where no product with an activation overflows). */
static void raw_row(int type, uint8_t *row, int64_t n) {
    size_t bb = meshlm_type_block_bytes(type), rb = meshlm_type_row_bytes(type, n);
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)next_u32();
    for (size_t b = 0; b < rb; b += bb) {
        uint8_t *p = row + b;
        if (type == MESHLM_TYPE_MXFP4) {
            p[0] = (uint8_t)(110 + next_u32() % 30);
            continue;
        }
        float d = powf(10.0f, -2.0f * (uniform() + 1.0f)), m = -d * 8.0f * uniform();
        if (type == MESHLM_TYPE_Q6_K) {
            put_half(p + 208, d);
            continue;
        }
        put_half(p, d);
        if (type != MESHLM_TYPE_Q8_0 && type != MESHLM_TYPE_Q4_0 && type != MESHLM_TYPE_Q5_0) put_half(p + 2, m);
    }
}

static void make_row(int type, uint8_t *row, int64_t n, bool raw) {
    if (raw) {
        raw_row(type, row, n);
        return;
    }
    float *w = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) w[i] = uniform() * (1.0f + (float)(i % 7));
    meshlm_quantize_row(type, w, row, n);
    free(w);
}

static int64_t block_of(int type) { return meshlm_type_block_elems(type); }

/* Quantizer: fast == reference, bytes; each code within half a step of x / d. */
static void test_quantizer(void) {
    const int fmts[] = {MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_K};
    for (int f = 0; f < 2; f++)
        for (int nb = 1; nb <= 9; nb++) {
            int64_t n = nb * block_of(fmts[f]);
            float *x = malloc(sizeof(float) * (size_t)(n + 1));
            fill_x(x + 1, n); /* unaligned source */
            size_t rb = meshlm_act_row_bytes(fmts[f], n);
            uint8_t *a = malloc(rb), *b = malloc(rb);
            meshlm_quantize_act(fmts[f], x + 1, a, n);
            meshlm_quantize_act_ref(fmts[f], x + 1, b, n);
            CHECK_MSG(memcmp(a, b, rb) == 0, "%s activations, %d blocks: fast and reference bytes differ",
                      meshlm_type_name(fmts[f]), nb);
            int worst_ok = 1;
            for (int64_t i = 0; i < n; i++) {
                float d, s = 0.0f;
                int q;
                if (f == 0) {
                    const meshlm_act32 *blk = (const meshlm_act32 *)b + i / 32;
                    d = blk->d, q = blk->q[i % 32];
                    if (i % 32 == 0) {
                        int sum = 0;
                        for (int j = 0; j < 32; j++) sum += blk->q[j];
                        s = blk->d * (float)sum;
                        worst_ok &= s == blk->s;
                    }
                } else {
                    const meshlm_act256 *blk = (const meshlm_act256 *)b + i / 256;
                    d = blk->d, q = blk->q[i % 256];
                    if (i % 16 == 0) {
                        int sum = 0;
                        for (int j = 0; j < 16; j++) sum += blk->q[i % 256 + j];
                        worst_ok &= sum == blk->bsum[i % 256 / 16];
                    }
                }
                worst_ok &= q >= -127 && q <= 127 && fabsf(x[i + 1] - d * (float)q) <= 0.5001f * d + 1e-30f;
            }
            CHECK_MSG(worst_ok, "%s activations, %d blocks: a code, sum or scale is off", meshlm_type_name(fmts[f]),
                      nb);
            free(x), free(a), free(b);
        }
    /* Rounding ties go to even, and NaN/inf inputs are deterministic on both paths. */
    float t[32] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f};
    meshlm_act32 p, r;
    meshlm_quantize_act(MESHLM_TYPE_Q8_0, t, &p, 32);
    meshlm_quantize_act_ref(MESHLM_TYPE_Q8_0, t, &r, 32);
    CHECK(memcmp(&p, &r, sizeof p) == 0);
    CHECK(r.q[1] == 0 && r.q[2] == 2 && r.q[3] == 2 && r.q[4] == 0 && r.q[5] == -2 && r.q[6] == -2);
    t[8] = NAN;
    t[9] = 1e-40f;
    meshlm_quantize_act(MESHLM_TYPE_Q8_0, t, &p, 32);
    meshlm_quantize_act_ref(MESHLM_TYPE_Q8_0, t, &r, 32);
    CHECK(memcmp(p.q, r.q, 32) == 0);
    float tiny[32] = {1e-40f, -2e-40f, INFINITY};
    meshlm_quantize_act(MESHLM_TYPE_Q8_0, tiny + 0, &p, 32);
    meshlm_quantize_act_ref(MESHLM_TYPE_Q8_0, tiny + 0, &r, 32);
    CHECK(memcmp(p.q, r.q, 32) == 0);
    tiny[2] = 0.0f;
    meshlm_quantize_act(MESHLM_TYPE_Q8_0, tiny, &p, 32);
    meshlm_quantize_act_ref(MESHLM_TYPE_Q8_0, tiny, &r, 32);
    CHECK(memcmp(&p, &r, sizeof p) == 0);
}

/* One-token kernel == reference (bits), and both within the rounding bound of the f32
 * reference dot. */
static void test_dot(int type, bool raw) {
    for (int nb = 1; nb <= 9; nb++) {
        int64_t n = nb * block_of(type);
        size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
        uint8_t *row = malloc(rb + 1), *act = malloc(ab);
        float *x = malloc(sizeof(float) * (size_t)n), *w = malloc(sizeof(float) * (size_t)n);
        make_row(type, row + 1, n, raw);
        fill_x(x, n);
        meshlm_quantize_act(type, x, act, n);
        float fast = meshlm_vec_qdot(type, row + 1, act, n); /* the row unaligned on purpose */
        float ref = meshlm_vec_qdot_ref(type, row + 1, act, n);
        CHECK_MSG(memcmp(&fast, &ref, sizeof fast) == 0, "%s%s %d blocks: kernel %.9g != reference %.9g",
                  meshlm_type_name(type), raw ? " raw" : "", nb, (double)fast, (double)ref);
        meshlm_dequantize_row(type, row + 1, w, n);
        double bound = 0.0, mag = 0.0;
        int64_t ablk = type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q5_K || type == MESHLM_TYPE_Q6_K ? 256 : 32;
        for (int64_t i = 0; i < n; i++) {
            float da = ablk == 32 ? ((const meshlm_act32 *)act)[i / 32].d : ((const meshlm_act256 *)act)[i / 256].d;
            bound += 0.5 * da * fabs(w[i]);
            mag += fabs((double)w[i] * x[i]) + fabs((double)w[i]) * da;
        }
        bound += 1e-5 * mag;
        float f32 = meshlm_vec_dot_ref(type, row + 1, x, n);
        CHECK_MSG(fabs((double)ref - f32) <= bound, "%s%s %d blocks: integer dot %.9g vs f32 dot %.9g, bound %.3g",
                  meshlm_type_name(type), raw ? " raw" : "", nb, (double)ref, (double)f32, bound);
        free(row), free(act), free(x), free(w);
    }
}

/* Rows x tokens == one-token kernel, bits, for 1..5 rows and 1..9 tokens. */
static void test_rows(int type) {
    int64_t n = 3 * block_of(type);
    size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
    uint8_t *rows = malloc(5 * rb), *act = malloc(9 * ab);
    float *x = malloc(sizeof(float) * (size_t)n), y[5 * 9], one;
    for (int r = 0; r < 5; r++) make_row(type, rows + r * rb, n, r & 1);
    for (int t = 0; t < 9; t++) {
        fill_x(x, n);
        meshlm_quantize_act(type, x, act + t * ab, n);
    }
    int bad = 0;
    for (int nr = 1; nr <= 5; nr++)
        for (int nt = 1; nt <= 9; nt++) {
            memset(y, 0xff, sizeof y);
            meshlm_vec_qdot_rows(type, rows, rb, nr, act, ab, n, nt, y, 5);
            for (int r = 0; r < nr; r++)
                for (int t = 0; t < nt; t++) {
                    one = meshlm_vec_qdot(type, rows + r * rb, act + t * ab, n);
                    bad += memcmp(&one, &y[r + t * 5], sizeof one) != 0;
                }
        }
    CHECK_MSG(bad == 0, "%s: %d rows-kernel results differ from the one-token kernel", meshlm_type_name(type), bad);
    free(rows), free(act), free(x);
}

/* One kernel instance (its one-token and rows forms) against the reference, bits: 1..9
 * blocks of quantized and of raw rows, and 1..5 rows x 1..9 tokens on 1 and 3 blocks. */
static void check_instance(const char *name, int type, meshlm_qdot_fn one, meshlm_qdot_rows_fn rows) {
    int bad = 0;
    for (int nb = 1; nb <= 9; nb++)
        for (int raw = 0; raw < 2; raw++) {
            int64_t n = nb * block_of(type);
            size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
            uint8_t *row = malloc(rb + 1), *act = malloc(ab);
            float *x = malloc(sizeof(float) * (size_t)n);
            make_row(type, row + 1, n, raw);
            fill_x(x, n);
            meshlm_quantize_act_ref(type, x, act, n);
            float fast = one(row + 1, act, n), ref = meshlm_vec_qdot_ref(type, row + 1, act, n);
            bad += memcmp(&fast, &ref, sizeof fast) != 0;
            free(row), free(act), free(x);
        }
    for (int nb = 1; nb <= 3; nb += 2) {
        int64_t n = nb * block_of(type);
        size_t rb = meshlm_type_row_bytes(type, n), ab = meshlm_act_row_bytes(type, n);
        uint8_t *rs = malloc(5 * rb + 1), *act = malloc(9 * ab);
        float *x = malloc(sizeof(float) * (size_t)n), y[5 * 9];
        for (int r = 0; r < 5; r++) make_row(type, rs + 1 + r * rb, n, r & 1);
        for (int t = 0; t < 9; t++) {
            fill_x(x, n);
            meshlm_quantize_act_ref(type, x, act + t * ab, n);
        }
        for (int nr = 1; nr <= 5; nr++)
            for (int nt = 1; nt <= 9; nt++) {
                rows(rs + 1, rb, nr, act, ab, n, nt, y, 5);
                for (int r = 0; r < nr; r++)
                    for (int t = 0; t < nt; t++) {
                        float ref = meshlm_vec_qdot_ref(type, rs + 1 + r * rb, act + t * ab, n);
                        bad += memcmp(&ref, &y[r + t * 5], sizeof ref) != 0;
                    }
            }
        free(rs), free(act), free(x);
    }
    CHECK_MSG(bad == 0, "%s %s: %d results differ from the reference", name, meshlm_type_name(type), bad);
}

static void test_instances(int type) {
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    if (!(c->avx2 && c->fma && c->f16c) || !meshlm_qdot_avx2(type)) return;
    check_instance("avx2", type, meshlm_qdot_avx2(type), meshlm_qdot_rows_avx2(type));
    if (c->avx512vnni && c->avx512vl) check_instance("vnni", type, meshlm_qdot_vnni(type), meshlm_qdot_rows_vnni(type));
}

/* meshlm_matmul == per-row reference dots of the reference-quantized x, bits, for any
 * token count and 1 or 3 threads; the reserved scratch is reused. */
static void test_matmul(int type) {
    int64_t n_in = 2 * block_of(type) + (block_of(type) == 32 ? 96 : 0), n_out = 13, nt_max = 9;
    size_t rb = meshlm_type_row_bytes(type, n_in), ab = meshlm_act_row_bytes(type, n_in);
    uint8_t *data = malloc(rb * (size_t)n_out), *act = malloc(ab);
    float *x = malloc(sizeof(float) * (size_t)(n_in * nt_max)), *y = malloc(sizeof(float) * (size_t)(n_out * nt_max));
    for (int64_t o = 0; o < n_out; o++) make_row(type, data + o * rb, n_in, o % 3 == 0);
    fill_x(x, n_in * nt_max);
    meshlm_matrix w = {data, type, n_in, n_out, rb, false};
    meshlm_pool *pools[2];
    CHECK(meshlm_pool_create(1, &pools[0]) == MESHLM_OK);
    CHECK(meshlm_pool_create(3, &pools[1]) == MESHLM_OK);
    CHECK(meshlm_matmul_reserve(pools[1], nt_max, n_in) == MESHLM_OK);
    void *reserved = meshlm_pool_scratch(pools[1], 1);
    int bad = 0;
    for (int p = 0; p < 3; p++)
        for (int64_t nt = 1; nt <= nt_max; nt += p == 2 ? 4 : 1) {
            meshlm_matmul(p == 2 ? NULL : pools[p], &w, x, nt, y);
            for (int64_t t = 0; t < nt; t++) {
                meshlm_quantize_act_ref(type, x + t * n_in, act, n_in);
                for (int64_t o = 0; o < n_out; o++) {
                    float ref = meshlm_vec_qdot_ref(type, data + o * rb, act, n_in);
                    bad += memcmp(&ref, &y[t * n_out + o], sizeof ref) != 0;
                }
            }
        }
    CHECK_MSG(bad == 0, "%s: %d matmul results differ from the reference dots", meshlm_type_name(type), bad);
    CHECK(meshlm_pool_scratch(pools[1], 1) == reserved);
    meshlm_pool_free(pools[0]);
    meshlm_pool_free(pools[1]);
    free(data), free(act), free(x), free(y);
}

/* MXFP4 blocks at the ends of the exponent's range (e = 0 and 1 give denormal scales, 255
 * the finite 2^127) holding all 16 codes: the dispatched kernel, both AVX2 instances and
 * the reference agree bit for bit on 1..5 rows x 1..9 tokens, and the reference is the
 * exact sum, worked out in double from the E2M1 definition (the activations are chosen so
 * nothing rounds but the final scale). */
static void test_mxfp4_edges(void) {
    enum { NB = 6, N = NB * 32 };
    static const uint8_t exps[NB] = {0, 1, 2, 127, 254, 255};
    uint8_t row[NB * MESHLM_MXFP4_BYTES];
    for (int b = 0; b < NB; b++) {
        uint8_t *p = row + b * MESHLM_MXFP4_BYTES;
        p[0] = exps[b];
        for (int j = 0; j < 16; j++) p[1 + j] = (uint8_t)(j | (15 - j) << 4);
    }
    /* Per token, one block carries the activations: d_a = 2^-k exactly (amax 127 * 2^-k)
     * and codes -127..127; the others are zero, so their scales cannot overflow. */
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    const bool avx2 = c->avx2 && c->fma && c->f16c, vnni = avx2 && c->avx512vnni && c->avx512vl;
    const size_t ab = meshlm_act_row_bytes(MESHLM_TYPE_MXFP4, N);
    float x[N], y[NB * 9];
    uint8_t *act = malloc(9 * ab);
    double want[9];
    for (int t = 0; t < 9; t++) {
        const int b = t % NB;
        const int k = exps[b] >= 254 ? 120 : exps[b] < 2 ? -60 : 3;
        memset(x, 0, sizeof x);
        for (int j = 0; j < 32; j++) x[32 * b + j] = ldexpf((float)((j * 37 + t * 11) % 255 - 127), -k);
        x[32 * b + t % 32] = ldexpf(127.0f, -k);
        meshlm_quantize_act_ref(MESHLM_TYPE_MXFP4, x, act + t * ab, N);
        want[t] = 0.0;
        for (int j = 0; j < 32; j++) {
            const int code = j < 16 ? j : 15 - (j - 16);
            const double mag = (code & 7) < 2 ? 0.5 * (code & 7) : ldexp(1.0 + 0.5 * (code & 1), ((code & 7) >> 1) - 1);
            want[t] += (code & 8 ? -mag : mag) * ldexp(1.0, exps[b] - 127) * x[32 * b + j];
        }
    }
    int bad = 0;
    for (int t = 0; t < 9; t++) {
        const uint8_t *a = act + t * ab;
        const float ref = meshlm_vec_qdot_ref(MESHLM_TYPE_MXFP4, row, a, N);
        CHECK_MSG((double)ref == (double)(float)want[t], "token %d (e = %d): reference %.9g, exact %.9g", t,
                  exps[t % NB], (double)ref, want[t]);
        float got[4] = {meshlm_vec_qdot(MESHLM_TYPE_MXFP4, row, a, N), ref, ref, ref};
        if (avx2) got[1] = meshlm_qdot_avx2(MESHLM_TYPE_MXFP4)(row, a, N);
        if (vnni) got[2] = meshlm_qdot_vnni(MESHLM_TYPE_MXFP4)(row, a, N);
        for (int i = 0; i < 3; i++) bad += memcmp(&got[i], &ref, sizeof ref) != 0;
    }
    for (int nt = 1; nt <= 9; nt++)
        for (int path = 0; path < 3; path++) {
            meshlm_qdot_rows_fn rows = path == 1 && avx2   ? meshlm_qdot_rows_avx2(MESHLM_TYPE_MXFP4)
                                       : path == 2 && vnni ? meshlm_qdot_rows_vnni(MESHLM_TYPE_MXFP4)
                                                           : NULL;
            if (path && !rows) continue;
            /* Rows are the six blocks' worth of one row repeated, 0 bytes apart. */
            for (int nr = 1; nr <= 5; nr += 2) {
                memset(y, 0xff, sizeof y);
                if (rows)
                    rows(row, 0, nr, act, ab, N, nt, y, nr);
                else
                    meshlm_vec_qdot_rows(MESHLM_TYPE_MXFP4, row, 0, nr, act, ab, N, nt, y, nr);
                for (int t = 0; t < nt; t++) {
                    const float ref = meshlm_vec_qdot_ref(MESHLM_TYPE_MXFP4, row, act + t * ab, N);
                    for (int r = 0; r < nr; r++) bad += memcmp(&y[r + t * nr], &ref, sizeof ref) != 0;
                }
            }
        }
    CHECK_MSG(bad == 0, "MXFP4 edge exponents: %d kernel results differ from the reference", bad);
    free(act);
}

int main(int argc, char **argv) {
    test_quantizer();
    test_mxfp4_edges();
    for (int i = 0; i < NTYPES; i++) {
        test_dot(int_types[i], false);
        test_dot(int_types[i], true);
        test_rows(int_types[i]);
        test_instances(int_types[i]);
        test_matmul(int_types[i]);
    }
    CHECK(meshlm_act_row_bytes(MESHLM_TYPE_F32, 64) == 0 && meshlm_act_row_bytes(MESHLM_TYPE_F16, 64) == 0);
    /* BF16 takes BF16 activations (test_kernels_bf16) exactly where the CPU has AVX512-BF16. */
    CHECK((meshlm_act_row_bytes(MESHLM_TYPE_BF16, 64) != 0) == (meshlm_act_block(MESHLM_TYPE_BF16) == MESHLM_ACT_BF16));
    CHECK(meshlm_matmul_reserve(NULL, 4, 64) != MESHLM_OK);
    CHECK(meshlm_matmul_reserve(NULL, 0, 64) != MESHLM_OK);
    if (argc == 1) {
        /* The same checks on the scalar path, in a child whose environment selects it. */
        pid_t pid = fork();
        if (pid == 0) {
            setenv("MESHLM_CPU", "scalar", 1);
            execl(argv[0], argv[0], "scalar", (char *)NULL);
            _exit(127);
        }
        int st = 0;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    return t_done();
}

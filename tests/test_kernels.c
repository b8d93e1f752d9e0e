/* The SIMD dot kernels against the reference dot: every type, 1..9 blocks (float types:
 * lengths around 8, 32 and 256), weights and activations spanning 1e-3..1e3 in
 * magnitude, rows and activations at unaligned addresses. The kernels reassociate f32
 * sums, so the bound is relative to the size of the terms:
 *   |kernel - reference| <= 1e-5 * sum_i |w_i x_i|   (1e-5 is about 84 f32 ulps)
 * plus, for blocks built from raw random bytes, every code the quantizers may not emit.
 * The multi-token and multi-row kernels must equal the one-token ones bit for bit, for any
 * number of tokens and rows (batch invariance); the test runs itself again under MESHLM_CPU=scalar so the
 * dispatcher is checked on both paths. */
#include <float.h>
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
#include "t.h"

static const int all_types[] = {MESHLM_TYPE_F32,  MESHLM_TYPE_F16,  MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0,
                                MESHLM_TYPE_Q4_0, MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0, MESHLM_TYPE_Q5_1,
                                MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q6_K, MESHLM_TYPE_MXFP4};
#define NTYPES ((int)(sizeof all_types / sizeof all_types[0]))

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next_u32(void) { return t_xorshift(&rng); }

static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* A value whose magnitude is drawn per group of 32 from 1e-3, 1 and 1e3, so one row
 * mixes scales the way real weights and activations do not, on purpose. */
static void fill(float *v, int64_t n) {
    static const float mags[3] = {1e-3f, 1.0f, 1e3f};
    float mag = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) mag = mags[next_u32() % 3];
        v[i] = uniform() * mag;
    }
}

/* Byte offsets of the fp16 scales inside one block: raw random blocks get finite ones. */
static int scale_offsets(int type, int *off) {
    switch (type) {
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q8_0: off[0] = 0; return 1;
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_1:
    case MESHLM_TYPE_Q4_K:
    case MESHLM_TYPE_Q5_K:
        off[0] = 0;
        off[1] = 2;
        return 2;
    case MESHLM_TYPE_Q6_K: off[0] = 208; return 1;
    default: return 0;
    }
}

static void random_blocks(int type, uint8_t *q, int64_t n) {
    int off[2], k = scale_offsets(type, off);
    int64_t be = meshlm_type_block_elems(type);
    size_t bb = meshlm_type_block_bytes(type);
    for (size_t i = 0; i < meshlm_type_row_bytes(type, n); i++) q[i] = (uint8_t)next_u32();
    /* MXFP4's exponent bytes: scales 2^-24..2^-5, in the range of the fp16 ones above. */
    if (type == MESHLM_TYPE_MXFP4)
        for (int64_t b = 0; b < n / be; b++) q[(size_t)b * bb] = (uint8_t)(104 + next_u32() % 20);
    for (int64_t b = 0; b < n / be; b++)
        for (int s = 0; s < k; s++) {
            uint16_t h = meshlm_fp32_to_fp16(uniform() * 0.01f);
            q[(size_t)b * bb + (size_t)off[s]] = (uint8_t)h;
            q[(size_t)b * bb + (size_t)off[s] + 1] = (uint8_t)(h >> 8);
        }
}

/* One comparison; the row and x sit one byte and one float past an aligned address. */
static void check_one(int type, meshlm_dot_fn kernel, int64_t n, bool raw) {
    size_t rb = meshlm_type_row_bytes(type, n);
    uint8_t *qbuf = malloc(rb + 1), *q = qbuf + 1;
    float *xbuf = malloc((size_t)(n + 1) * sizeof(float)), *x = xbuf + 1;
    float *w = malloc((size_t)n * sizeof(float));
    fill(x, n);
    if (raw) {
        random_blocks(type, q, n);
    } else {
        fill(w, n);
        meshlm_quantize_row(type, w, q, n);
    }
    meshlm_dequantize_row(type, q, w, n);
    double mag = 0;
    for (int64_t i = 0; i < n; i++) mag += fabs((double)w[i] * x[i]);
    float ref = meshlm_vec_dot_ref(type, q, x, n);
    float got = kernel(q, x, n);
    double tol = 1e-5 * mag + FLT_MIN;
    CHECK_MSG(fabs((double)got - ref) <= tol, "%s n=%lld%s: %.9g vs ref %.9g (tol %g)", meshlm_type_name(type),
              (long long)n, raw ? " raw" : "", (double)got, (double)ref, tol);
    /* The dispatcher must be the chosen kernel itself, bit for bit. */
    float via = meshlm_vec_dot(type, q, x, n);
    float want = meshlm_cpu_path_get() == MESHLM_CPU_AVX2 ? got : ref;
    CHECK_MSG(memcmp(&via, &want, sizeof via) == 0, "%s n=%lld: dispatch %.9g, expected %.9g",
              meshlm_type_name(type), (long long)n, (double)via, (double)want);
    free(qbuf);
    free(xbuf);
    free(w);
}

static void test_avx2_kernels(void) {
    static const int64_t float_lens[] = {1, 7, 8, 9, 31, 32, 33, 255, 256, 257, 1037, 9 * 256 + 5};
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    if (!(c->avx2 && c->fma && c->f16c)) {
        printf("skip AVX2 kernel checks: this CPU lacks AVX2, FMA or F16C (%s)\n", meshlm_cpu_features());
        return;
    }
    for (int t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        meshlm_dot_fn kernel = meshlm_dot_avx2(type);
        if (!kernel) {
            printf("no AVX2 kernel for %s: the reference serves it\n", meshlm_type_name(type));
            continue;
        }
        int64_t be = meshlm_type_block_elems(type);
        if (be == 1) {
            for (size_t i = 0; i < sizeof float_lens / sizeof float_lens[0]; i++)
                for (int rep = 0; rep < 3; rep++) check_one(type, kernel, float_lens[i], false);
        } else {
            for (int64_t k = 1; k <= 9; k++)
                for (int rep = 0; rep < 3; rep++) {
                    check_one(type, kernel, k * be, false);
                    check_one(type, kernel, k * be, true);
                }
        }
    }
}

static void test_choose(void) {
    meshlm_cpu_caps none = {0}, avx2 = {.avx2 = true, .fma = true, .f16c = true};
    meshlm_cpu_caps no_f16c = {.avx2 = true, .fma = true};
    const char *why;
    CHECK(meshlm_cpu_choose(&avx2, NULL, &why) == MESHLM_CPU_AVX2 && !why);
    CHECK(meshlm_cpu_choose(&avx2, "", &why) == MESHLM_CPU_AVX2 && !why);
    CHECK(meshlm_cpu_choose(&avx2, "scalar", &why) == MESHLM_CPU_SCALAR && !why);
    CHECK(meshlm_cpu_choose(&avx2, "avx2", &why) == MESHLM_CPU_AVX2 && !why);
    CHECK(meshlm_cpu_choose(&none, NULL, &why) == MESHLM_CPU_SCALAR && !why);
    CHECK(meshlm_cpu_choose(&none, "avx2", &why) == MESHLM_CPU_SCALAR && why);
    CHECK(meshlm_cpu_choose(&no_f16c, NULL, &why) == MESHLM_CPU_SCALAR);
    CHECK(meshlm_cpu_choose(&avx2, "avx512", &why) == MESHLM_CPU_AVX2 && why);
    CHECK(strstr(meshlm_cpu_features(), "path=") != NULL);
}

/* n_tok tokens at an odd stride (unaligned for most tokens), results at stride 2: every
 * multi result must be the one-token result, bit for bit. multi/single NULL check the
 * dispatcher on this process's path instead of the AVX2 kernels. */
static void check_multi(int type, meshlm_dot_multi_fn multi, meshlm_dot_fn single, int64_t n, bool raw) {
    enum { MAX_TOK = 9, YS = 2 };
    int64_t xs = n + 3;
    size_t rb = meshlm_type_row_bytes(type, n);
    uint8_t *qbuf = malloc(rb + 1), *q = qbuf + 1;
    float *xbuf = malloc((size_t)(xs * MAX_TOK + 1) * sizeof(float)), *x = xbuf + 1;
    float *w = malloc((size_t)n * sizeof(float));
    fill(x, xs * MAX_TOK);
    if (raw) {
        random_blocks(type, q, n);
    } else {
        fill(w, n);
        meshlm_quantize_row(type, w, q, n);
    }
    for (int64_t nt = 1; nt <= MAX_TOK; nt++) {
        float y[MAX_TOK * YS];
        for (int i = 0; i < MAX_TOK * YS; i++) y[i] = -1.0f;
        if (multi)
            multi(q, x, n, nt, xs, y, YS);
        else
            meshlm_vec_dot_multi(type, q, x, n, nt, xs, y, YS);
        for (int64_t t = 0; t < MAX_TOK; t++) {
            if (t >= nt) {
                CHECK_MSG(y[t * YS] == -1.0f, "%s n=%lld n_tok=%lld: wrote token %lld", meshlm_type_name(type),
                          (long long)n, (long long)nt, (long long)t);
                continue;
            }
            const float *xt = x + t * xs;
            float want = single ? single(q, xt, n) : meshlm_vec_dot(type, q, xt, n);
            CHECK_MSG(memcmp(&y[t * YS], &want, sizeof want) == 0,
                      "%s%s n=%lld%s n_tok=%lld token %lld: multi %.9g, single %.9g", multi ? "avx2 " : "",
                      meshlm_type_name(type), (long long)n, raw ? " raw" : "", (long long)nt, (long long)t,
                      (double)y[t * YS], (double)want);
            CHECK(y[t * YS + 1] == -1.0f);
        }
    }
    free(qbuf);
    free(xbuf);
    free(w);
}

/* Up to 5 rows at an odd stride against up to 9 tokens: every result of the rows kernel
 * (rows NULL: the dispatcher) is the one-token dot, bit for bit, and nothing else is
 * written. */
static void check_rows(int type, meshlm_dot_rows_fn rows, meshlm_dot_fn single, int64_t n) {
    enum { MAX_ROWS = 5, MAX_TOK = 9, YS = MAX_ROWS + 2 };
    int64_t xs = n + 3;
    size_t rb = meshlm_type_row_bytes(type, n), rs = rb + 1;
    uint8_t *q = malloc(rs * MAX_ROWS);
    float *x = malloc((size_t)(xs * MAX_TOK) * sizeof(float)), *w = malloc((size_t)n * sizeof(float));
    fill(x, xs * MAX_TOK);
    for (int r = 0; r < MAX_ROWS; r++) {
        fill(w, n);
        meshlm_quantize_row(type, w, q + (size_t)r * rs, n);
    }
    for (int64_t nr = 1; nr <= MAX_ROWS; nr++)
        for (int64_t nt = 1; nt <= MAX_TOK; nt++) {
            float y[MAX_TOK * YS];
            for (int i = 0; i < MAX_TOK * YS; i++) y[i] = -1.0f;
            if (rows)
                rows(q, rs, nr, x, n, nt, xs, y, YS);
            else
                meshlm_vec_dot_rows(type, q, rs, nr, x, n, nt, xs, y, YS);
            int bad = 0;
            for (int64_t t = 0; t < MAX_TOK; t++)
                for (int64_t r = 0; r < YS; r++) {
                    float want = -1.0f;
                    if (t < nt && r < nr) {
                        const uint8_t *row = q + (size_t)r * rs;
                        want = single ? single(row, x + t * xs, n) : meshlm_vec_dot(type, row, x + t * xs, n);
                    }
                    bad += memcmp(&y[t * YS + r], &want, sizeof want) != 0;
                }
            CHECK_MSG(bad == 0, "%srows %s n=%lld rows=%lld n_tok=%lld: %d outputs differ", rows ? "avx2 " : "",
                      meshlm_type_name(type), (long long)n, (long long)nr, (long long)nt, bad);
        }
    free(q);
    free(x);
    free(w);
}

static void test_multi(void) {
    static const int64_t float_lens[] = {1, 7, 8, 9, 33, 256, 257, 2 * 256 + 40 + 5};
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    bool avx2 = c->avx2 && c->fma && c->f16c;
    for (int ti = 0; ti < NTYPES; ti++) {
        int type = all_types[ti];
        meshlm_dot_multi_fn multi = avx2 ? meshlm_dot_multi_avx2(type) : NULL;
        meshlm_dot_fn single = avx2 ? meshlm_dot_avx2(type) : NULL;
        CHECK_MSG(!multi == !single, "%s: a multi kernel without its one-token kernel or the reverse",
                  meshlm_type_name(type));
        int64_t be = meshlm_type_block_elems(type);
        int64_t lens[sizeof float_lens / sizeof float_lens[0]];
        size_t nl = 0;
        if (be == 1) {
            for (; nl < sizeof float_lens / sizeof float_lens[0]; nl++) lens[nl] = float_lens[nl];
        } else {
            for (int64_t k = 1; k <= 9; k += 2) lens[nl++] = k * be;
        }
        meshlm_dot_rows_fn rows = avx2 ? meshlm_dot_rows_avx2(type) : NULL;
        CHECK_MSG(!rows || single, "%s: a rows kernel without its one-token kernel", meshlm_type_name(type));
        for (size_t i = 0; i < nl; i++) {
            if (rows) check_rows(type, rows, single, lens[i]);
            check_rows(type, NULL, NULL, lens[i]);
        }
        for (size_t i = 0; i < nl; i++)
            for (int raw = 0; raw <= (be > 1); raw++) {
                if (multi) check_multi(type, multi, single, lens[i], raw);
                check_multi(type, NULL, NULL, lens[i], raw);
            }
    }
}

/* meshlm_matmul over shapes large enough for its blocking of rows and tokens to cut them
 * into several pieces (with remainders), on 1 and 3 threads: every output is the
 * one-token dot of its row and token, bit for bit (for the types of the integer path, the
 * integer dot of the row with the token's quantized activations). */
static void test_matmul_blocking(void) {
    static const int types[] = {MESHLM_TYPE_F16, MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q6_K, MESHLM_TYPE_MXFP4};
    const int64_t n_in = 8192, n_out = 37, n_tok = 21;
    float *x = malloc((size_t)(n_in * n_tok) * sizeof(float)), *y = malloc((size_t)(n_out * n_tok) * sizeof(float));
    float *wf = malloc((size_t)n_in * sizeof(float));
    uint8_t *act = malloc(meshlm_act_row_bytes(MESHLM_TYPE_Q8_0, n_in) + meshlm_act_row_bytes(MESHLM_TYPE_Q6_K, n_in));
    fill(x, n_in * n_tok);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti];
        size_t rb = meshlm_type_row_bytes(type, n_in);
        uint8_t *w = malloc(rb * (size_t)n_out);
        for (int64_t o = 0; o < n_out; o++) {
            fill(wf, n_in);
            meshlm_quantize_row(type, wf, w + (size_t)o * rb, n_in);
        }
        meshlm_matrix m = {w, type, n_in, n_out, rb, false};
        for (int threads = 1; threads <= 3; threads += 2) {
            meshlm_pool *pool = NULL;
            CHECK(meshlm_pool_create(threads, &pool) == 0);
            for (int64_t nt = 1; nt <= n_tok; nt += n_tok - 1) {
                meshlm_matmul(pool, &m, x, nt, y);
                int bad = 0;
                for (int64_t t = 0; t < nt; t++) {
                    bool q8 = meshlm_act_row_bytes(type, n_in) != 0;
                    if (q8) meshlm_quantize_act(type, x + t * n_in, act, n_in);
                    for (int64_t o = 0; o < n_out; o++) {
                        const uint8_t *row = w + (size_t)o * rb;
                        float want = q8 ? meshlm_vec_qdot(type, row, act, n_in)
                                        : meshlm_vec_dot(type, row, x + t * n_in, n_in);
                        bad += memcmp(&y[t * n_out + o], &want, sizeof want) != 0;
                    }
                }
                CHECK_MSG(bad == 0, "matmul %s, %d threads, %lld tokens: %d outputs differ from the one-token dot",
                          meshlm_type_name(type), threads, (long long)nt, bad);
            }
            meshlm_pool_free(pool);
        }
        free(w);
    }
    free(x);
    free(y);
    free(wf);
    free(act);
}

/* The same checks with MESHLM_CPU=scalar, in a child since the path is chosen once. */
static void rerun_scalar(const char *self) {
    if (getenv("MESHLM_CPU")) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MESHLM_CPU", "scalar", 1);
        execl(self, self, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "MESHLM_CPU=scalar run failed (status %d)", st);
}

/* Every F16 and BF16 pattern decodes to the scalar conversion's value through the
 * dispatched row decoder (the AVX2 one on that path), NaNs staying NaN; odd lengths
 * exercise the tail. */
static void test_dequant_16bit(void) {
    static uint16_t bits[65536 + 5];
    static float out[65536 + 5];
    for (int i = 0; i < 65536 + 5; i++) bits[i] = (uint16_t)(i * 40503u);
    for (int type = MESHLM_TYPE_F16; type >= 0; type = type == MESHLM_TYPE_F16 ? MESHLM_TYPE_BF16 : -1) {
        for (int n = 65536 + 5; n >= 1; n = n > 16 ? 13 : n - 6) {
            meshlm_dequantize_row(type, bits, out, n);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                float want = type == MESHLM_TYPE_F16 ? meshlm_fp16_to_fp32(bits[i]) : meshlm_bf16_to_fp32(bits[i]);
                bool same = isnan(want) ? isnan(out[i]) : memcmp(&want, &out[i], sizeof want) == 0;
                bad += !same;
            }
            CHECK_MSG(bad == 0, "%s: %d of %d values differ", meshlm_type_name(type), bad, n);
        }
    }
}

int main(int argc, char **argv) {
    (void)argc;
    printf("cpu: %s\n", meshlm_cpu_features());
    test_choose();
    test_dequant_16bit();
    test_avx2_kernels();
    test_multi();
    test_matmul_blocking();
    rerun_scalar(argv[0]);
    return t_done();
}

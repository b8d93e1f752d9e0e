/* Ops and the thread pool against plain double-precision references. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/ops.h"
#include "core/pool.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "meshlm.h"
#include "t.h"

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_rmsnorm_softmax(void) {
    unsigned seed = 1;
    float x[37], w[37], y[37];
    for (int i = 0; i < 37; i++) x[i] = frand(&seed) * 3, w[i] = frand(&seed);
    double ss = 0;
    for (int i = 0; i < 37; i++) ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / 37 + 1e-5);
    meshlm_rmsnorm(y, x, w, 37, 1e-5f);
    for (int i = 0; i < 37; i++) CHECK_NEAR(y[i], x[i] * scale * w[i], 1e-5);
    float s[5] = {1, 2, 3, 1000, -5};
    meshlm_softmax(s, 5);
    CHECK_NEAR(s[3], 1.0, 1e-6);
    float u[3] = {0, 0, 0};
    meshlm_softmax(u, 3);
    CHECK_NEAR(u[0], 1.0 / 3, 1e-6);
}

/* silu * up against double precision over [-100, 100] and past the clamp, and the
 * vector lanes bit for bit the one-value (scalar) path, whatever the length. */
static void test_silu(void) {
    enum { N = 4001 };
    static float g[N], u[N], one[N];
    for (int i = 0; i < N; i++) g[i] = -100.0f + 0.05f * (float)i, u[i] = 0.5f + (float)(i % 7) / 3.0f;
    g[0] = -1e30f, g[1] = 1e30f, g[2] = 0.0f, g[3] = -0.0f, g[4] = 1e-30f;
    for (int i = 0; i < N; i++) {
        one[i] = g[i];
        meshlm_silu_mul(&one[i], &u[i], 1);
    }
    for (int64_t len = 1; len <= 40; len++) {
        float part[40];
        memcpy(part, g + 100, sizeof(float) * (size_t)len);
        meshlm_silu_mul(part, u + 100, len);
        CHECK_MSG(memcmp(part, one + 100, sizeof(float) * (size_t)len) == 0, "silu: %lld values differ from one by one",
                  (long long)len);
    }
    float all[N];
    memcpy(all, g, sizeof all);
    meshlm_silu_mul(all, u, N);
    CHECK(memcmp(all, one, sizeof all) == 0);
    for (int i = 0; i < N; i++) {
        double x = g[i], ref = x / (1.0 + exp(-x)) * u[i];
        if (x < -88.0) ref = x / (1.0 + exp(88.0)) * u[i]; /* e^-x is clamped at e^88: |silu| < 1e-36 there */
        CHECK_MSG(fabs(all[i] - ref) <= 4e-7 * fabs(ref) + 1e-37, "silu(%g) * %g = %.9g, want %.9g", x, (double)u[i],
                  (double)all[i], ref);
    }
}

/* gelu * up and soft-capping against double precision, including the saturated ends, and
 * the vector lanes bit for bit the one-value (scalar) path, whatever the length. */
static void test_gelu_softcap(void) {
    enum { N = 801 };
    static float g[N], u[N], c[N], x0[N], one[N], onec[N];
    for (int i = 0; i < N; i++) g[i] = -20.0f + 0.05f * (float)i, u[i] = 0.5f + (float)(i % 5) / 4.0f;
    memcpy(c, g, sizeof c);
    memcpy(x0, g, sizeof x0);
    for (int i = 0; i < N; i++) {
        one[i] = onec[i] = g[i];
        meshlm_gelu_mul(&one[i], &u[i], 1);
        meshlm_softcap(&onec[i], 1, 5.0f);
    }
    for (int64_t len = 1; len <= 40; len++) {
        float part[40], partc[40];
        memcpy(part, g + 300, sizeof(float) * (size_t)len);
        memcpy(partc, g + 300, sizeof(float) * (size_t)len);
        meshlm_gelu_mul(part, u + 300, len);
        meshlm_softcap(partc, len, 5.0f);
        CHECK_MSG(memcmp(part, one + 300, sizeof(float) * (size_t)len) == 0, "gelu: %lld values differ from one by one",
                  (long long)len);
        CHECK_MSG(memcmp(partc, onec + 300, sizeof(float) * (size_t)len) == 0,
                  "softcap: %lld values differ from one by one", (long long)len);
    }
    meshlm_gelu_mul(g, u, N);
    CHECK(memcmp(g, one, sizeof one) == 0);
    for (int i = 0; i < N; i++) {
        double x = x0[i], ref = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))) * u[i];
        CHECK_MSG(fabs(g[i] - ref) <= 2e-6 * fabs(x * u[i]) + 1e-30, "gelu(%g) * %g = %.9g, want %.9g", x, (double)u[i],
                  (double)g[i], ref);
    }
    meshlm_softcap(c, N, 5.0f);
    CHECK(memcmp(c, onec, sizeof onec) == 0);
    for (int i = 0; i < N; i++) {
        double x = x0[i], ref = 5.0 * tanh(x / 5.0);
        CHECK_MSG(fabs(c[i] - ref) <= 1e-6 * 5.0, "softcap(%g) = %.9g, want %.9g", x, (double)c[i], ref);
    }
    CHECK(c[0] > -5.0f && c[N - 1] < 5.0f);
}

/* gpt-oss's clamped SwiGLU against double precision on both sides of both clamps, NaNs
 * included, and the vector lanes bit for bit the one-value path, whatever the length. */
static void test_swiglu_oai(void) {
    enum { N = 803 };
    static float g[N], u[N], one[N];
    for (int i = 0; i < N; i++) g[i] = -20.0f + 0.05f * (float)i, u[i] = -10.0f + 0.025f * (float)((i * 7) % N);
    g[5] = NAN, u[6] = NAN, g[7] = 1e30f, u[8] = -1e30f;
    for (int i = 0; i < N; i++) {
        one[i] = g[i];
        meshlm_swiglu_oai_mul(&one[i], &u[i], 1);
    }
    for (int64_t len = 1; len <= 40; len++) {
        float part[40];
        memcpy(part, g, sizeof(float) * (size_t)len);
        meshlm_swiglu_oai_mul(part, u, len);
        CHECK_MSG(memcmp(part, one, sizeof(float) * (size_t)len) == 0, "swiglu_oai: %lld values differ from one by one",
                  (long long)len);
    }
    float all[N];
    memcpy(all, g, sizeof all);
    meshlm_swiglu_oai_mul(all, u, N);
    CHECK(memcmp(all, one, sizeof all) == 0);
    for (int i = 0; i < N; i++) {
        /* A NaN gate is taken as the clamp's bound, a NaN up value as the lower bound. */
        double x = isnan(g[i]) ? 7.0 : fmin(g[i], 7.0), y = isnan(u[i]) ? -7.0 : fmax(-7.0, fmin(u[i], 7.0));
        double ref = x / (1.0 + exp(-1.702 * x)) * (y + 1.0);
        CHECK_MSG(fabs(all[i] - ref) <= 1e-6 * (fabs(x) + 1) * (fabs(y) + 1), "swiglu_oai(%g, %g) = %.9g, want %.9g",
                  (double)g[i], (double)u[i], (double)all[i], ref);
    }
}

/* YaRN as ggml computes it, in double: each pair's angle mixes the interpolated and the
 * extrapolated one along the ramp between the corrected dimensions, and cos and sin grow
 * by 1 + 0.1 ln factor. */
static void yarn_ref(int n_rot, double base, double factor, int n_orig, double pos, int i, double *th, double *m) {
    double lo = floor(n_rot * log(n_orig / (32.0 * 2 * M_PI)) / (2 * log(base)));
    double hi = ceil(n_rot * log(n_orig / (1.0 * 2 * M_PI)) / (2 * log(base)));
    lo = fmax(lo, 0), hi = fmin(hi, n_rot - 1);
    double extrap = pos * pow(base, -2.0 * i / n_rot), interp = extrap / factor;
    double ramp = 1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)));
    *th = interp * (1 - ramp) + extrap * ramp;
    *m = 1 + 0.1 * log(factor);
}

static void test_rope_yarn(void) {
    enum { HD = 64 };
    meshlm_rope r;
    CHECK(meshlm_rope_init(&r, HD, HD, true, 150000.0, NULL, 1.0) == MESHLM_OK);
    float x[HD], ref[HD];
    unsigned seed = 11;
    for (int i = 0; i < HD; i++) x[i] = ref[i] = frand(&seed);
    /* Rotate once unscaled first: the scaled rope must not reuse the cached angles. */
    meshlm_rope_apply(&r, x, 1, 1000);
    CHECK(meshlm_rope_yarn(&r, 150000.0, 32.0, 4096, 32.0, 1.0, 1.0f) == MESHLM_OK);
    memcpy(x, ref, sizeof x);
    meshlm_rope_apply(&r, x, 1, 1000);
    int mixed = 0;
    for (int i = 0; i < HD / 2; i++) {
        double th, m;
        yarn_ref(HD, 150000.0, 32.0, 4096, 1000.0, i, &th, &m);
        double a = ref[i], b = ref[i + HD / 2];
        CHECK_NEAR(x[i], (a * cos(th) - b * sin(th)) * m, 2e-5);
        CHECK_NEAR(x[i + HD / 2], (a * sin(th) + b * cos(th)) * m, 2e-5);
        double lo_th = 1000.0 * pow(150000.0, -2.0 * i / HD);
        mixed += th != lo_th && th != lo_th / 32.0;
    }
    CHECK_MSG(mixed > 0, "no pair on the ramp: the test does not reach the mix");
    CHECK(meshlm_rope_yarn(&r, 150000.0, 0.5, 4096, 32.0, 1.0, 1.0f) != MESHLM_OK);
    CHECK(meshlm_rope_yarn(&r, 150000.0, 4.0, 0, 32.0, 1.0, 1.0f) != MESHLM_OK);
}

static void test_rope(void) {
    meshlm_rope r;
    float factors[4] = {1, 2, 4, 8};
    CHECK(meshlm_rope_init(&r, 8, 8, false, 10000.0, factors, 1.0) == MESHLM_OK);
    float x[16], ref[16];
    unsigned seed = 7;
    for (int i = 0; i < 16; i++) x[i] = ref[i] = frand(&seed);
    meshlm_rope_apply(&r, x, 2, 5);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            double th = 5.0 * pow(10000.0, -2.0 * i / 8) / factors[i];
            double a = ref[h * 8 + 2 * i], b = ref[h * 8 + 2 * i + 1];
            CHECK_NEAR(x[h * 8 + 2 * i], a * cos(th) - b * sin(th), 1e-5);
            CHECK_NEAR(x[h * 8 + 2 * i + 1], a * sin(th) + b * cos(th), 1e-5);
        }
    /* neox, partial rotation: dims 4..7 stay. */
    CHECK(meshlm_rope_init(&r, 8, 4, true, 10000.0, NULL, 1.0) == MESHLM_OK);
    for (int i = 0; i < 8; i++) x[i] = ref[i];
    meshlm_rope_apply(&r, x, 1, 3);
    for (int i = 0; i < 2; i++) {
        double th = 3.0 * pow(10000.0, -2.0 * i / 4);
        CHECK_NEAR(x[i], ref[i] * cos(th) - ref[i + 2] * sin(th), 1e-5);
        CHECK_NEAR(x[i + 2], ref[i] * sin(th) + ref[i + 2] * cos(th), 1e-5);
    }
    for (int i = 4; i < 8; i++) CHECK(x[i] == ref[i]);
    /* linear scaling by 8: position 24 turns as position 3 does unscaled */
    float y[8];
    for (int i = 0; i < 8; i++) y[i] = ref[i];
    CHECK(meshlm_rope_init(&r, 8, 4, true, 10000.0, NULL, 8.0) == MESHLM_OK);
    meshlm_rope_apply(&r, y, 1, 24);
    for (int i = 0; i < 8; i++) CHECK_NEAR(y[i], x[i], 1e-6);
    CHECK(meshlm_rope_init(&r, 8, 8, false, 10000.0, NULL, 0.0) != MESHLM_OK);
    CHECK(meshlm_rope_init(&r, 8, 7, false, 10000.0, NULL, 1.0) != MESHLM_OK);
    CHECK(meshlm_rope_init(&r, 8, 8, false, -1.0, NULL, 1.0) != MESHLM_OK);
}

typedef struct count_job {
    int hits[8];
} count_job;

static void count_fn(void *arg, int ith, int nth) {
    count_job *j = arg;
    j->hits[ith] += nth;
}

static void test_pool(void) {
    long lo, hi, total = 0, prev = 0;
    for (int i = 0; i < 3; i++) {
        meshlm_split_range(10, i, 3, &lo, &hi);
        CHECK(lo == prev);
        total += hi - lo;
        prev = hi;
    }
    CHECK(total == 10);
    meshlm_pool *p;
    CHECK(meshlm_pool_create(4, &p) == MESHLM_OK);
    count_job j = {{0}};
    for (int r = 0; r < 100; r++) meshlm_pool_run(p, count_fn, &j);
    for (int i = 0; i < 4; i++) CHECK(j.hits[i] == 400);
    meshlm_pool_free(p);
    CHECK(meshlm_pool_create(0, &p) == MESHLM_ERR_INVALID_ARG);
}

/* The threaded matmul equals a double-precision reference, and the same bits for any
 * thread count and any number of tokens at once. For the types of the integer path the
 * reference takes the activations as matmul quantizes them (d * q per block), so the
 * tolerance stays that of f32 rounding. */
static void test_matmul(int type) {
    enum { N_IN = 512, N_OUT = 37, N_TOK = 5 };
    unsigned seed = 3;
    float *wf = malloc(sizeof(float) * N_IN * N_OUT), *x = malloc(sizeof(float) * N_IN * N_TOK);
    float *deq = malloc(sizeof(float) * N_IN);
    size_t rb = meshlm_type_row_bytes(type, N_IN);
    char *wq = malloc(rb * N_OUT);
    for (int i = 0; i < N_IN * N_OUT; i++) wf[i] = frand(&seed);
    for (int i = 0; i < N_IN * N_TOK; i++) x[i] = frand(&seed);
    for (int o = 0; o < N_OUT; o++) meshlm_quantize_row(type, wf + o * N_IN, wq + o * rb, N_IN);
    meshlm_matrix m = {wq, type, N_IN, N_OUT, rb, false};
    float y1[N_TOK * N_OUT], y3[N_TOK * N_OUT], yone[N_OUT];
    meshlm_pool *p;
    CHECK(meshlm_pool_create(3, &p) == MESHLM_OK);
    meshlm_matmul(NULL, &m, x, N_TOK, y1);
    meshlm_matmul(p, &m, x, N_TOK, y3);
    CHECK(memcmp(y1, y3, sizeof y1) == 0);
    meshlm_matmul(p, &m, x + 2 * N_IN, 1, yone);
    CHECK(memcmp(yone, y1 + 2 * N_OUT, sizeof yone) == 0);
    size_t ab = meshlm_act_row_bytes(type, N_IN);
    if (ab) {
        void *act = malloc(ab);
        for (int t = 0; t < N_TOK; t++) {
            meshlm_quantize_act_ref(type, x + t * N_IN, act, N_IN);
            for (int i = 0; i < N_IN; i++)
                x[t * N_IN + i] = meshlm_act_block(type) == MESHLM_ACT_BF16
                                      ? meshlm_bf16_to_fp32(((const uint16_t *)act)[i])
                                  : ab == meshlm_act_row_bytes(MESHLM_TYPE_Q8_0, N_IN)
                                      ? ((meshlm_act32 *)act)[i / 32].d * ((meshlm_act32 *)act)[i / 32].q[i % 32]
                                      : ((meshlm_act256 *)act)[i / 256].d * ((meshlm_act256 *)act)[i / 256].q[i % 256];
        }
        free(act);
    }
    for (int o = 0; o < N_OUT; o++) {
        meshlm_matrix_row(&m, o, deq);
        for (int t = 0; t < N_TOK; t++) {
            double ref = 0;
            for (int i = 0; i < N_IN; i++) ref += (double)deq[i] * x[t * N_IN + i];
            CHECK_NEAR(y1[t * N_OUT + o], ref, 1e-3);
        }
    }
    meshlm_pool_free(p);
    free(wf), free(x), free(deq), free(wq);
}

int main(void) {
    test_rmsnorm_softmax();
    test_silu();
    test_gelu_softcap();
    test_swiglu_oai();
    test_rope();
    test_rope_yarn();
    test_pool();
    int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0,
                   MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) test_matmul(types[i]);
    return t_done();
}

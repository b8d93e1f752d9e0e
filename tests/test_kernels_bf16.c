/* BF16 activations for BF16 weights: the reference's order on values that pin it down (the
 * order the AMX tiles were found to compute); the AVX-512 and AMX-BF16 rows kernels against
 * it, bit for bit, on odd lengths (tails inside a 32-value chunk, rows up to 8200 values),
 * row counts around the 16-row panels and token counts around the 16-token tiles, each
 * token also alone, with values from tiny to huge (denormals read as zero, tiny results
 * flushed); the reference against a double-precision dot of the rounded values, within f32
 * rounding; and a matmul through the engine's dispatch. Skips, saying why, without
 * AVX512-BF16, and leaves out the tile kernel without AMX-BF16. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/quant.h"
#include "meshlm.h"
#include "t.h"

static uint32_t seed = 12345;

static float frand(void) {
    seed = seed * 1664525u + 1013904223u;
    return (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
}

/* Random values over many binades, and now and then a denormal or zero. */
static float value(void) {
    float f = frand() * ldexpf(1.0f, (int)(seed % 40) - 20);
    if (seed % 97 == 0) f = 1e-39f * (float)((int)(seed % 3) - 1);
    return f;
}

static float bf(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A weight: any pattern below 2^16 in magnitude, denormals included (sums stay finite). */
static uint16_t weight(void) {
    do seed = seed * 1664525u + 1013904223u;
    while (((seed >> 16) & 0x7f80u) > 0x4780u);
    return (uint16_t)(seed >> 16);
}

static uint16_t bits16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}

/* The order the tiles were found to have, on values that tell the candidates apart. */
static void check_order(void) {
    enum { N = 32 };
    uint16_t w[N] = {0}, a[N] = {0};
    /* Even products 1, 2^-24, 2^-24 in one sum: 1 + 2^-24 + 2^-24 rounds back to 1 twice. */
    w[0] = bits16(1.0f), w[2] = w[4] = bits16(ldexpf(1.0f, -24));
    for (int i = 0; i < 6; i += 2) a[i] = bits16(1.0f);
    CHECK(meshlm_qdot_bf16_ref(w, a, N) == 1.0f);
    /* A chunk of 1, then one whose even and odd products are 2^-24: the chunk's two sums
     * meet before the row's sum, so 2^-23 reaches it (one product at a time would not). */
    uint16_t w2[2 * N] = {0}, a2[2 * N] = {0};
    w2[0] = a2[0] = a2[N] = a2[N + 1] = bits16(1.0f);
    w2[N] = w2[N + 1] = bits16(ldexpf(1.0f, -24));
    CHECK(meshlm_qdot_bf16_ref(w2, a2, 2 * N) == 1.0f + ldexpf(1.0f, -23));
    /* 2^-126 + 2^-149 - 1.5 * 2^-149 is 2^-126 - 2^-150: tiny on 24 bits, so zero. */
    memset(w, 0, sizeof w), memset(a, 0, sizeof a);
    w[0] = bits16(ldexpf(1.0f, -63)), a[0] = w[0];
    w[2] = bits16(ldexpf(1.0f, -75)), a[2] = bits16(ldexpf(1.0f, -74));
    w[4] = bits16(ldexpf(-1.5f, -75)), a[4] = a[2];
    CHECK(meshlm_qdot_bf16_ref(w, a, N) == 0.0f);
}

enum { MAXR = 50, MAXT = 70 };

/* A rows kernel against the reference, bit for bit, on every shape listed; each (row, token)
 * is compared with the reference dot, so a token alone and in any batch must agree, and the
 * kernel must also give a token alone the bits it gave it inside the batch. */
static void check_rows(const char *name, meshlm_qdot_rows_fn qrows, const uint16_t *w, const uint8_t *act,
                       size_t stride, int n, const float *ref) {
    static const int rows[] = {1, 2, 15, 16, 17, 33, 48, 50}, toks[] = {1, 2, 5, 15, 16, 17, 33, 70};
    enum { YS = MAXR + 3 };
    static float y[YS * MAXT], y1[MAXR];
    int bad = 0, bad_alone = 0;
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
        for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
            int nr = rows[ri], nt = toks[ti], r0 = MAXR - nr; /* the last rows: no reading past them */
            qrows(w + (size_t)r0 * n, (size_t)n * 2, nr, act, stride, n, nt, y, YS);
            for (int r = 0; r < nr; r++)
                for (int t = 0; t < nt; t++) bad += memcmp(&ref[(r0 + r) * MAXT + t], &y[r + t * YS], 4) != 0;
            int t = nt - 1;
            qrows(w + (size_t)r0 * n, (size_t)n * 2, nr, act + (size_t)t * stride, stride, n, 1, y1, 1);
            bad_alone += memcmp(y1, &y[t * YS], (size_t)nr * 4) != 0;
        }
    CHECK_MSG(bad == 0, "%s, n %d: %d results differ from the reference", name, n, bad);
    CHECK_MSG(bad_alone == 0, "%s, n %d: %d tokens alone differ from the same in a batch", name, n, bad_alone);
}

static void check_kernels(void) {
    meshlm_act_quant_fn act = meshlm_act_bf16_avx512();
    meshlm_qdot_fn qdot = meshlm_qdot_bf16_avx512();
    meshlm_qdot_rows_fn avx512 = meshlm_qrows_bf16_avx512(), amx = meshlm_qrows_bf16_amx();
    CHECK(act && qdot && avx512 && amx);
    if (!act || !qdot || !avx512 || !amx) return;
    const bool tiles = meshlm_cpu_detect()->amx_bf16;
    if (!tiles) printf("note: no AMX-BF16 here (or no leave from the OS): the tile kernel is not checked\n");
    enum { MAXN = 8200 };
    float *x = malloc(sizeof(float) * MAXN), *ref = malloc(sizeof(float) * MAXR * MAXT);
    uint16_t *w = malloc(sizeof(uint16_t) * MAXR * MAXN);
    size_t ab = meshlm_act_bf16_bytes(MAXN);
    uint8_t *a_ref = malloc(MAXT * ab), *a_fast = malloc(MAXT * ab);
    static const int lengths[] = {1, 2, 17, 31, 32, 33, 95, 200, 1000, 8200};
    int bad_act = 0, bad_dot = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li];
        size_t stride = meshlm_act_bf16_bytes(n);
        for (int t = 0; t < MAXT; t++) {
            for (int i = 0; i < n; i++) x[i] = value();
            meshlm_act_bf16_ref(x, a_ref + t * stride, n);
            memset(a_fast + t * stride, 0xa5, stride);
            act(x, a_fast + t * stride, n);
        }
        bad_act += memcmp(a_ref, a_fast, MAXT * stride) != 0;
        for (int i = 0; i < MAXR * n; i++) w[i] = weight();
        for (int r = 0; r < MAXR; r++)
            for (int t = 0; t < MAXT; t++) ref[r * MAXT + t] = meshlm_qdot_bf16_ref(w + r * n, a_ref + t * stride, n);
        /* The reference against the exact sum of the rounded products. */
        for (int r = 0; r < MAXR; r++) {
            const float got = qdot(w + r * n, a_ref, n);
            bad_dot += memcmp(&ref[r * MAXT], &got, sizeof got) != 0;
            double exact = 0, mag = 0;
            const uint16_t *a = (const uint16_t *)a_ref;
            for (int i = 0; i < n; i++) {
                double p = (double)bf(w[r * n + i]) * bf(a[i]);
                if (isfinite(p)) exact += p, mag += fabs(p);
            }
            float y = ref[r * MAXT];
            if (isfinite(y) && isfinite(exact) && mag < 1e30)
                CHECK_MSG(fabs(y - exact) <= 1e-5 * mag + 1e-30, "n %d: %g vs exact %g", n, (double)y, exact);
        }
        check_rows("AVX-512", avx512, w, a_ref, stride, n, ref);
        if (tiles) check_rows("AMX", amx, w, a_ref, stride, n, ref);
    }
    CHECK_MSG(bad_act == 0, "%d activation rows differ from the reference", bad_act);
    CHECK_MSG(bad_dot == 0, "%d dots differ from the reference", bad_dot);
    free(x), free(ref), free(w), free(a_ref), free(a_fast);
}

/* The engine's matmul on BF16 weights equals the reference dots of the rounded rows. */
static void check_matmul(void) {
    enum { N_IN = 300, N_OUT = 37, N_TOK = 6 };
    float *x = malloc(sizeof(float) * N_IN * N_TOK), y[N_OUT * N_TOK], y1[N_OUT];
    uint16_t *w = malloc(sizeof(uint16_t) * N_IN * N_OUT);
    for (int i = 0; i < N_IN * N_TOK; i++) x[i] = frand();
    for (int i = 0; i < N_IN * N_OUT; i++) w[i] = (uint16_t)(meshlm_fp32_to_bf16(frand()));
    meshlm_matrix m = {w, MESHLM_TYPE_BF16, N_IN, N_OUT, N_IN * 2, false};
    meshlm_pool *p;
    CHECK(meshlm_pool_create(2, &p) == MESHLM_OK && meshlm_matmul_reserve(p, N_TOK, N_IN) == MESHLM_OK);
    meshlm_matmul(p, &m, x, N_TOK, y);
    meshlm_matmul(p, &m, x + 3 * N_IN, 1, y1);
    CHECK(memcmp(y1, y + 3 * N_OUT, sizeof y1) == 0);
    uint8_t *a = malloc(meshlm_act_bf16_bytes(N_IN));
    int bad = 0;
    for (int t = 0; t < N_TOK; t++) {
        meshlm_act_bf16_ref(x + t * N_IN, a, N_IN);
        for (int o = 0; o < N_OUT; o++) {
            float ref = meshlm_qdot_bf16_ref(w + o * N_IN, a, N_IN);
            bad += memcmp(&ref, &y[t * N_OUT + o], sizeof ref) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d matmul outputs differ from the reference dots", bad);
    meshlm_pool_free(p);
    free(x), free(w), free(a);
}

int main(void) {
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    if (!(c->avx512f && c->avx512bw && c->avx512vl && c->avx512bf16))
        t_skip("this CPU has no AVX512-BF16: BF16 weights keep f32 activations here");
    CHECK(meshlm_act_block(MESHLM_TYPE_BF16) == MESHLM_ACT_BF16);
    check_order();
    check_kernels();
    check_matmul();
    return t_done();
}

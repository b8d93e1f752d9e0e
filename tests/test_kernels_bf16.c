/* BF16 activations for BF16 weights: the AVX512-BF16 kernels against the scalar reference,
 * bit for bit, on odd lengths (tails inside a 32-value chunk), every tile shape of the rows
 * kernel, and values from tiny to huge (denormals flushed as the instruction flushes them);
 * the reference against a double-precision dot of the rounded values, within f32 rounding;
 * and a matmul through the engine's dispatch. Skips, saying why, without AVX512-BF16. */
#include <math.h>
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

static void check_kernels(void) {
    meshlm_act_quant_fn act = meshlm_act_bf16_avx512();
    meshlm_qdot_fn qdot = meshlm_qdot_bf16_avx512();
    meshlm_qdot_rows_fn qrows = meshlm_qrows_bf16_avx512();
    CHECK(act && qdot && qrows);
    if (!act || !qdot || !qrows) return;
    enum { MAXN = 200, ROWS = 9, TOKS = 9 };
    float x[TOKS][MAXN];
    uint16_t w[ROWS][MAXN];
    size_t ab = meshlm_act_bf16_bytes(MAXN);
    uint8_t *a_ref = calloc(TOKS, ab), *a_fast = calloc(TOKS, ab);
    int lengths[] = {1, 2, 17, 31, 32, 33, 64, 95, 128, 200};
    int bad_act = 0, bad_dot = 0, bad_rows = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int n = lengths[li];
        size_t stride = meshlm_act_bf16_bytes(n);
        for (int t = 0; t < TOKS; t++) {
            for (int i = 0; i < n; i++) x[t][i] = value();
            meshlm_act_bf16_ref(x[t], a_ref + t * stride, n);
            memset(a_fast + t * stride, 0xa5, stride);
            act(x[t], a_fast + t * stride, n);
        }
        bad_act += memcmp(a_ref, a_fast, TOKS * stride) != 0;
        for (int r = 0; r < ROWS; r++)
            for (int i = 0; i < n; i++) {
                /* any pattern below 2^16 in magnitude, denormals included: sums stay finite */
                do seed = seed * 1664525u + 1013904223u;
                while (((seed >> 16) & 0x7f80u) > 0x4780u);
                w[r][i] = (uint16_t)(seed >> 16);
            }
        /* The reference against the exact sum of the rounded products. */
        for (int r = 0; r < ROWS; r++) {
            float ref = meshlm_qdot_bf16_ref(w[r], a_ref, n);
            bad_dot += memcmp(&ref, &(float){qdot(w[r], a_ref, n)}, sizeof ref) != 0;
            double exact = 0, mag = 0;
            const uint16_t *a = (const uint16_t *)a_ref;
            for (int i = 0; i < n; i++) {
                double p = (double)bf(w[r][i]) * bf(a[i]);
                if (isfinite(p)) exact += p, mag += fabs(p);
            }
            if (isfinite(ref) && isfinite(exact) && mag < 1e30)
                CHECK_MSG(fabs(ref - exact) <= 1e-5 * mag + 1e-30, "n %d: %g vs exact %g", n, (double)ref, exact);
        }
        for (int nr = 1; nr <= ROWS; nr++)
            for (int nt = 1; nt <= TOKS; nt++) {
                float y[ROWS * TOKS];
                qrows(w, sizeof w[0], nr, a_ref, stride, n, nt, y, ROWS);
                for (int r = 0; r < nr; r++)
                    for (int t = 0; t < nt; t++) {
                        float ref = meshlm_qdot_bf16_ref(w[r], a_ref + t * stride, n);
                        bad_rows += memcmp(&ref, &y[r + t * ROWS], sizeof ref) != 0;
                    }
            }
    }
    CHECK_MSG(bad_act == 0, "%d activation rows differ from the reference", bad_act);
    CHECK_MSG(bad_dot == 0, "%d dots differ from the reference", bad_dot);
    CHECK_MSG(bad_rows == 0, "%d tile results differ from the reference", bad_rows);
    free(a_ref), free(a_fast);
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
    check_kernels();
    check_matmul();
    return t_done();
}

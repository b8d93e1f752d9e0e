/* The AVX2 panel kernels (kernels_q8_panel_avx2.c) called directly, whatever the dispatch
 * picks, against meshlm_panel_dot_ref bit for bit: the types they cover (Q5_K and the
 * others refused, nothing written), and the data that would break an int16 sum: every
 * weight code at its end (Q8_0 -128 and 127, nibbles 0 and 15, Q4_K scales and mins 63,
 * Q6_K codes 0 and 63 under scales -128 and 127) against activation blocks of all -128, all
 * 127, the two alternating, or random bytes, as well as quantized rows and activations;
 * every token count to 9 and a few past the 4-token tile, ranges that split panels on
 * either half, output strides wider than the rows, sentinels around y. Run again under
 * MESHLM_CPU=avx2, where meshlm_panel_dot dispatches to these kernels: it must then pack
 * panels for the covered types (meshlm_panel_worth) and give the same bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/panel.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "t.h"
#include "t_rerun.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define PR MESHLM_PANEL_ROWS

static const int covered[] = {MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0, MESHLM_TYPE_MXFP4, MESHLM_TYPE_Q4_K,
                              MESHLM_TYPE_Q6_K};
static const int refused[] = {MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0, MESHLM_TYPE_Q5_1,
                              MESHLM_TYPE_F16, MESHLM_TYPE_F32, MESHLM_TYPE_BF16};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void) { return t_xorshift(&rng); }

static float unit(void) { return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f; }

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static bool k_quant(int type) { return type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q6_K; }

/* A finite fp16 of modest size (so sums stay finite) and either sign. */
static uint16_t some_half(void) { return (uint16_t)((rnd() & 0x8000) | (0x2c00 + rnd() % 0x1400)); }

enum { ROW_QUANTIZED, ROW_LOW, ROW_HIGH, ROW_MIXED, ROW_RANDOM, ROW_KINDS };

/* One row of n values: the quantizer's, or raw blocks whose codes are all at the low end,
 * all at the high end, mixed ends, or random, under finite scales. */
static void make_row(int type, int kind, uint8_t *row, int64_t n) {
    const size_t bb = meshlm_type_block_bytes(type), rb = meshlm_type_row_bytes(type, n);
    if (kind == ROW_QUANTIZED) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = unit() * (float)(1 + i % 7);
        meshlm_quantize_row(type, x, row, n);
        free(x);
        return;
    }
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
    for (uint8_t *b = row; b < row + rb; b += bb) {
        /* the code bytes, and where the block's scales lie */
        size_t c0 = 2, c1 = bb, d = 0;
        if (type == MESHLM_TYPE_MXFP4) c0 = 1;
        if (type == MESHLM_TYPE_Q4_K) c0 = 16;
        if (type == MESHLM_TYPE_Q6_K) c0 = 0, c1 = 192, d = 208;
        if (kind != ROW_RANDOM)
            for (size_t j = c0; j < c1; j++) {
                const uint8_t low = type == MESHLM_TYPE_Q8_0 ? 0x80 : 0x00, high = type == MESHLM_TYPE_Q8_0 ? 0x7f : 0xff;
                b[j] = kind == ROW_LOW ? low : kind == ROW_HIGH ? high : rnd() & 1 ? low : high;
            }
        if (type == MESHLM_TYPE_Q4_K && kind != ROW_RANDOM) memset(b + 4, 0xff, 12); /* scales and mins 63 */
        if (type == MESHLM_TYPE_Q6_K && kind != ROW_RANDOM)
            for (size_t j = 192; j < 208; j++) b[j] = rnd() & 1 ? 0x80 : 0x7f;
        const uint16_t h = some_half(), hm = some_half();
        if (type == MESHLM_TYPE_MXFP4)
            b[0] = (uint8_t)(rnd() % 4 == 0 ? rnd() % 3 : 110 + rnd() % 30);
        else
            b[d] = (uint8_t)h, b[d + 1] = (uint8_t)(h >> 8);
        if (type == MESHLM_TYPE_Q4_K) b[2] = (uint8_t)hm, b[3] = (uint8_t)(hm >> 8);
    }
}

enum { ACT_QUANTIZED, ACT_LOW, ACT_HIGH, ACT_ALTERNATE, ACT_RANDOM, ACT_KINDS };

/* An activation row: the quantizer's, or raw codes (all -128, all 127, alternating, random)
 * with their true sums under a power-of-two scale. */
static void make_act(int type, int kind, uint8_t *dst, int64_t n) {
    if (kind == ACT_QUANTIZED) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = unit() * powf(10.0f, 2.0f * unit());
        meshlm_quantize_act(type, x, dst, n);
        free(x);
        return;
    }
    const int per = k_quant(type) ? MESHLM_QK_K : MESHLM_QK;
    int8_t *q = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        q[i] = (int8_t)(kind == ACT_LOW ? -128 : kind == ACT_HIGH ? 127 : kind == ACT_ALTERNATE ? (i & 1 ? 127 : -128)
                                                                                             : (int)(rnd() & 0xff));
    for (int64_t k = 0; k < n / per; k++) {
        const float d = ldexpf(rnd() & 1 ? 1.0f : -1.0f, (int)(rnd() % 20) - 12);
        if (k_quant(type)) {
            meshlm_act256 *a = (meshlm_act256 *)dst + k;
            a->d = d;
            memcpy(a->q, q + k * per, (size_t)per);
            for (int g = 0; g < per / 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++) s += a->q[16 * g + j];
                a->bsum[g] = (int16_t)s;
            }
        } else {
            meshlm_act32 *a = (meshlm_act32 *)dst + k;
            int s = 0;
            memcpy(a->q, q + k * per, (size_t)per);
            for (int j = 0; j < per; j++) s += a->q[j];
            a->d = d, a->s = d * (float)s;
        }
    }
    free(q);
}

#define Y_PAD 9 /* sentinels before y and after its end */

/* One matrix of `rows` rows and `toks` activation rows: every range and token count below
 * through the AVX2 kernel (and, when it is the dispatch's choice, meshlm_panel_dot) against
 * the plain form, bit for bit, and nothing outside the outputs written. */
static void check_type(int type, int64_t n, int64_t rows, int64_t toks, bool dispatch) {
    const size_t rb = meshlm_type_row_bytes(type, n), as = meshlm_act_row_bytes(type, n) + 20;
    uint8_t *src = malloc(rb * (size_t)rows), *pack = malloc(rb * (size_t)rows), *act = malloc(as * (size_t)toks);
    for (int64_t r = 0; r < rows; r++) make_row(type, (int)((r / 3) % ROW_KINDS), src + r * rb, n);
    for (int64_t t = 0; t < toks; t++) make_act(type, (int)(t % ACT_KINDS), act + t * as, n);
    meshlm_panel_pack(type, src, rb, rows, n, pack);
    const int64_t ys = rows + 3;
    float *want = malloc(sizeof(float) * (size_t)(ys * toks));
    float *buf = malloc(sizeof(float) * (size_t)(ys * toks + 2 * Y_PAD)), *y = buf + Y_PAD;
    const int64_t ranges[][2] = {{0, rows}, {0, 8}, {8, 16}, {3, 13}, {5, rows - 2}, {9, rows}, {rows - 1, rows}, {7, 7}};
    const int64_t counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, toks};
    long bad = 0, calls = 0;
    for (int c = 0; c < COUNT(counts); c++) {
        const int64_t nt = counts[c];
        if (nt > toks) continue;
        meshlm_panel_dot_ref(type, pack, rb, 0, rows, act, as, n, nt, want, ys);
        for (int i = 0; i < COUNT(ranges); i++)
            for (int via = 0; via < (dispatch ? 2 : 1); via++, calls++) {
                const int64_t lo = ranges[i][0], hi = ranges[i][1];
                for (int64_t j = 0; j < ys * nt + 2 * Y_PAD; j++) buf[j] = NAN;
                if (via)
                    meshlm_panel_dot(type, pack, rb, lo, hi, act, as, n, nt, y, ys);
                else
                    CHECK(meshlm_panel_dot_avx2(type, pack, rb, lo, hi, act, as, n, nt, y, ys));
                for (int64_t j = -Y_PAD; j < ys * nt + Y_PAD; j++) {
                    const int64_t t = j < 0 ? -1 : j / ys, r = j < 0 ? j : j % ys;
                    const bool out = t >= 0 && t < nt && r >= lo && r < hi;
                    const bool ok = out ? bits(y[j]) == bits(want[t * ys + r]) : isnan(y[j]);
                    if (!ok && bad++ == 0)
                        CHECK_MSG(0, "%s n=%lld [%lld,%lld) n_tok=%lld%s: row %lld token %lld: %.9g vs %.9g",
                                  meshlm_type_name(type), (long long)n, (long long)lo, (long long)hi, (long long)nt,
                                  via ? " (dispatch)" : "", (long long)r, (long long)t, (double)y[j],
                                  out ? (double)want[t * ys + r] : NAN);
                }
            }
    }
    CHECK_MSG(bad == 0, "%s n=%lld: %ld differences in %ld calls", meshlm_type_name(type), (long long)n, bad, calls);
    free(src), free(pack), free(act), free(want), free(buf);
}

int main(int argc, char **argv) {
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    if (!(c->avx2 && c->fma && c->f16c)) t_skip("no AVX2, FMA and F16C");
    const char *mode = getenv("MESHLM_CPU");
    const bool avx2_only = meshlm_cpu_path_get() == MESHLM_CPU_AVX2 && !meshlm_cpu_avx512_get();
    for (int i = 0; i < COUNT(refused); i++) {
        float y = NAN;
        CHECK(!meshlm_panel_avx2_has(refused[i]));
        CHECK(!meshlm_panel_dot_avx2(refused[i], NULL, 0, 0, 16, NULL, 0, 256, 1, &y, 16) && isnan(y));
    }
    if (avx2_only) CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q5_K, 4096, 2048));
    for (int i = 0; i < COUNT(covered); i++) {
        const int type = covered[i];
        CHECK_MSG(meshlm_panel_avx2_has(type), "%s: no AVX2 panel kernel", meshlm_type_name(type));
        if (avx2_only)
            CHECK_MSG(meshlm_panel_worth(type, 4096, 2048), "MESHLM_CPU=%s: %s panels not packed", mode ? mode : "",
                      meshlm_type_name(type));
        const int64_t lens[] = {256, 512, 2048, 4096 + 256};
        for (int l = 0; l < COUNT(lens); l++)
            check_type(type, lens[l], l == 2 ? 64 : 32, l < 2 ? 17 : 6, avx2_only);
    }
    if (argc == 1) t_rerun(argv[0], "avx2");
    return t_done();
}

/* The block-order dots (Q8_0, Q4_0) in all three rows forms, AVX2, ymm VNNI and AMX tiles,
 * bit for bit against the scalar reference. The AMX form splits a call several ways (16-row
 * panels with the rest to VNNI, 16-token tiles, staging groups whose size depends on the
 * row length, chunks of 32 blocks, a VNNI fallback past 32768 values), so the shapes are
 * picked to land on each side of every one of those seams, with strides that are not the
 * row sizes and sentinels around the outputs, since a seam gets an index wrong before it
 * gets a product wrong. The codes and scales reach the ends of their ranges, where the
 * int32 sums and the scale products are largest and smallest. A token in a batch must give
 * the bits it gives alone (the decode path), and the dispatch must use the tiles exactly
 * when the tier is on: the test runs itself again under each MESHLM_CPU override. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "meshlm.h"
#include "t.h"
#include "t_rerun.h"

static const int types[] = {MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0};
#define NTYPES ((int)(sizeof types / sizeof types[0]))

#define MAX_ROWS 50
#define MAX_TOKS 70
#define Y_GAP 3  /* y_stride = n_rows + Y_GAP */
#define Y_TAIL 17 /* sentinels past the last token's outputs: more than one AMX store */

static const int64_t row_counts[] = {1, 7, 15, 16, 17, 31, 33, 48, 50};
static const int64_t tok_counts[] = {1, 2, 3, 15, 16, 17, 31, 33, 64, 70};
/* 1056 and 2144: more than one chunk of 32 blocks; 8192: 70 tokens take two staging groups
 * (64 + 6); 32768: the longest row for tiles, one token tile per group; 32800: past it. */
static const int64_t lengths[] = {32, 64, 96, 1024 + 32, 2048 + 96, 8192, 32768, 32768 + 32};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { RAW, QUANT, EXTREME, NKINDS };

static uint64_t rng = 0x6a09e667f3bcc909ULL;

static uint32_t next_u32(void) { return t_xorshift(&rng); }

static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

static void put_half(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8); }

/* Subnormals (smallest and largest), the smallest normal, the largest finite, both signs
 * and zeros. */
static const uint16_t edge_scales[] = {0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x3c00, 0x0000, 0x8000};

/* Any finite half: random bits, redrawn while the exponent is all ones (inf, NaN). */
static uint16_t finite_half(void) {
    uint16_t h;
    do h = (uint16_t)next_u32();
    while ((h & 0x7c00) == 0x7c00);
    return h;
}

/* Raw: every byte random, scales any finite half (a quarter of them an edge value).
 * Quant: the quantizer's rows. Extreme: blocks of one end code (Q8_0 -128 or 127, Q4_0
 * nibble 0 or 15) or a mix of both ends, with edge scales. */
static void make_row(int type, int kind, uint8_t *row, int64_t n) {
    const size_t bb = meshlm_type_block_bytes(type), rb = meshlm_type_row_bytes(type, n);
    const bool q8 = type == MESHLM_TYPE_Q8_0;
    if (kind == QUANT) {
        float *w = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) w[i] = uniform() * (1.0f + (float)(i % 7));
        meshlm_quantize_row(type, w, row, n);
        free(w);
        return;
    }
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)next_u32();
    for (uint8_t *p = row; p < row + rb; p += bb) {
        if (kind == RAW) {
            put_half(p, next_u32() % 4 ? finite_half() : edge_scales[next_u32() % COUNT(edge_scales)]);
            continue;
        }
        const uint8_t lo = q8 ? 0x80 : 0x00, hi = q8 ? 0x7f : 0xff;
        const int how = (int)(next_u32() % 3);
        for (size_t j = 2; j < bb; j++) {
            const uint32_t r = next_u32(); /* the mix: each code (Q4_0: each nibble) at either end */
            const uint8_t mix = q8 ? (r & 1 ? hi : lo) : (uint8_t)((r & 1 ? 0x0f : 0) | (r & 2 ? 0xf0 : 0));
            p[j] = how == 0 ? lo : how == 1 ? hi : mix;
        }
        put_half(p, edge_scales[next_u32() % COUNT(edge_scales)]);
    }
}

/* Block magnitudes from 1e-3 to 1e3, with all-zero blocks and blocks of +-magnitude only
 * (every code +-127). */
static void fill_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += MESHLM_QK) {
        const float mag = powf(10.0f, 3.0f * uniform());
        const int kind = (int)(next_u32() % 8);
        for (int j = 0; j < MESHLM_QK; j++)
            x[i + j] = kind == 0 ? 0.0f : kind == 1 ? (next_u32() & 1 ? mag : -mag) : mag * uniform();
    }
}

/* One type and row length: MAX_ROWS rows and MAX_TOKS activation rows at padded strides
 * (the rows at odd addresses), the reference for every pair, and for the AMX kernel each
 * token's result alone. */
typedef struct set {
    int type;
    int64_t n;
    uint8_t *row_buf, *rows, *act;
    size_t rs, as;
    float want[MAX_TOKS][MAX_ROWS], alone[MAX_TOKS][MAX_ROWS];
} set;

static set *make_set(int type, int64_t n, int first_kind) {
    set *s = malloc(sizeof *s);
    s->type = type, s->n = n;
    s->rs = meshlm_type_row_bytes(type, n) + 5;
    s->as = meshlm_act_row_bytes(type, n) + 40;
    s->row_buf = malloc(s->rs * MAX_ROWS + 1);
    s->rows = s->row_buf + 1;
    s->act = malloc(s->as * MAX_TOKS);
    for (int r = 0; r < MAX_ROWS; r++) make_row(type, (first_kind + r) % NKINDS, s->rows + r * s->rs, n);
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int t = 0; t < MAX_TOKS; t++) {
        fill_x(x, n);
        meshlm_quantize_act(type, x, s->act + t * s->as, n);
    }
    free(x);
    for (int t = 0; t < MAX_TOKS; t++)
        for (int r = 0; r < MAX_ROWS; r++)
            s->want[t][r] = meshlm_vec_qdot_ref(type, s->rows + r * s->rs, s->act + t * s->as, n);
    return s;
}

static void free_set(set *s) {
    free(s->row_buf), free(s->act), free(s);
}

static const uint32_t SENTINEL = 0x7fa5a5a5u; /* a signalling NaN no kernel computes */

static bool same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Mismatches of one kernel, type and length, and the first one in full. */
typedef struct tally {
    int bad;
    char first[200];
} tally;

static void note(tally *tl, const char *what, int64_t nr, int64_t nt, int64_t r, int64_t t, float got, float want) {
    if (!tl->bad++)
        snprintf(tl->first, sizeof tl->first, "%" PRId64 " rows x %" PRId64 " tokens, first at row %" PRId64
                 " token %" PRId64 ": %.9g (0x%08x) vs %s %.9g (0x%08x)",
                 nr, nt, r, t, (double)got, (unsigned)bits(got), what, (double)want, (unsigned)bits(want));
}

/* One call of fn on the first nr rows and nt tokens, y_stride nr + Y_GAP: every output the
 * reference's bits (and, when alone is set, those of its token alone), every other float
 * of y, between the columns and past the end, still the sentinel. */
static void check_shape(meshlm_qdot_rows_fn fn, set *s, int64_t nr, int64_t nt, float *y, tally *ref, tally *alone) {
    const int64_t ys = nr + Y_GAP, len = ys * nt + Y_TAIL;
    float sentinel;
    memcpy(&sentinel, &SENTINEL, sizeof sentinel);
    for (int64_t i = 0; i < len; i++) y[i] = sentinel;
    fn(s->rows, s->rs, nr, s->act, s->as, s->n, nt, y, ys);
    for (int64_t i = 0; i < len; i++) {
        const int64_t t = i / ys, r = i % ys;
        if (t < nt && r < nr) {
            if (!same(y[i], s->want[t][r])) note(ref, "reference", nr, nt, r, t, y[i], s->want[t][r]);
            if (alone && !same(y[i], s->alone[t][r])) note(alone, "alone", nr, nt, r, t, y[i], s->alone[t][r]);
        } else if (bits(y[i]) != SENTINEL) {
            note(ref, "the sentinel", nr, nt, r, t, y[i], sentinel);
        }
    }
}

static void report(const char *kernel, const char *what, const set *s, const tally *tl) {
    CHECK_MSG(tl->bad == 0, "%s %s n=%" PRId64 ": %d %s differences; %s", kernel, meshlm_type_name(s->type), s->n,
              tl->bad, what, tl->first);
}

typedef struct kernel {
    const char *name;
    meshlm_qdot_rows_fn fn;
    bool amx; /* also checked against each token alone */
} kernel;

/* Every kernel on every pair of row and token counts for this length. */
static void test_length(const kernel *ks, int nk, set *s) {
    float *y = malloc(sizeof(float) * ((MAX_ROWS + Y_GAP) * MAX_TOKS + Y_TAIL));
    for (int k = 0; k < nk; k++) {
        tally ref = {0}, alone = {0};
        if (ks[k].amx)
            for (int t = 0; t < MAX_TOKS; t++) /* one token: the decode call, which takes VNNI */
                ks[k].fn(s->rows, s->rs, MAX_ROWS, s->act + t * s->as, s->as, s->n, 1, s->alone[t], 1);
        for (int i = 0; i < COUNT(row_counts); i++)
            for (int j = 0; j < COUNT(tok_counts); j++)
                check_shape(ks[k].fn, s, row_counts[i], tok_counts[j], y, &ref, ks[k].amx ? &alone : NULL);
        report(ks[k].name, "reference", s, &ref);
        if (ks[k].amx) report(ks[k].name, "batch vs alone", s, &alone);
    }
    free(y);
}

static void test_kernels(const meshlm_cpu_caps *c) {
    for (int i = 0; i < NTYPES; i++) {
        kernel ks[3];
        int nk = 0;
        ks[nk++] = (kernel){"avx2", meshlm_qdot_rows_avx2(types[i]), false};
        if (c->avx512vnni && c->avx512vl) ks[nk++] = (kernel){"vnni", meshlm_qdot_rows_vnni(types[i]), false};
        if (meshlm_cpu_choose_amx(c, NULL)) ks[nk++] = (kernel){"amx", meshlm_qdot_rows_amx(types[i]), true};
        bool all = true;
        for (int k = 0; k < nk; k++) {
            CHECK_MSG(ks[k].fn, "%s has no %s kernel", meshlm_type_name(types[i]), ks[k].name);
            all &= ks[k].fn != NULL;
        }
        if (!all) continue;
        for (int l = 0; l < COUNT(lengths); l++) {
            set *s = make_set(types[i], lengths[l], l);
            test_length(ks, nk, s);
            free_set(s);
        }
    }
}

static void test_choose(void) {
    meshlm_cpu_caps all = {.avx2 = true, .fma = true, .f16c = true, .avx512f = true, .avx512bw = true,
                           .avx512vl = true, .avx512vnni = true, .amx_int8 = true};
    const char *why;
    CHECK(meshlm_cpu_choose_amx(&all, NULL) && meshlm_cpu_choose_amx(&all, "") && meshlm_cpu_choose_amx(&all, "amx"));
    CHECK(!meshlm_cpu_choose_amx(&all, "avx512") && !meshlm_cpu_choose_amx(&all, "avx2"));
    CHECK(!meshlm_cpu_choose_amx(&all, "scalar"));
    CHECK(meshlm_cpu_choose(&all, "amx", &why) == MESHLM_CPU_AVX2 && !why);
    meshlm_cpu_caps no_amx = all;
    no_amx.amx_int8 = false;
    CHECK(!meshlm_cpu_choose_amx(&no_amx, NULL) && !meshlm_cpu_choose_amx(&no_amx, "amx"));
    CHECK(meshlm_cpu_choose(&no_amx, "amx", &why) == MESHLM_CPU_AVX2 && why);
    /* AMX int8 without the AVX-512 tier it stands on: each missing feature alone. */
    bool *lacks[] = {&all.avx2, &all.fma, &all.f16c, &all.avx512f, &all.avx512bw, &all.avx512vl, &all.avx512vnni};
    for (int i = 0; i < COUNT(lacks); i++) {
        *lacks[i] = false;
        CHECK_MSG(!meshlm_cpu_choose_amx(&all, NULL) && !meshlm_cpu_choose_amx(&all, "amx"), "feature %d off", i);
        meshlm_cpu_choose(&all, "amx", &why);
        CHECK_MSG(why, "feature %d off: MESHLM_CPU=amx without a warning", i);
        *lacks[i] = true;
    }
}

static void dispatch_q8_0(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, int64_t n,
                          int64_t n_tok, float *y, int64_t ys) {
    meshlm_vec_qdot_rows(MESHLM_TYPE_Q8_0, rows, rs, n_rows, act, as, n, n_tok, y, ys);
}

static void dispatch_q4_0(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, int64_t n,
                          int64_t n_tok, float *y, int64_t ys) {
    meshlm_vec_qdot_rows(MESHLM_TYPE_Q4_0, rows, rs, n_rows, act, as, n, n_tok, y, ys);
}

/* The tiles serve the dispatch exactly when the tier is on (the CPU and OS allow it and
 * MESHLM_CPU is unset, empty or "amx"), and whichever kernel it serves gives the reference. */
static void test_dispatch(const meshlm_cpu_caps *c) {
    const char *mode = getenv("MESHLM_CPU");
    const bool on = meshlm_cpu_choose_amx(c, NULL) && (!mode || !*mode || !strcmp(mode, "amx"));
    const char *shown = mode ? mode : "(unset)";
    CHECK_MSG(meshlm_cpu_amx_get() == on, "MESHLM_CPU=%s: AMX tier %d", shown, !on);
    for (int i = 0; i < NTYPES; i++)
        CHECK_MSG(meshlm_vec_qdot_rows_whole(types[i]) == on, "MESHLM_CPU=%s: %s whole rows %d", shown,
                  meshlm_type_name(types[i]), !on);
    CHECK(!meshlm_vec_qdot_rows_whole(MESHLM_TYPE_Q4_1) && !meshlm_vec_qdot_rows_whole(MESHLM_TYPE_F32));
    const meshlm_qdot_rows_fn fns[NTYPES] = {dispatch_q8_0, dispatch_q4_0};
    float *y = malloc(sizeof(float) * ((MAX_ROWS + Y_GAP) * MAX_TOKS + Y_TAIL));
    for (int i = 0; i < NTYPES; i++) {
        set *s = make_set(types[i], 1024 + 32, i);
        tally ref = {0};
        check_shape(fns[i], s, 33, 17, y, &ref, NULL);
        check_shape(fns[i], s, 48, 1, y, &ref, NULL);
        report("dispatch", "reference", s, &ref);
        free_set(s);
    }
    free(y);
}

int main(int argc, char **argv) {
    test_choose();
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    printf("cpu: %s\n", meshlm_cpu_features());
    if (!(c->avx2 && c->fma && c->f16c) || !meshlm_qdot_rows_avx2(MESHLM_TYPE_Q8_0)) {
        if (t_failed) return t_done();
        t_skip("this CPU lacks AVX2, FMA or F16C: no block-order kernel can run");
    }
    if (argc == 1) {
        if (!meshlm_cpu_choose_amx(c, NULL))
            printf("note: AMX kernel not checked: %s\n",
                   c->amx_int8 ? "the CPU lacks AVX-512 F, BW, VL or VNNI, which the tiles stand on"
                               : "the CPU has no AMX int8, or the OS refused the tile state");
        if (!(c->avx512vnni && c->avx512vl))
            printf("note: VNNI kernel not checked: the CPU lacks AVX-512 VNNI or VL\n");
        test_kernels(c);
    }
    test_dispatch(c);
    if (argc == 1) {
        t_rerun(argv[0], "amx");
        t_rerun(argv[0], "avx512");
        t_rerun(argv[0], "avx2");
        t_rerun(argv[0], "scalar");
    }
    return t_done();
}

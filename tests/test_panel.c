/* The panel layout of core/panel.h (Q8_0, Q4_0, MXFP4, Q4_K, Q5_K and Q6_K weights in
 * panels of 16 rows) against the row-major reference, bit for bit. Packing must be a pure
 * relayout: the bytes land where the header says and meshlm_panel_dot_ref on the copy
 * gives meshlm_vec_qdot_ref's bits. meshlm_panel_dot (AMX for several tokens, VNNI for one
 * or without AMX or for Q5_K and Q6_K, the plain form elsewhere) must give the same bits
 * for any [lo, hi), whole or partial panels, empty included, and write nothing else: the
 * shapes straddle its seams (16 rows, 4-token VNNI tiles, 16-token AMX tiles, 64-token
 * groups, staging groups, 16-block and 4-super-block chunks), with strides that are not
 * the row sizes and sentinels around y. A token must give the same bits alone (decode,
 * VNNI) as in a batch (prefill, AMX). The test reruns itself under
 * MESHLM_CPU=avx512, avx2 and scalar (the dispatch changes, the bits must not), and a
 * tiny model of each type must give the same logits with panels off and on. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/panel.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "meshlm.h"
#include "model/options.h"
#include "model/plan.h"
#include "model/shard.h"
#include "t.h"
#include "t_rerun.h"
#include "t_synth.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define PR MESHLM_PANEL_ROWS

static const int types[] = {MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0, MESHLM_TYPE_Q4_K,
                            MESHLM_TYPE_Q5_K, MESHLM_TYPE_Q6_K, MESHLM_TYPE_MXFP4};
static const int64_t tok_counts[] = {1, 2, 3, 4, 5, 15, 16, 17, 33, 64, 65, 70, 130, 256, 272};
static const int64_t out_counts[] = {16, 32, 48, 64};

/* One row length: how many rows and tokens its matrix and activations hold, and how many
 * token counts each range meets (fewer for the long rows, which the scalar child runs
 * through the plain form). 1056 and 2144 take more than one chunk of 16 blocks, 8192 two
 * AMX staging groups for 65 or 70 tokens, 32768 (the longest row panels take) one 16-token
 * tile per group. The K-quants take the lengths of whole super-blocks, 1280 more than one
 * chunk of 4. The 1024-row sets take few tokens. On whole panels the AMX rows kernel's form runs
 * Q4_0 from 32 tokens and Q8_0 from 128 (the 2048 set's 256 and 272), past 4096 values in
 * ranges (8192 and 32768 with 33 tokens or more; the 8192 x 16 set's 130 for Q8_0), the
 * 2x2 form everything else. */
typedef struct length {
    int64_t n, rows, toks;
    int per_range;
} length;

static const length lengths[] = {
    {32, 64, 70, 4},   {64, 64, 70, 3},  {96, 64, 70, 3},    {256, 64, 70, 3},   {1056, 64, 70, 2},
    {1280, 64, 70, 2}, {2144, 64, 70, 2}, {8192, 64, 70, 1}, {32768, 32, 33, 1}, {96, 1024, 17, 0},
    {1056, 1024, 5, 0}, {1280, 1024, 5, 0}, {2048, 32, 272, 1}, {8192, 16, 130, 1},
};

/* ---- data ---- */

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint32_t rnd(void) { return t_xorshift(&rng); }

static float unit(void) { return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f; }

/* fp16 scales at the ends of the range: smallest and largest subnormals, smallest normal,
 * largest finite, one, zeros, each with both signs. */
static const uint16_t edge_halves[] = {0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400,
                                       0x7bff, 0xfbff, 0x3c00, 0xbc00, 0x0000, 0x8000};

static uint16_t any_finite_half(void) {
    for (;;) {
        uint16_t h = (uint16_t)rnd();
        if ((h & 0x7c00) != 0x7c00) return h;
    }
}

enum { ROW_RANDOM, ROW_QUANTIZED, ROW_EXTREME, ROW_KINDS };

/* A row of n values: random bytes under random finite scales (an edge value one time in
 * four); the quantizer's encoding of random floats; or blocks of end codes (Q8_0 -128 and
 * 127, Q4_0 and MXFP4 nibbles 0 and 15, Q5_K's fifth bits too: all low, all high or mixed)
 * under edge scales. */
static void make_row(int type, int kind, uint8_t *row, int64_t n) {
    const size_t bb = meshlm_type_block_bytes(type), rb = meshlm_type_row_bytes(type, n);
    const bool q8 = type == MESHLM_TYPE_Q8_0;
    if (kind == ROW_QUANTIZED) {
        float *x = malloc(sizeof(float) * (size_t)n);
        const float mag = powf(10.0f, 2.0f * unit());
        for (int64_t i = 0; i < n; i++) x[i] = mag * unit() * (float)(1 + i % 5);
        meshlm_quantize_row(type, x, row, n);
        free(x);
        return;
    }
    for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
    const bool k = type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q5_K, q6 = type == MESHLM_TYPE_Q6_K;
    if (q6) {
        /* Q6_K: d last; extreme rows take codes 0 or 63 and scales -128 or 127. */
        for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
        for (uint8_t *b = row; b < row + rb; b += bb) {
            uint16_t h = edge_halves[rnd() % COUNT(edge_halves)];
            if (kind == ROW_RANDOM && rnd() % 4) h = any_finite_half();
            if (kind == ROW_EXTREME) {
                const int how = (int)(rnd() % 3);
                for (size_t j = 0; j < 192; j++) b[j] = how == 0 ? 0x00 : how == 1 ? 0xff : (uint8_t)rnd();
                for (size_t j = 192; j < 208; j++) b[j] = rnd() & 1 ? 0x80 : 0x7f;
            }
            b[208] = (uint8_t)h, b[209] = (uint8_t)(h >> 8);
        }
        return;
    }
    for (uint8_t *b = row; b < row + rb; b += bb) {
        uint16_t h = edge_halves[rnd() % COUNT(edge_halves)], hm = edge_halves[rnd() % COUNT(edge_halves)];
        if (kind == ROW_RANDOM) {
            if (rnd() % 4) h = any_finite_half();
            if (rnd() % 4) hm = any_finite_half();
        } else {
            const int how = (int)(rnd() % 3);
            /* Q4_K, Q5_K: all scales and mins 63 half the time, else random. */
            if (k && rnd() % 2) memset(b + 4, 0xff, 12);
            for (size_t j = k ? 16 : 2; j < bb; j++) {
                uint8_t lo = q8 ? 0x80 : 0x00, hi = q8 ? 0x7f : 0xff, mix;
                const uint32_t r = rnd();
                mix = q8 ? (r & 1 ? hi : lo) : (uint8_t)((r & 1 ? 0x0f : 0x00) | (r & 2 ? 0xf0 : 0x00));
                b[j] = how == 0 ? lo : how == 1 ? hi : mix;
            }
        }
        b[0] = (uint8_t)h, b[1] = (uint8_t)(h >> 8);
        if (k) b[2] = (uint8_t)hm, b[3] = (uint8_t)(hm >> 8);
        /* MXFP4: byte 0 is the exponent; the denormal ones, or one that keeps sums finite */
        if (type == MESHLM_TYPE_MXFP4) b[0] = (uint8_t)(rnd() % 4 == 0 ? rnd() % 3 : 96 + rnd() % 48);
    }
}

/* An activation row: blocks of magnitude 1e-4 to 1e4, some all zero, some +-magnitude only
 * (codes +-127), some one large value among tiny ones (codes mostly 0), quantized; and one
 * token in eight raw blocks: any code byte (-128 included) under a power-of-two scale. */
static void make_act(int type, uint8_t *dst, int64_t n, float *x) {
    const bool raw = rnd() % 8 == 0;
    if (raw && meshlm_type_block_elems(type) == MESHLM_QK_K) {
        meshlm_act256 *a = (meshlm_act256 *)dst;
        for (int64_t k = 0; k < n / MESHLM_QK_K; k++) {
            for (int g = 0; g < MESHLM_QK_K / 16; g++) {
                int sum = 0;
                for (int j = 16 * g; j < 16 * g + 16; j++) a[k].q[j] = (int8_t)rnd(), sum += a[k].q[j];
                a[k].bsum[g] = (int16_t)sum;
            }
            a[k].d = ldexpf(rnd() & 1 ? 1.0f : -1.0f, (int)(rnd() % 50) - 36);
        }
        return;
    }
    if (raw) {
        meshlm_act32 *a = (meshlm_act32 *)dst;
        for (int64_t k = 0; k < n / MESHLM_QK; k++) {
            int sum = 0;
            for (int j = 0; j < MESHLM_QK; j++) a[k].q[j] = (int8_t)rnd(), sum += a[k].q[j];
            a[k].d = ldexpf(rnd() & 1 ? 1.0f : -1.0f, (int)(rnd() % 50) - 36);
            a[k].s = a[k].d * (float)sum;
        }
        return;
    }
    for (int64_t i = 0; i < n; i += MESHLM_QK) {
        const float mag = powf(10.0f, 4.0f * unit());
        const int kind = (int)(rnd() % 8);
        for (int j = 0; j < MESHLM_QK; j++) {
            float v = mag * unit();
            if (kind == 0) v = 0.0f;
            if (kind == 1) v = rnd() & 1 ? mag : -mag;
            if (kind == 2) v = j == (int)(i / MESHLM_QK % MESHLM_QK) ? mag : mag * 1e-4f * unit();
            x[i + j] = v;
        }
    }
    meshlm_quantize_act(type, x, dst, n);
}

/* A matrix of `rows` rows (row_stride bytes apart, at an odd address), its packed copy (at
 * an address that is 3 mod 64, with guard bytes after it), `toks` activation rows at a
 * padded stride that keeps 4-byte alignment, want[t * rows + r] = the row reference and
 * alone[t * rows + r] = meshlm_panel_dot on token t alone. */
#define PACK_GUARD 64
typedef struct set {
    int type;
    int64_t n, rows, toks;
    size_t rb, rs, as;
    uint8_t *src_buf, *src, *pack_buf, *pack, *act_buf, *act;
    float *want, *alone;
} set;

static set *make_set(int type, const length *l, int seed) {
    set *s = calloc(1, sizeof *s);
    s->type = type, s->n = l->n, s->rows = l->rows, s->toks = l->toks;
    s->rb = meshlm_type_row_bytes(type, s->n);
    s->rs = s->rb + 7;
    s->as = meshlm_act_row_bytes(type, s->n) + 36;
    s->src_buf = malloc(s->rs * (size_t)s->rows + 1);
    s->src = s->src_buf + 1;
    s->pack_buf = malloc(s->rb * (size_t)s->rows + 64 + PACK_GUARD);
    s->pack = s->pack_buf + (64 - (uintptr_t)s->pack_buf % 64) % 64 + 3;
    s->act_buf = malloc(s->as * (size_t)s->toks + 16);
    s->act = s->act_buf + 4;
    for (int64_t r = 0; r < s->rows; r++) make_row(type, (int)((r + seed) % ROW_KINDS), s->src + r * s->rs, s->n);
    float *x = malloc(sizeof(float) * (size_t)s->n);
    for (int64_t t = 0; t < s->toks; t++) make_act(type, s->act + t * s->as, s->n, x);
    free(x);
    s->want = malloc(sizeof(float) * (size_t)(s->rows * s->toks));
    s->alone = malloc(sizeof(float) * (size_t)(s->rows * s->toks));
    for (int64_t t = 0; t < s->toks; t++)
        for (int64_t r = 0; r < s->rows; r++)
            s->want[t * s->rows + r] = meshlm_vec_qdot_ref(type, s->src + r * s->rs, s->act + t * s->as, s->n);
    return s;
}

static void free_set(set *s) {
    free(s->src_buf), free(s->pack_buf), free(s->act_buf), free(s->want), free(s->alone), free(s);
}

/* ---- comparisons ---- */

static const uint32_t SENTINEL = 0x7fa1b2c3u; /* a signalling NaN no kernel computes */
#define Y_HEAD 16 /* sentinels before y */
#define Y_TAIL 19 /* and past its last token's row: more than one 16-float store */

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float sentinel(void) {
    float f;
    memcpy(&f, &SENTINEL, sizeof f);
    return f;
}

/* The kernel meshlm_panel_dot takes for this call here, for the messages. */
static const char *path_name(int type, int64_t n, int64_t n_tok) {
    if (meshlm_cpu_path_get() != MESHLM_CPU_AVX2 || !meshlm_cpu_avx512_get() || n / MESHLM_QK > 1024) return "plain";
    const bool vnni_only = type == MESHLM_TYPE_Q5_K || type == MESHLM_TYPE_Q6_K;
    return n_tok > 1 && meshlm_cpu_amx_get() && !vnni_only ? "amx" : "vnni";
}

/* Mismatches of one set and check, and the first in full. */
typedef struct tally {
    long bad;
    char first[320];
} tally;

static void note(tally *tl, const set *s, const char *shape, int64_t r, int64_t t, float got, const char *what,
                 float want) {
    if (tl->bad++) return;
    snprintf(tl->first, sizeof tl->first,
             "%s n=%" PRId64 " %s: first at row %" PRId64 " token %" PRId64 ": %.9g (0x%08x) vs %s %.9g (0x%08x)",
             meshlm_type_name(s->type), s->n, shape, r, t, (double)got, (unsigned)bits(got), what, (double)want,
             (unsigned)bits(want));
}

static void report(const char *check, const tally *tl) {
    CHECK_MSG(tl->bad == 0, "%s: %ld differences; %s", check, tl->bad, tl->first);
}

/* ---- 1: packing ---- */

/* Every byte where the header puts it: panel p's block k at (p * rb * 16 + k * 16 * bb),
 * row r's scale at 2r, its element group g at 32 + (16g + r) * 4 (MXFP4: r and
 * 16 + (16g + r) * 4); nothing past the end. */
/* Q4_K: row r's d at 2r, dmin at 32 + 2r, scale byte i at 64 + 16i + r, and the 4 code
 * bytes g of sub-block pair jp at 256 + 512jp + (16g + r) * 4. */
static bool layout_q4_k(const uint8_t *blk, const uint8_t *b, int r) {
    bool ok = !memcmp(blk + 2 * r, b, 2) && !memcmp(blk + 32 + 2 * r, b + 2, 2);
    for (int i = 0; i < 12; i++) ok &= blk[64 + 16 * i + r] == b[4 + i];
    for (int jp = 0; jp < 4; jp++)
        for (int g = 0; g < 8; g++) ok &= !memcmp(blk + 256 + 512 * jp + (16 * g + r) * 4, b + 16 + 32 * jp + 4 * g, 4);
    return ok;
}

/* Q5_K: Q4_K's d, dmin and scale bytes, qh's 4 bytes 16 + 4g at 256 + (16g + r) * 4, and
 * the 4 code bytes 48 + 32jp + 4g at 768 + 512jp + (16g + r) * 4. */
static bool layout_q5_k(const uint8_t *blk, const uint8_t *b, int r) {
    bool ok = !memcmp(blk + 2 * r, b, 2) && !memcmp(blk + 32 + 2 * r, b + 2, 2);
    for (int i = 0; i < 12; i++) ok &= blk[64 + 16 * i + r] == b[4 + i];
    for (int g = 0; g < 8; g++) ok &= !memcmp(blk + 256 + (16 * g + r) * 4, b + 16 + 4 * g, 4);
    for (int jp = 0; jp < 4; jp++)
        for (int g = 0; g < 8; g++) ok &= !memcmp(blk + 768 + 512 * jp + (16 * g + r) * 4, b + 48 + 32 * jp + 4 * g, 4);
    return ok;
}

/* Q6_K: a head (row r's d at 2r, scale g at 32 + 16g + r) and codes (ql's 4 bytes 64h + 4g
 * at 1024h + (16g + r) * 4, qh's 4 bytes 128 + 32h + 4g at 2048 + 512h + (16g + r) * 4);
 * the matrix's even super-blocks i hold their codes at 0 and head at 3072, the odd ones
 * their head at 0 and codes at 288. */
static bool layout_q6_k(const uint8_t *blk, int64_t i, const uint8_t *b, int r) {
    const uint8_t *head = blk + (i % 2 ? 0 : 3072), *codes = blk + (i % 2 ? 288 : 0);
    bool ok = !memcmp(head + 2 * r, b + 208, 2);
    for (int g = 0; g < 16; g++) ok &= head[32 + 16 * g + r] == b[192 + g];
    for (int h = 0; h < 2; h++) {
        for (int g = 0; g < 16; g++) ok &= !memcmp(codes + 1024 * h + (16 * g + r) * 4, b + 64 * h + 4 * g, 4);
        for (int g = 0; g < 8; g++) ok &= !memcmp(codes + 2048 + 512 * h + (16 * g + r) * 4, b + 128 + 32 * h + 4 * g, 4);
    }
    return ok;
}

static void check_layout(const set *s, const uint8_t *pack, int64_t rows, tally *tl) {
    const size_t bb = meshlm_type_block_bytes(s->type);
    const int64_t be = meshlm_type_block_elems(s->type);
    const int groups = s->type == MESHLM_TYPE_Q8_0 ? 8 : 4;
    char shape[64];
    snprintf(shape, sizeof shape, "pack of %" PRId64 " rows", rows);
    for (int64_t row = 0; row < rows; row++)
        for (int64_t k = 0; k < s->n / be; k++) {
            const uint8_t *b = s->src + row * s->rs + k * bb;
            const uint8_t *blk = pack + (row / PR) * PR * s->rb + (size_t)k * PR * bb;
            const int r = (int)(row % PR);
            if (be == MESHLM_QK_K) {
                const bool ok = s->type == MESHLM_TYPE_Q4_K   ? layout_q4_k(blk, b, r)
                                : s->type == MESHLM_TYPE_Q5_K ? layout_q5_k(blk, b, r)
                                                              : layout_q6_k(blk, row / PR * (s->n / be) + k, b, r);
                if (!ok) note(tl, s, shape, row, k, 0, "super-block", 0);
                continue;
            }
            /* MXFP4: an exponent byte per row where the others have an fp16 */
            const int sb = s->type == MESHLM_TYPE_MXFP4 ? 1 : 2;
            bool ok = !memcmp(blk + sb * r, b, (size_t)sb);
            for (int g = 0; g < groups; g++) ok &= !memcmp(blk + sb * PR + (PR * g + r) * 4, b + sb + 4 * g, 4);
            if (!ok) note(tl, s, shape, row, k, 0, "block", 0);
        }
    for (int i = 0; i < PACK_GUARD; i++)
        if (pack[s->rb * (size_t)rows + (size_t)i] != 0xa5) note(tl, s, shape, rows, i, 0, "guard byte", 0);
}

static void test_pack(set *s) {
    tally layout = {0}, ref = {0};
    const size_t bytes = s->rb * (size_t)s->rows;
    memset(s->pack, 0xa5, bytes + PACK_GUARD);
    meshlm_panel_pack(s->type, s->src, s->rs, s->rows, s->n, s->pack);
    check_layout(s, s->pack, s->rows, &layout);
    /* A matrix of fewer panels is a prefix: its packing is the prefix of the packing. */
    uint8_t *part = malloc(bytes + PACK_GUARD);
    for (int i = 0; i < COUNT(out_counts) && out_counts[i] < s->rows; i++) {
        memset(part, 0xa5, bytes + PACK_GUARD);
        meshlm_panel_pack(s->type, s->src, s->rs, out_counts[i], s->n, part);
        check_layout(s, part, out_counts[i], &layout);
        if (memcmp(part, s->pack, s->rb * (size_t)out_counts[i]))
            note(&layout, s, "prefix pack", out_counts[i], 0, 0, "the whole pack's prefix", 0);
    }
    free(part);
    /* The plain form on the copy: the rows' bits. */
    const int64_t ys = s->rows + 2;
    float *y = malloc(sizeof(float) * (size_t)(ys * s->toks));
    meshlm_panel_dot_ref(s->type, s->pack, s->rb, 0, s->rows, s->act, s->as, s->n, s->toks, y, ys);
    for (int64_t t = 0; t < s->toks; t++)
        for (int64_t r = 0; r < s->rows; r++)
            if (bits(y[t * ys + r]) != bits(s->want[t * s->rows + r]))
                note(&ref, s, "panel_dot_ref", r, t, y[t * ys + r], "row reference", s->want[t * s->rows + r]);
    free(y);
    char what[96];
    snprintf(what, sizeof what, "%s n=%" PRId64 " layout", meshlm_type_name(s->type), s->n);
    report(what, &layout);
    snprintf(what, sizeof what, "%s n=%" PRId64 " panel_dot_ref vs rows", meshlm_type_name(s->type), s->n);
    report(what, &ref);
}

/* ---- 2, 3: the dispatching dot ---- */

/* One call on rows [lo, hi) of an n_out-row matrix (a prefix of the set's) for n_tok
 * tokens starting at token t0, y_stride ys: every output the reference's bits and those of
 * its token alone, every other float of y (between the token rows, before y and past its
 * end) still the sentinel. */
static void check_call(const set *s, int64_t n_out, int64_t lo, int64_t hi, int64_t t0, int64_t n_tok, int64_t ys,
                       float *buf, tally *ref, tally *alone) {
    const int64_t len = Y_HEAD + ys * n_tok + Y_TAIL;
    float *y = buf + Y_HEAD;
    const float sen = sentinel();
    for (int64_t i = 0; i < len; i++) buf[i] = sen;
    meshlm_panel_dot(s->type, s->pack, s->rb, lo, hi, s->act + t0 * s->as, s->as, s->n, n_tok, y, ys);
    char shape[160];
    snprintf(shape, sizeof shape,
             "%s n_out=%" PRId64 " [%" PRId64 ",%" PRId64 ") n_tok=%" PRId64 " (from token %" PRId64
             ") y_stride=%" PRId64,
             path_name(s->type, s->n, n_tok), n_out, lo, hi, n_tok, t0, ys);
    for (int64_t i = -Y_HEAD; i < len - Y_HEAD; i++) {
        const int64_t t = i < 0 ? -1 : i / ys, r = i < 0 ? i : i % ys;
        if (t >= 0 && t < n_tok && r >= lo && r < hi) {
            const int64_t w = (t0 + t) * s->rows + r;
            if (bits(y[i]) != bits(s->want[w])) note(ref, s, shape, r, t, y[i], "row reference", s->want[w]);
            if (bits(y[i]) != bits(s->alone[w])) note(alone, s, shape, r, t, y[i], "token alone", s->alone[w]);
        } else if (bits(y[i]) != SENTINEL) {
            note(ref, s, shape, r, t, y[i], "sentinel", sen);
        }
    }
}

/* Ranges of an n_out-row matrix: whole, whole inner panels, partial panels at either end
 * or both, inside one panel, across a panel edge, single rows, empty. */
static int ranges(int64_t n_out, int64_t (*out)[2]) {
    const int64_t c[][2] = {{0, n_out},      {PR, n_out - PR}, {5, n_out},     {0, n_out - 3},
                            {7, n_out - 9},  {3, 12},          {PR - 1, PR + 1}, {0, 1},
                            {PR - 1, PR},    {n_out - 1, n_out}, {PR + 1, PR + 2}, {0, 0},
                            {9, 9},          {PR, PR},         {n_out, n_out}};
    int k = 0;
    for (int i = 0; i < COUNT(c); i++)
        if (c[i][0] >= 0 && c[i][0] <= c[i][1] && c[i][1] <= n_out && (c[i][0] < c[i][1] || i >= 11)) {
            out[k][0] = c[i][0], out[k][1] = c[i][1];
            k++;
        }
    return k;
}

static int tok_cycle; /* rotates the token counts over ranges and sets */

static void test_dot(set *s, const length *l) {
    /* Each token alone (the decode call): VNNI where the CPU has it. */
    float *one = malloc(sizeof(float) * (size_t)(Y_HEAD + s->rows + Y_TAIL));
    for (int64_t t = 0; t < s->toks; t++) {
        meshlm_panel_dot(s->type, s->pack, s->rb, 0, s->rows, s->act + t * s->as, s->as, s->n, 1, one, 1);
        memcpy(s->alone + t * s->rows, one, sizeof(float) * (size_t)s->rows);
    }
    free(one);
    tally ref = {0}, alone = {0};
    float *buf = malloc(sizeof(float) * (size_t)(Y_HEAD + (s->rows + 8) * s->toks + Y_TAIL));
    int64_t toks[COUNT(tok_counts)];
    int nt = 0;
    for (int i = 0; i < COUNT(tok_counts); i++)
        if (tok_counts[i] <= s->toks) toks[nt++] = tok_counts[i];
    int64_t rg[16][2];
    int calls = 0;
    if (s->rows > 64) {
        /* The big matrix: whole, partial ends, one panel in the middle, a row, empty, with
         * every token and a suffix of them. */
        const int64_t big[][2] = {{0, s->rows}, {5, s->rows - 3}, {496, 512}, {700, 701}, {300, 300}};
        for (int i = 0; i < COUNT(big); i++) {
            check_call(s, s->rows, big[i][0], big[i][1], 0, s->toks, s->rows + 3, buf, &ref, &alone);
            check_call(s, s->rows, big[i][0], big[i][1], s->toks - 3, 3, s->rows + 1, buf, &ref, &alone);
            calls += 2;
        }
    } else {
        for (int o = 0; o < COUNT(out_counts) && out_counts[o] <= s->rows; o++) {
            const int64_t n_out = out_counts[o];
            /* The long rows: a few matrix sizes only (every one is met at the short ones). */
            if (l->per_range == 1 && n_out != 16 && n_out != s->rows) continue;
            const int nr = ranges(n_out, rg);
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < l->per_range; j++, calls++) {
                    const int64_t n_tok = toks[tok_cycle++ % nt];
                    const int64_t t0 = (s->toks - n_tok) * (calls % 2); /* the first tokens or the last */
                    check_call(s, n_out, rg[i][0], rg[i][1], t0, n_tok, n_out + 1 + calls % 7, buf, &ref, &alone);
                }
        }
        /* Every token count on the whole matrix, so each length meets every seam. */
        for (int i = 0; i < nt; i++, calls++)
            check_call(s, s->rows, i % 2 ? 3 : 0, s->rows, s->toks - toks[i], toks[i], s->rows + 5, buf, &ref, &alone);
    }
    free(buf);
    char what[96];
    snprintf(what, sizeof what, "%s n=%" PRId64 " %" PRId64 " rows: dot vs rows (%d calls)", meshlm_type_name(s->type),
             s->n, s->rows, calls);
    report(what, &ref);
    snprintf(what, sizeof what, "%s n=%" PRId64 " %" PRId64 " rows: batch vs alone", meshlm_type_name(s->type), s->n,
             s->rows);
    report(what, &alone);
}

/* Whether type's matrices are packed here: the VNNI kernels take every panel type, and on
 * the AVX2 path without them, the AVX2 forms all but Q5_K's. */
static bool panels_here(int type) {
    if (meshlm_cpu_path_get() != MESHLM_CPU_AVX2) return false;
    return meshlm_cpu_avx512_get() || type != MESHLM_TYPE_Q5_K;
}

static void test_kernels(void) {
    for (int i = 0; i < COUNT(types); i++)
        for (int l = 0; l < COUNT(lengths); l++) {
            if (lengths[l].n % meshlm_type_block_elems(types[i])) continue;
            set *s = make_set(types[i], &lengths[l], l + i);
            test_pack(s);
            test_dot(s, &lengths[l]);
            free_set(s);
        }
}

/* ---- 4: when panels are worth it ---- */

static void test_worth(void) {
    const char *mode = getenv("MESHLM_CPU");
    const bool kernels = meshlm_cpu_path_get() == MESHLM_CPU_AVX2 && meshlm_cpu_avx512_get();
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    const bool vnni_cpu = c->avx2 && c->fma && c->f16c && c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni;
    const char *shown = mode ? mode : "(unset)";
    if (!mode || !strcmp(mode, "avx512") || !strcmp(mode, "amx"))
        CHECK_MSG(kernels == vnni_cpu, "MESHLM_CPU=%s: panel kernels %d on a CPU with%s AVX-512 VNNI", shown, kernels,
                  vnni_cpu ? "" : "out");
    if (mode && (!strcmp(mode, "avx2") || !strcmp(mode, "scalar")))
        CHECK_MSG(!kernels && !meshlm_cpu_amx_get(), "MESHLM_CPU=%s: the AVX-512 or AMX tier is on", shown);
    if (mode && !strcmp(mode, "avx512")) CHECK_MSG(!meshlm_cpu_amx_get(), "MESHLM_CPU=avx512: AMX on");
    for (int i = 0; i < COUNT(types); i++) {
        const int t = types[i];
        CHECK_MSG(meshlm_panel_avx2_has(t) == (t != MESHLM_TYPE_Q5_K), "%s: an AVX2 panel form %d",
                  meshlm_type_name(t), meshlm_panel_avx2_has(t));
        const bool want = panels_here(t);
        CHECK_MSG(meshlm_panel_worth(t, 4096, 2048) == want, "MESHLM_CPU=%s: %s 4096x2048 worth %d", shown,
                  meshlm_type_name(t), !want);
    }
    CHECK(meshlm_panel_worth(MESHLM_TYPE_Q8_0, 16, 32768) == panels_here(MESHLM_TYPE_Q8_0));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q8_0, 4096, 32768 + 32));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q4_0, 4096, 65536));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_F16, 4096, 2048));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_F32, 4096, 2048));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q4_1, 4096, 2048));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q8_0, 4096 + 8, 2048) && !meshlm_panel_worth(MESHLM_TYPE_Q4_0, 4100, 2048));
    CHECK(!meshlm_panel_worth(MESHLM_TYPE_Q8_0, 8, 2048) && !meshlm_panel_worth(MESHLM_TYPE_Q8_0, 0, 2048));
    if (!mode) printf("panels worth it here: %s (AMX %s)\n", kernels ? "yes" : "no", meshlm_cpu_amx_get() ? "on" : "off");
}

/* ---- 5: through the engine ---- */

enum { N_PREFILL = 24, N_CHUNK = 17, N_DECODE = 3 };
#define N_LOGITS (2 + 2 * N_DECODE) /* after each eval */

/* A session with `set` over the performance preset: a 24-token prefill, 3 decode steps, a
 * 17-token chunk on that context, 3 more steps; the last position's logits after each. */
static bool run(const meshlm_model *m, const char *set, float *out) {
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_ctx = 64, sp.n_threads = 2, sp.sampler.temperature = 0.0f;
    sp.opt = "performance", sp.opt_set = set;
    meshlm_session *s = NULL;
    if (meshlm_session_create(m, &sp, &s) != MESHLM_OK) {
        CHECK_MSG(0, "session %s: %s", set, meshlm_last_error());
        return false;
    }
    const int V = meshlm_model_n_vocab(m);
    int32_t toks[N_PREFILL];
    int k = 0;
    bool ok = true;
    for (int phase = 0; phase < 2 && ok; phase++) {
        const int np = phase ? N_CHUNK : N_PREFILL;
        for (int i = 0; i < np; i++) toks[i] = (int32_t)((i * 7919 + phase * 131 + 17) % V);
        ok &= meshlm_session_eval(s, toks, np) == MESHLM_OK;
        if (ok) memcpy(out + (size_t)k++ * V, meshlm_session_logits(s), sizeof(float) * (size_t)V);
        for (int d = 0; d < N_DECODE && ok; d++) {
            int32_t id = (int32_t)((d * 613 + phase * 37 + 5) % V);
            ok &= meshlm_session_eval(s, &id, 1) == MESHLM_OK;
            if (ok) memcpy(out + (size_t)k++ * V, meshlm_session_logits(s), sizeof(float) * (size_t)V);
        }
    }
    CHECK_MSG(ok, "session %s: %s", set, meshlm_last_error());
    meshlm_session_free(s);
    return ok;
}

/* Whether a 1x1 shard laid out with `set` has its matrices in panels, and every one of them. */
static bool shard_panels(const meshlm_model *m, const char *set, bool *all) {
    meshlm_opts o;
    meshlm_shard sh;
    CHECK(meshlm_opts_make("performance", set, &o) == MESHLM_OK);
    if (meshlm_plan_shard(m, 0, 1, 1, 0, 0, &o, &sh) != MESHLM_OK) {
        CHECK_MSG(0, "shard %s: %s", set, meshlm_last_error());
        *all = false;
        return false;
    }
    bool any = sh.lm_head.panels;
    *all = sh.lm_head.panels;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const meshlm_shard_layer *L = &sh.layers[il];
        const meshlm_matrix *w[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2, &L->w3};
        for (int i = 0; i < COUNT(w); i++) any |= w[i]->panels, *all &= w[i]->panels;
    }
    meshlm_shard_free(&sh);
    return any;
}

static void test_engine(void) {
    char dir[] = "/tmp/meshlm-panel-XXXXXX", path[256], label[64];
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "cannot make a temporary directory");
        return;
    }
    for (int i = 0; i < COUNT(types); i++) {
        const bool kernels = panels_here(types[i]);
        if (!t_synth_tiny(dir, "llama", types[i], path, sizeof path, label, sizeof label)) continue;
        meshlm_model *m = NULL;
        if (meshlm_model_load(path, &m) != MESHLM_OK) {
            CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
            unlink(path);
            continue;
        }
        bool all;
        const bool on = shard_panels(m, "panels=on", &all);
        CHECK_MSG(on == kernels && all == kernels, "%s: panels=on packs %s matrices, kernels %s", label,
                  all ? "all" : on ? "some" : "no", kernels ? "present" : "absent");
        CHECK_MSG(!shard_panels(m, "panels=off", &all), "%s: panels=off packs matrices", label);
        const int V = meshlm_model_n_vocab(m);
        float *off = malloc(sizeof(float) * (size_t)(V * N_LOGITS)), *pan = malloc(sizeof(float) * (size_t)(V * N_LOGITS));
        if (run(m, "panels=off", off) && run(m, "panels=on", pan))
            for (int k = 0; k < N_LOGITS; k++) {
                int first = -1;
                for (int v = 0; v < V && first < 0; v++)
                    if (bits(off[k * V + v]) != bits(pan[k * V + v])) first = v;
                CHECK_MSG(first < 0, "%s: eval %d (%s): logit %d is %.9g with panels, %.9g without", label, k,
                          k == 0 ? "prefill" : k == 1 + N_DECODE ? "chunk" : "decode", first,
                          first < 0 ? 0.0 : (double)pan[k * V + first], first < 0 ? 0.0 : (double)off[k * V + first]);
            }
        free(off), free(pan);
        meshlm_model_free(m);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- 4: the dispatch under each override ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const double t0 = now();
    const char *mode = getenv("MESHLM_CPU");
    if (argc == 1) printf("cpu: %s\n", meshlm_cpu_features());
    test_worth();
    test_kernels();
    const double t1 = now();
    test_engine();
    printf("MESHLM_CPU=%s: kernels %.2f s, engine %.2f s\n", mode ? mode : "(unset)", t1 - t0, now() - t1);
    if (argc == 1) {
        t_rerun(argv[0], "avx512");
        t_rerun(argv[0], "avx2");
        t_rerun(argv[0], "scalar");
    }
    return t_done();
}

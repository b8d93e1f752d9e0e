/* Paged attention against a plain reference (double, softmax over the whole row, on the
 * K/V values the pages hold): several sequences of lengths around the 256-position pieces,
 * GQA (groups of 1 to 12 query heads, more than one call's worth), a mesh device's slice of
 * heads, odd page sizes and head sizes, a 32k-position sequence, every KV type. One thread
 * per (row, head block) vs pieces spread over threads (flash-decoding) gives the same bits,
 * and a row's output does not depend on the other rows. The kernels of core/attn.h give
 * the same bits on the scalar and AVX2 paths and however a run of rows is cut, and the
 * whole attention does too: the test runs its cases again in a child under
 * MESHLM_CPU=scalar and compares the bytes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/attn.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/pool.h"
#include "core/quant.h"
#include "meshlm.h"
#include "model/attention.h"
#include "model/kv_paged.h"
#include "t.h"

enum { LAYER = 1, N_LAYER = 2 };

/* The attention window and score soft-cap every run and the reference use (0 = none). */
static int32_t window_w;
static float softcap_c;
/* Per global head, the sink logits every run and the reference use (NULL = none). */
static const float *sinks_s;

static const int kv_types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0};

static uint64_t rng = 88172645463325252ull;
static float rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Query heads head0 .. head0 + n_heads of a model whose KV heads serve group query heads
 * each; the pool holds KV heads kv0 .. kv0 + kv_heads (a mesh device's slice). */
typedef struct shape {
    int hd, group, head0, n_heads, kv0, kv_heads;
} shape;

static int kv_dim(const shape *sh) { return sh->kv_heads * sh->hd; }
static int q_dim(const shape *sh) { return sh->n_heads * sh->hd; }

typedef struct setup {
    shape sh;
    meshlm_kv_pool *kv;
    meshlm_kv_seq *seqs;
    int n_seq;
} setup;

/* Writes the same K/V (per sequence, len rows of kv_dim, k[i] and v[i]) into a pool of the
 * given type. */
static void fill(setup *s, const shape *sh, int type, int32_t page, const int32_t *lens, int n_seq, float **k,
                 float **v) {
    meshlm_kv_params p = {.n_layer = N_LAYER, .kv_dim = kv_dim(sh), .head_dim = sh->hd, .page_size = page,
                          .type = type};
    int64_t total = 0;
    for (int i = 0; i < n_seq; i++) total += (lens[i] + page - 1) / page;
    p.mem_bytes = meshlm_kv_page_bytes(&p) * (size_t)total;
    s->sh = *sh;
    CHECK(meshlm_kv_pool_create(&p, &s->kv) == MESHLM_OK);
    s->seqs = calloc((size_t)n_seq, sizeof *s->seqs);
    s->n_seq = n_seq;
    size_t kd = (size_t)kv_dim(sh);
    for (int i = 0; i < n_seq; i++) {
        CHECK(meshlm_kv_seq_init(&s->seqs[i], lens[i], s->kv) == MESHLM_OK);
        CHECK(meshlm_kv_reserve(s->kv, &s->seqs[i], lens[i]) == MESHLM_OK);
        for (int32_t t = 0; t < lens[i]; t++)
            meshlm_kv_write(s->kv, &s->seqs[i], LAYER, t, k[i] + (size_t)t * kd, v[i] + (size_t)t * kd);
    }
}

static void unfill(setup *s) {
    for (int i = 0; i < s->n_seq; i++) {
        meshlm_kv_release(s->kv, &s->seqs[i]);
        meshlm_kv_seq_free(&s->seqs[i]);
    }
    free(s->seqs);
    meshlm_kv_pool_free(s->kv);
}

/* The K and V values sequence i's pages hold, decoded: what the reference attends over. */
static void held(const setup *s, int i, float *k, float *v) {
    size_t kd = (size_t)kv_dim(&s->sh);
    for (int32_t t = 0; t < s->seqs[i].len; t++)
        CHECK(meshlm_kv_read(s->kv, &s->seqs[i], LAYER, t, k + (size_t)t * kd, v + (size_t)t * kd) == MESHLM_OK);
}

static void run(const setup *s, int threads, const meshlm_attn_row *rows, int n_rows, const float *q, float *out,
                int32_t n_ctx) {
    const shape *sh = &s->sh;
    meshlm_pool *pool = NULL;
    CHECK(meshlm_pool_create(threads, &pool) == MESHLM_OK);
    float *scratch = malloc(meshlm_attention_scratch_floats(threads, n_ctx, sh->hd) * sizeof(float) + sizeof(float));
    meshlm_attention_args a = {.kv = s->kv, .layer = LAYER, .rows = rows, .n_rows = n_rows, .q = q, .out = out,
                               .n_heads = sh->n_heads, .head0 = sh->head0, .group = sh->group, .kv0 = sh->kv0,
                               .head_dim = sh->hd, .q_dim = (size_t)q_dim(sh), .scratch = scratch,
                               .scale = 1.0f / sqrtf((float)sh->hd), .softcap = softcap_c, .window = window_w,
                               .sinks = sinks_s};
    meshlm_attention(pool, &a);
    free(scratch);
    meshlm_pool_free(pool);
}

/* Largest |out - softmax(q_h . K / sqrt(hd)) V| over positions 0..pos (the last window_w
 * of them with a window; scores soft-capped with softcap_c), in double. */
static double ref_error(const shape *sh, const float *q, const float *k, const float *v, int32_t pos,
                        const float *got) {
    double worst = 0, *sc = malloc(sizeof(double) * (size_t)(pos + 1));
    size_t kd = (size_t)kv_dim(sh);
    for (int h = 0; h < sh->n_heads; h++) {
        int kvh = (sh->head0 + h) / sh->group - sh->kv0, hd = sh->hd;
        double mx = -INFINITY, sum = 0;
        int32_t first = window_w > 0 && pos >= window_w ? pos - window_w + 1 : 0;
        for (int32_t s = first; s <= pos; s++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)q[h * hd + i] * k[(size_t)s * kd + (size_t)(kvh * hd + i)];
            sc[s] = d / sqrt((double)hd);
            if (softcap_c > 0) sc[s] = softcap_c * tanh(sc[s] / softcap_c);
            if (sc[s] > mx) mx = sc[s];
        }
        double sink = sinks_s ? sinks_s[sh->head0 + h] : -INFINITY;
        if (sink > mx) mx = sink;
        if (sinks_s) sum = exp(sink - mx);
        for (int32_t s = first; s <= pos; s++) sum += (sc[s] = exp(sc[s] - mx));
        for (int i = 0; i < hd; i++) {
            double a = 0;
            for (int32_t s = first; s <= pos; s++) a += sc[s] / sum * v[(size_t)s * kd + (size_t)(kvh * hd + i)];
            double e = fabs(a - got[h * hd + i]);
            if (e > worst) worst = e;
        }
    }
    free(sc);
    return worst;
}

/* Sequences of the given lengths with random K (times kscale) and V. */
static void make_kv(const shape *sh, const int32_t *lens, int n_seq, float kscale, float **k, float **v) {
    for (int i = 0; i < n_seq; i++) {
        size_t n = (size_t)lens[i] * (size_t)kv_dim(sh);
        k[i] = malloc(n * sizeof(float)), v[i] = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) k[i][j] = kscale * rnd(), v[i][j] = rnd();
    }
}

/* Every row of every sequence of one pool: against the reference over the held values,
 * with 1 thread and 3 (bitwise), and each row alone with 3 threads (split mode, bitwise).
 * Returns the worst reference error. */
static double check_rows(const setup *s, const meshlm_attn_row *rows, int n_rows, const int *seq_of, const float *q,
                         float *out, int32_t n_ctx, const char *what) {
    const shape *sh = &s->sh;
    size_t qd = (size_t)q_dim(sh), kd = (size_t)kv_dim(sh);
    float *out3 = malloc(sizeof(float) * qd * (size_t)n_rows), *one = malloc(sizeof(float) * qd);
    run(s, 1, rows, n_rows, q, out, n_ctx);
    run(s, 3, rows, n_rows, q, out3, n_ctx);
    CHECK_MSG(memcmp(out, out3, sizeof(float) * qd * (size_t)n_rows) == 0, "%s: 1 vs 3 threads differ", what);
    double worst = 0;
    for (int i = 0; i < s->n_seq; i++) {
        float *k = malloc(sizeof(float) * (size_t)s->seqs[i].len * kd);
        float *v = malloc(sizeof(float) * (size_t)s->seqs[i].len * kd);
        held(s, i, k, v);
        for (int r = 0; r < n_rows; r++) {
            if (seq_of[r] != i) continue;
            double e = ref_error(sh, q + (size_t)r * qd, k, v, rows[r].pos, out + (size_t)r * qd);
            if (e > worst) worst = e;
            run(s, 3, &rows[r], 1, q + (size_t)r * qd, one, n_ctx);
            CHECK_MSG(memcmp(one, out + (size_t)r * qd, sizeof(float) * qd) == 0, "%s: row %d alone (split) differs",
                      what, r);
        }
        free(k), free(v);
    }
    CHECK_MSG(worst < 1e-5, "%s vs reference: %g", what, worst);
    free(out3), free(one);
    return worst;
}

/* Sequences around the piece size, each row at its last position and one earlier, in every
 * KV type; the lower-precision types also stay within stated tolerances of F32. */
static void check_many(void) {
    const shape sh = {.hd = 32, .group = 2, .head0 = 0, .n_heads = 4, .kv0 = 0, .kv_heads = 2};
    int32_t lens[] = {1, 7, 255, 256, 257, 600, 1000};
    enum { N_SEQ = sizeof lens / sizeof lens[0] };
    float *k[N_SEQ], *v[N_SEQ];
    make_kv(&sh, lens, N_SEQ, 2.0f, k, v);
    meshlm_attn_row rows[2 * N_SEQ];
    int seq_of[2 * N_SEQ], n_rows = 2 * N_SEQ;
    size_t qd = (size_t)q_dim(&sh);
    float *q = malloc(sizeof(float) * qd * (size_t)n_rows), *f32 = malloc(sizeof(float) * qd * (size_t)n_rows);
    float *out = malloc(sizeof(float) * qd * (size_t)n_rows);
    for (size_t j = 0; j < qd * (size_t)n_rows; j++) q[j] = rnd();
    const double tol[] = {0, 2e-3, 2e-2, 2e-2};
    for (size_t t = 0; t < sizeof kv_types / sizeof kv_types[0]; t++) {
        setup s;
        fill(&s, &sh, kv_types[t], t == 0 ? 13 : 16, lens, N_SEQ, k, v);
        for (int i = 0; i < N_SEQ; i++) {
            seq_of[2 * i] = seq_of[2 * i + 1] = i;
            rows[2 * i] = (meshlm_attn_row){&s.seqs[i], lens[i] - 1};
            rows[2 * i + 1] = (meshlm_attn_row){&s.seqs[i], lens[i] / 2};
        }
        const char *name = meshlm_type_name(kv_types[t]);
        double e = check_rows(&s, rows, n_rows, seq_of, q, t == 0 ? f32 : out, 1000, name);
        fprintf(stderr, "%s pages vs double reference on the held values: max abs error %.3g\n", name, e);
        if (t > 0) {
            double w = 0;
            for (size_t j = 0; j < qd * (size_t)n_rows; j++)
                if (fabs(out[j] - f32[j]) > w) w = fabs(out[j] - f32[j]);
            CHECK_MSG(w <= tol[t], "%s pages: %g from f32 (tolerance %g)", name, w, tol[t]);
            fprintf(stderr, "%s pages vs f32: max abs difference %.3g (tolerance %g)\n", name, w, tol[t]);
        }
        unfill(&s);
    }
    for (int i = 0; i < N_SEQ; i++) free(k[i]), free(v[i]);
    free(q), free(f32), free(out);
}

/* One pass of check_window. */
static void check_window_sinks(int32_t window, float softcap, const float *sinks, int head0) {
    const shape sh = {.hd = 32, .group = 2, .head0 = head0, .n_heads = 4, .kv0 = head0 / 2, .kv_heads = 2};
    int32_t lens[] = {1, 99, 100, 101, 300, 600, 1000};
    enum { N_SEQ = sizeof lens / sizeof lens[0] };
    float *k[N_SEQ], *v[N_SEQ];
    make_kv(&sh, lens, N_SEQ, 8.0f, k, v);
    meshlm_attn_row rows[2 * N_SEQ];
    int seq_of[2 * N_SEQ], n_rows = 2 * N_SEQ;
    size_t qd = (size_t)q_dim(&sh);
    float *q = malloc(sizeof(float) * qd * (size_t)n_rows), *out = malloc(sizeof(float) * qd * (size_t)n_rows);
    for (size_t j = 0; j < qd * (size_t)n_rows; j++) q[j] = rnd();
    window_w = window;
    softcap_c = softcap;
    sinks_s = sinks;
    setup s;
    fill(&s, &sh, MESHLM_TYPE_F32, 16, lens, N_SEQ, k, v);
    for (int i = 0; i < N_SEQ; i++) {
        seq_of[2 * i] = seq_of[2 * i + 1] = i;
        rows[2 * i] = (meshlm_attn_row){&s.seqs[i], lens[i] - 1};
        rows[2 * i + 1] = (meshlm_attn_row){&s.seqs[i], lens[i] / 2};
    }
    char what[96];
    snprintf(what, sizeof what, "window %d, soft-cap %g, %s", (int)window, (double)softcap, sinks ? "sinks" : "no sinks");
    double e = check_rows(&s, rows, n_rows, seq_of, q, out, 1000, what);
    fprintf(stderr, "%s vs double reference: max abs error %.3g\n", what, e);
    unfill(&s);
    window_w = 0;
    softcap_c = 0;
    sinks_s = NULL;
    for (int i = 0; i < N_SEQ; i++) free(k[i]), free(v[i]);
    free(q), free(out);
}

/* A sliding window (inside one piece, across a piece boundary, wider than the row) and a
 * score soft-cap tight enough to matter, on F32 pages; then no window and attention sinks,
 * one of them large enough to take most of the weight, for heads that start past 0. */
static void check_window(void) {
    check_window_sinks(100, 2.0f, NULL, 0);
    const float sinks[6] = {9.0f, 9.0f, -1.5f, 0.5f, 6.0f, 2.0f};
    check_window_sinks(0, 0, sinks, 2);
    check_window_sinks(100, 0, sinks, 2);
}

/* Head layouts beyond the plain one: a group larger than one call takes (8 + 4), a group of
 * 3 (no row tiles), a head size that is not a multiple of 8 (the reference on every path),
 * one that is an odd number of 8s, and a mesh device's slice of heads whose first group
 * is cut. */
static void check_shapes(void) {
    const shape shapes[] = {
        {.hd = 64, .group = 12, .head0 = 0, .n_heads = 12, .kv0 = 0, .kv_heads = 1},
        {.hd = 40, .group = 3, .head0 = 0, .n_heads = 6, .kv0 = 0, .kv_heads = 2},
        {.hd = 12, .group = 2, .head0 = 0, .n_heads = 4, .kv0 = 0, .kv_heads = 2},
        {.hd = 32, .group = 4, .head0 = 6, .n_heads = 6, .kv0 = 1, .kv_heads = 2},
    };
    int32_t lens[] = {300, 513};
    enum { N_SEQ = 2 };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const shape *sh = &shapes[c];
        float *k[N_SEQ], *v[N_SEQ];
        make_kv(sh, lens, N_SEQ, 2.0f, k, v);
        size_t qd = (size_t)q_dim(sh);
        float q[3 * 12 * 64], out[3 * 12 * 64];
        for (size_t j = 0; j < 3 * qd; j++) q[j] = rnd();
        for (size_t t = 0; t < sizeof kv_types / sizeof kv_types[0]; t++) {
            if (sh->hd % meshlm_type_block_elems(kv_types[t])) continue;
            setup s;
            fill(&s, sh, kv_types[t], 7, lens, N_SEQ, k, v);
            meshlm_attn_row rows[3] = {{&s.seqs[0], 299}, {&s.seqs[1], 512}, {&s.seqs[1], 256}};
            int seq_of[3] = {0, 1, 1};
            char what[64];
            snprintf(what, sizeof what, "hd %d group %d heads %d+%d %s", sh->hd, sh->group, sh->head0, sh->n_heads,
                     meshlm_type_name(kv_types[t]));
            double e = check_rows(&s, rows, 3, seq_of, q, out, 513, what);
            fprintf(stderr, "%s: max abs error %.3g\n", what, e);
            unfill(&s);
        }
        for (int i = 0; i < N_SEQ; i++) free(k[i]), free(v[i]);
    }
}

/* A 32k-position sequence: rows near the end and in the middle, vs the reference, and the
 * split and whole modes bitwise equal; F32 and F16 pages. */
static void check_32k(void) {
    const shape sh = {.hd = 32, .group = 2, .head0 = 0, .n_heads = 4, .kv0 = 0, .kv_heads = 2};
    int32_t len = 32768;
    size_t n = (size_t)len * (size_t)kv_dim(&sh), qd = (size_t)q_dim(&sh);
    float *k, *v;
    make_kv(&sh, &len, 1, 3.0f, &k, &v);
    float *hk = malloc(n * sizeof(float)), *hv = malloc(n * sizeof(float));
    for (int type = MESHLM_TYPE_F32; type >= 0; type = type == MESHLM_TYPE_F32 ? MESHLM_TYPE_F16 : -1) {
        setup s;
        fill(&s, &sh, type, 64, &len, 1, &k, &v);
        held(&s, 0, hk, hv);
        meshlm_attn_row rows[2] = {{&s.seqs[0], len - 1}, {&s.seqs[0], 20000}};
        float q[2 * 4 * 32], whole[2 * 4 * 32], split[2 * 4 * 32];
        for (size_t j = 0; j < 2 * qd; j++) q[j] = rnd();
        run(&s, 1, rows, 2, q, whole, len);
        run(&s, 4, rows, 2, q, split, len);
        CHECK_MSG(memcmp(whole, split, sizeof whole) == 0, "32k %s: split and whole differ", meshlm_type_name(type));
        for (int r = 0; r < 2; r++) {
            double e = ref_error(&sh, q + r * qd, hk, hv, rows[r].pos, whole + r * qd);
            CHECK_MSG(e < 1e-5, "32k row at %d: %g from the reference", rows[r].pos, e);
            fprintf(stderr, "32k context, %s, row at %d: max abs error %.3g\n", meshlm_type_name(type), rows[r].pos, e);
        }
        unfill(&s);
    }
    free(k), free(v), free(hk), free(hv);
}

/* meshlm_attn_exp against exp in double over [-87, 0]: within 4 ulp of the true value. */
static void check_exp(void) {
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f * (float)i / 200000.0f;
        double want = exp((double)x), got = meshlm_attn_exp(x);
        double ulps = fabs(got - want) / (ldexp(1.0, ilogb(want) - 23));
        if (ulps > worst) worst = ulps;
    }
    CHECK_MSG(worst <= 4.0, "meshlm_attn_exp: %g ulp from exp", worst);
    CHECK(meshlm_attn_exp(0.0f) == 1.0f && meshlm_attn_exp(-1000.0f) == 0.0f && meshlm_attn_exp(-INFINITY) == 0.0f);
    fprintf(stderr, "meshlm_attn_exp: within %.2f ulp of exp on [-87, 0]\n", worst);
}

/* The scalar and AVX2 kernels on the same encoded rows, bitwise, for every type, head
 * sizes around the vector widths, 1 to 8 query heads and runs around the row tiles; a run
 * cut in two gives the same bits as whole. */
static void check_kernels(void) {
    enum { N = 37, MAXD = 128 };
    const int hds[] = {8, 24, 32, 40, 64, 128};
    const meshlm_cpu_caps *caps = meshlm_cpu_detect();
    bool avx2 = caps->avx2 && caps->fma && caps->f16c;
    static float vals[N * MAXD], q[8 * MAXD];
    static uint8_t rows[N * MAXD * 4];
    for (size_t t = 0; t < sizeof kv_types / sizeof kv_types[0]; t++) {
        int type = kv_types[t];
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
            int hd = hds[hi];
            if (hd % meshlm_type_block_elems(type)) continue;
            size_t rb = meshlm_type_row_bytes(type, hd);
            for (int i = 0; i < N * hd; i++) vals[i] = 3.0f * rnd();
            for (int i = 0; i < N; i++) meshlm_quantize_row(type, vals + i * hd, rows + (size_t)i * rb, hd);
            for (int i = 0; i < 8 * hd; i++) q[i] = rnd();
            const meshlm_attn_kernels *ref = meshlm_attn_kernels_ref(type), *fast = meshlm_attn_kernels_avx2(type, hd);
            CHECK(ref != NULL && (fast != NULL || !avx2));
            for (int nq = 1; nq <= 8; nq++) {
                float s_ref[8 * N], s_fast[8 * N], s_cut[8 * N];
                float acc_ref[8 * MAXD], acc_fast[8 * MAXD], acc_cut[8 * MAXD];
                for (int n = 1; n <= N; n += n < 10 ? 1 : 9) {
                    const meshlm_attn_kernels *ks[2] = {ref, fast};
                    for (int p = 0; p < 2 && ks[p]; p++) {
                        const meshlm_attn_kernels *kk = ks[p];
                        float *s = p ? s_fast : s_ref, *acc = p ? acc_fast : acc_ref, mx[8], sum[8];
                        kk->scores(rows, rb, n, q, nq, hd, 0.125f, s, N);
                        for (int j = 0; j < nq; j++) kk->softmax(s + j * N, n, &mx[j], &sum[j]);
                        for (int j = 0; j < nq * hd; j++) acc[j] = 0.5f;
                        kk->wsum(rows, rb, n, s, N, nq, hd, acc, (size_t)hd);
                        /* The same run in two calls, cut after a rows. */
                        int a = n / 3;
                        kk->scores(rows, rb, a, q, nq, hd, 0.125f, s_cut, N);
                        kk->scores(rows + (size_t)a * rb, rb, n - a, q, nq, hd, 0.125f, s_cut + a, N);
                        for (int j = 0; j < nq; j++) kk->softmax(s_cut + j * N, n, &mx[j], &sum[j]);
                        for (int j = 0; j < nq * hd; j++) acc_cut[j] = 0.5f;
                        kk->wsum(rows, rb, a, s_cut, N, nq, hd, acc_cut, (size_t)hd);
                        kk->wsum(rows + (size_t)a * rb, rb, n - a, s_cut + a, N, nq, hd, acc_cut, (size_t)hd);
                        bool same = true;
                        for (int j = 0; j < nq; j++) same &= !memcmp(s + j * N, s_cut + j * N, sizeof(float) * n);
                        CHECK_MSG(same && !memcmp(acc, acc_cut, sizeof(float) * nq * hd),
                                  "%s hd %d nq %d n %d path %d: cut run differs", meshlm_type_name(type), hd, nq, n, p);
                    }
                    if (!fast) continue;
                    bool same = true;
                    for (int j = 0; j < nq; j++) same &= !memcmp(s_ref + j * N, s_fast + j * N, sizeof(float) * n);
                    CHECK_MSG(same && !memcmp(acc_ref, acc_fast, sizeof(float) * nq * hd),
                              "%s hd %d nq %d n %d: scalar and AVX2 kernels differ", meshlm_type_name(type), hd, nq, n);
                }
            }
        }
    }
    fprintf(stderr, "attention kernels: scalar and AVX2 %s\n", avx2 ? "bitwise equal" : "(no AVX2 here: scalar only)");
}

/* Fixed cases whose outputs are written to f, for the scalar-path child to repeat. */
static void dump_cases(FILE *f) {
    rng = 0x9e3779b97f4a7c15ull;
    const shape sh = {.hd = 64, .group = 4, .head0 = 0, .n_heads = 8, .kv0 = 0, .kv_heads = 2};
    int32_t lens[] = {1, 255, 700};
    enum { N_SEQ = 3 };
    float *k[N_SEQ], *v[N_SEQ];
    make_kv(&sh, lens, N_SEQ, 2.0f, k, v);
    size_t qd = (size_t)q_dim(&sh);
    float q[N_SEQ * 8 * 64], out[N_SEQ * 8 * 64];
    for (size_t j = 0; j < N_SEQ * qd; j++) q[j] = rnd();
    for (size_t t = 0; t < sizeof kv_types / sizeof kv_types[0]; t++) {
        setup s;
        fill(&s, &sh, kv_types[t], 16, lens, N_SEQ, k, v);
        meshlm_attn_row rows[N_SEQ];
        for (int i = 0; i < N_SEQ; i++) rows[i] = (meshlm_attn_row){&s.seqs[i], lens[i] - 1};
        for (int threads = 1; threads <= 2; threads++) {
            run(&s, threads, rows, N_SEQ, q, out, 700);
            fwrite(out, sizeof(float), N_SEQ * qd, f);
            run(&s, threads, &rows[2], 1, q + 2 * qd, out, 700);
            fwrite(out, sizeof(float), qd, f);
        }
        unfill(&s);
    }
    /* a window and a soft-cap, whose scores go through meshlm_softcap's lanes */
    setup s;
    fill(&s, &sh, MESHLM_TYPE_F32, 16, lens, N_SEQ, k, v);
    meshlm_attn_row rows[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) rows[i] = (meshlm_attn_row){&s.seqs[i], lens[i] - 1};
    window_w = 300, softcap_c = 1.5f;
    for (int threads = 1; threads <= 2; threads++) {
        run(&s, threads, rows, N_SEQ, q, out, 700);
        fwrite(out, sizeof(float), N_SEQ * qd, f);
    }
    window_w = 0, softcap_c = 0;
    unfill(&s);
    for (int i = 0; i < N_SEQ; i++) free(k[i]), free(v[i]);
}

/* dump_cases here and in a child on the scalar path (the path is chosen once a process). */
static void check_paths(const char *self) {
    if (meshlm_cpu_path_get() != MESHLM_CPU_AVX2) {
        fprintf(stderr, "scalar vs AVX2 attention: not on the AVX2 path here, skipped\n");
        return;
    }
    char *mine = NULL;
    size_t n_mine = 0;
    FILE *f = open_memstream(&mine, &n_mine);
    CHECK(f != NULL);
    dump_cases(f);
    fclose(f);
    int fd[2];
    CHECK(pipe(fd) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        setenv("MESHLM_CPU", "scalar", 1);
        execl(self, self, "--dump", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char *theirs = malloc(n_mine + 1);
    size_t got = 0;
    ssize_t r;
    while (got <= n_mine && (r = read(fd[0], theirs + got, n_mine + 1 - got)) > 0) got += (size_t)r;
    close(fd[0]);
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "MESHLM_CPU=scalar child failed (status %d)", st);
    CHECK_MSG(got == n_mine && !memcmp(mine, theirs, n_mine), "scalar and AVX2 attention differ (%zu of %zu bytes)",
              got, n_mine);
    fprintf(stderr, "scalar vs AVX2 attention, every KV type: %zu bytes of outputs compared\n", n_mine);
    free(mine), free(theirs);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--dump")) {
        dump_cases(stdout);
        return fflush(stdout) ? 1 : 0;
    }
    check_exp();
    check_kernels();
    check_many();
    check_window();
    check_shapes();
    check_32k();
    check_paths(argv[0]);
    return t_done();
}

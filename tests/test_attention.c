/* Paged attention against a plain reference (double, softmax over the whole row): several
 * sequences of lengths around the 256-position pieces, GQA, odd page sizes, a 32k-position
 * sequence; one thread per (row, head) vs pieces spread over threads (flash-decoding) gives
 * the same bits; a row's output does not depend on the other rows; F16, BF16 and Q8_0
 * pages stay within stated tolerances of F32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/pool.h"
#include "meshlm.h"
#include "model/attention.h"
#include "model/kv_paged.h"
#include "t.h"

enum { HD = 32, N_KV = 2, N_HEAD = 4, LAYER = 1, N_LAYER = 2 };

static uint64_t rng = 88172645463325252ull;
static float rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct setup {
    meshlm_kv_pool *kv;
    meshlm_kv_seq *seqs;
    int n_seq;
} setup;

/* Writes the same K/V (kv_src: per sequence, len rows of N_KV * HD, K then V) into a pool
 * of the given type. */
static void fill(setup *s, int type, int32_t page, const int32_t *lens, int n_seq, float **k, float **v) {
    meshlm_kv_params p = {.n_layer = N_LAYER, .kv_dim = N_KV * HD, .head_dim = HD, .page_size = page, .type = type};
    int64_t total = 0;
    for (int i = 0; i < n_seq; i++) total += (lens[i] + page - 1) / page;
    p.mem_bytes = meshlm_kv_page_bytes(&p) * (size_t)total;
    CHECK(meshlm_kv_pool_create(&p, &s->kv) == MESHLM_OK);
    s->seqs = calloc((size_t)n_seq, sizeof *s->seqs);
    s->n_seq = n_seq;
    for (int i = 0; i < n_seq; i++) {
        CHECK(meshlm_kv_seq_init(&s->seqs[i], lens[i], s->kv) == MESHLM_OK);
        CHECK(meshlm_kv_reserve(s->kv, &s->seqs[i], lens[i]) == MESHLM_OK);
        for (int32_t t = 0; t < lens[i]; t++)
            meshlm_kv_write(s->kv, &s->seqs[i], LAYER, t, k[i] + (size_t)t * N_KV * HD, v[i] + (size_t)t * N_KV * HD);
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

static void run(const setup *s, int threads, const meshlm_attn_row *rows, int n_rows, const float *q, float *out,
                int32_t n_ctx) {
    meshlm_pool *pool = NULL;
    CHECK(meshlm_pool_create(threads, &pool) == MESHLM_OK);
    float *scratch = malloc(meshlm_attention_scratch_floats(threads, n_ctx, HD) * sizeof(float) + sizeof(float));
    meshlm_attention_args a = {.kv = s->kv, .layer = LAYER, .rows = rows, .n_rows = n_rows, .q = q, .out = out,
                               .n_heads = N_HEAD, .head0 = 0, .group = N_HEAD / N_KV, .kv0 = 0, .head_dim = HD,
                               .q_dim = N_HEAD * HD, .scratch = scratch};
    meshlm_attention(pool, &a);
    free(scratch);
    meshlm_pool_free(pool);
}

/* out[h] = softmax(q_h . K / sqrt(HD)) V over positions 0..pos, in double. */
static double ref_error(const float *q, const float *k, const float *v, int32_t pos, const float *got) {
    double worst = 0, *sc = malloc(sizeof(double) * (size_t)(pos + 1));
    for (int h = 0; h < N_HEAD; h++) {
        int kvh = h / (N_HEAD / N_KV);
        double mx = -INFINITY, sum = 0;
        for (int32_t s = 0; s <= pos; s++) {
            double d = 0;
            for (int i = 0; i < HD; i++) d += (double)q[h * HD + i] * k[(size_t)s * N_KV * HD + kvh * HD + i];
            sc[s] = d / sqrt((double)HD);
            if (sc[s] > mx) mx = sc[s];
        }
        for (int32_t s = 0; s <= pos; s++) sum += (sc[s] = exp(sc[s] - mx));
        for (int i = 0; i < HD; i++) {
            double a = 0;
            for (int32_t s = 0; s <= pos; s++) a += sc[s] / sum * v[(size_t)s * N_KV * HD + kvh * HD + i];
            double e = fabs(a - got[h * HD + i]);
            if (e > worst) worst = e;
        }
    }
    free(sc);
    return worst;
}

static void check_many(void) {
    int32_t lens[] = {1, 7, 255, 256, 257, 600, 1000};
    enum { N_SEQ = sizeof lens / sizeof lens[0] };
    float *k[N_SEQ], *v[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) {
        size_t n = (size_t)lens[i] * N_KV * HD;
        k[i] = malloc(n * sizeof(float)), v[i] = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) k[i][j] = 2.0f * rnd(), v[i][j] = rnd();
    }
    /* Rows: each sequence's last position and one earlier. */
    meshlm_attn_row rows[2 * N_SEQ];
    int n_rows = 0;
    setup f32;
    fill(&f32, MESHLM_TYPE_F32, 13, lens, N_SEQ, k, v);
    for (int i = 0; i < N_SEQ; i++) {
        rows[n_rows++] = (meshlm_attn_row){&f32.seqs[i], lens[i] - 1};
        rows[n_rows++] = (meshlm_attn_row){&f32.seqs[i], lens[i] / 2};
    }
    size_t qd = N_HEAD * HD;
    float *q = malloc(sizeof(float) * qd * (size_t)n_rows), *out1 = malloc(sizeof(float) * qd * (size_t)n_rows);
    float *out3 = malloc(sizeof(float) * qd * (size_t)n_rows), *one = malloc(sizeof(float) * qd);
    for (size_t j = 0; j < qd * (size_t)n_rows; j++) q[j] = rnd();
    run(&f32, 1, rows, n_rows, q, out1, 1000);
    run(&f32, 3, rows, n_rows, q, out3, 1000);
    CHECK_MSG(memcmp(out1, out3, sizeof(float) * qd * (size_t)n_rows) == 0, "1 vs 3 threads differ");
    double worst = 0;
    for (int r = 0; r < n_rows; r++) {
        int s = r / 2;
        double e = ref_error(q + (size_t)r * qd, k[s], v[s], rows[r].pos, out1 + (size_t)r * qd);
        if (e > worst) worst = e;
        /* Alone, with 3 threads: few pairs, so the pieces are spread (split mode). */
        run(&f32, 3, &rows[r], 1, q + (size_t)r * qd, one, 1000);
        CHECK_MSG(memcmp(one, out1 + (size_t)r * qd, sizeof(float) * qd) == 0, "row %d alone (split) differs", r);
    }
    CHECK_MSG(worst < 1e-5, "f32 vs reference: %g", worst);
    fprintf(stderr, "f32 paged attention vs double reference: max abs error %.3g\n", worst);

    /* Other page types: the same rows within a stated tolerance of F32. */
    struct { int type; double tol; } types[] = {
        {MESHLM_TYPE_F16, 2e-3}, {MESHLM_TYPE_BF16, 2e-2}, {MESHLM_TYPE_Q8_0, 2e-2}};
    for (size_t t = 0; t < 3; t++) {
        setup s;
        fill(&s, types[t].type, 16, lens, N_SEQ, k, v);
        for (int r = 0; r < n_rows; r++) rows[r].seq = &s.seqs[r / 2];
        run(&s, 2, rows, n_rows, q, out3, 1000);
        double w = 0;
        for (size_t j = 0; j < qd * (size_t)n_rows; j++)
            if (fabs(out3[j] - out1[j]) > w) w = fabs(out3[j] - out1[j]);
        CHECK_MSG(w <= types[t].tol, "%s pages: %g from f32 (tolerance %g)", meshlm_type_name(types[t].type), w,
                  types[t].tol);
        fprintf(stderr, "%s pages vs f32: max abs difference %.3g (tolerance %g)\n", meshlm_type_name(types[t].type),
                w, types[t].tol);
        unfill(&s);
    }
    unfill(&f32);
    for (int i = 0; i < N_SEQ; i++) free(k[i]), free(v[i]);
    free(q), free(out1), free(out3), free(one);
}

/* A 32k-position sequence: rows near the end and in the middle, vs the reference, and the
 * split and whole modes bitwise equal. */
static void check_32k(void) {
    int32_t len = 32768;
    size_t n = (size_t)len * N_KV * HD, qd = N_HEAD * HD;
    float *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    for (size_t j = 0; j < n; j++) k[j] = 3.0f * rnd(), v[j] = rnd();
    setup s;
    fill(&s, MESHLM_TYPE_F32, 64, &len, 1, &k, &v);
    meshlm_attn_row rows[2] = {{&s.seqs[0], len - 1}, {&s.seqs[0], 20000}};
    float q[2 * N_HEAD * HD], whole[2 * N_HEAD * HD], split[2 * N_HEAD * HD];
    for (size_t j = 0; j < 2 * qd; j++) q[j] = rnd();
    run(&s, 1, rows, 2, q, whole, len);
    run(&s, 4, rows, 2, q, split, len);
    CHECK_MSG(memcmp(whole, split, sizeof whole) == 0, "32k: split and whole differ");
    for (int r = 0; r < 2; r++) {
        double e = ref_error(q + r * qd, k, v, rows[r].pos, whole + r * qd);
        CHECK_MSG(e < 1e-5, "32k row at %d: %g from the reference", rows[r].pos, e);
        fprintf(stderr, "32k context, row at %d: max abs error %.3g\n", rows[r].pos, e);
    }
    unfill(&s);
    free(k), free(v);
}

int main(void) {
    check_many();
    check_32k();
    return t_done();
}

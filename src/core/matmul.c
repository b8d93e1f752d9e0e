/* Matrix times activations: the generic matmul and its fused forms (several matrices over
 * one input; W1 and W3 with the silu epilogue), built from the same two pieces, so the
 * difference between the tiers is only which pieces run in which pass. */
#include <stdint.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/ops.h"
#include "core/panel.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "core/status.h"

meshlm_matmul_cfg meshlm_matmul_cfg_default(void) {
    return (meshlm_matmul_cfg){.f32_act = false, .row_block_bytes = 128 << 10, .tok_block_bytes = 256 << 10};
}

/* Rows per block and tokens per group for rows of row_bytes and tokens of tok_bytes. */
static void block_sizes(const meshlm_matmul_cfg *cfg, size_t row_bytes, size_t tok_bytes, long *rows,
                        int64_t *toks) {
    *rows = (long)(cfg->row_block_bytes / (row_bytes ? row_bytes : 1));
    if (*rows > 16) *rows = *rows / 16 * 16; /* whole AMX tiles of rows */
    /* Whole AMX tiles of 16 tokens (and of the 4- and 2-token SIMD tiles). */
    *toks = (int64_t)(cfg->tok_block_bytes / (tok_bytes ? tok_bytes : 1)) / 16 * 16;
    if (*rows < 1) *rows = 1;
    if (*toks < 16) *toks = 16;
}

void meshlm_matmul_rows(const meshlm_matmul_in *in, const meshlm_matrix *w, long lo, long hi, float *y) {
    const char *data = w->data;
    bool q8 = in->act && meshlm_act_block(w->type) == in->act_block;
    if (!q8 && in->n_tok == 1) {
        for (long o = lo; o < hi; o++) y[o] = meshlm_vec_dot(w->type, data + (size_t)o * w->row_bytes, in->x, w->n_in);
        return;
    }
    if (w->panels) {
        /* Packed only where the integer path runs (never with f32 activations). */
        meshlm_panel_dot(w->type, data, w->row_bytes, lo, hi, in->act, in->act_row, w->n_in, in->n_tok, y, w->n_out);
        return;
    }
    if (q8 && meshlm_vec_qdot_rows_whole(w->type)) {
        meshlm_vec_qdot_rows(w->type, data + (size_t)lo * w->row_bytes, w->row_bytes, hi - lo, in->act, in->act_row,
                             w->n_in, in->n_tok, y + lo, w->n_out);
        return;
    }
    long rows;
    int64_t toks;
    block_sizes(&in->cfg, w->row_bytes, q8 ? in->act_row : (size_t)w->n_in * sizeof(float), &rows, &toks);
    for (long o0 = lo; o0 < hi; o0 += rows) {
        long o1 = o0 + rows < hi ? o0 + rows : hi;
        const char *r = data + (size_t)o0 * w->row_bytes;
        for (int64_t t0 = 0; t0 < in->n_tok; t0 += toks) {
            int64_t nt = in->n_tok - t0 < toks ? in->n_tok - t0 : toks;
            float *yt = y + t0 * w->n_out + o0;
            if (q8)
                meshlm_vec_qdot_rows(w->type, r, w->row_bytes, o1 - o0, in->act + (size_t)t0 * in->act_row,
                                     in->act_row, w->n_in, nt, yt, w->n_out);
            else
                meshlm_vec_dot_rows(w->type, r, w->row_bytes, o1 - o0, in->x + t0 * w->n_in, w->n_in, nt, w->n_in,
                                    yt, w->n_out);
        }
    }
}

/* Each thread quantizes its share of the activation rows. */
static void quantize_rows(void *arg, int ith, int nth) {
    const meshlm_matmul_in *in = arg;
    long lo, hi;
    meshlm_split_range((long)in->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        meshlm_quantize_act(in->act_type, in->x + t * in->n_in, (uint8_t *)in->act + (size_t)t * in->act_row,
                            in->n_in);
}

/* As meshlm_matmul_prepare, with the int8 rows in own (act_row * n_tok bytes) when given,
 * else in the pool's scratch. */
static void prepare(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, int type, const float *x, int64_t n_tok,
                    int64_t n_in, void *own, meshlm_matmul_in *in) {
    *in = (meshlm_matmul_in){.x = x, .n_tok = n_tok, .n_in = n_in,
                             .cfg = cfg ? *cfg : meshlm_matmul_cfg_default()};
    if (in->cfg.f32_act || n_tok < 1 || !(in->act_row = meshlm_act_row_bytes(type, n_in))) return;
    in->act = own ? own : meshlm_pool_scratch(pool, in->act_row * (size_t)n_tok);
    if (!in->act) return;
    in->act_type = type;
    in->act_block = meshlm_act_block(type);
    if (n_tok > 1)
        meshlm_pool_run(pool, quantize_rows, in);
    else
        quantize_rows(in, 0, 1);
}

void meshlm_matmul_prepare(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, int type, const float *x,
                           int64_t n_tok, int64_t n_in, meshlm_matmul_in *in) {
    prepare(pool, cfg, type, x, n_tok, n_in, NULL, in);
}

/* Quantized activations of the largest row any weight type needs for n_in values. */
static size_t act_row_max(int64_t n_in) {
    int64_t n = (n_in + MESHLM_ACT_ALIGN - 1) / MESHLM_ACT_ALIGN * MESHLM_ACT_ALIGN;
    size_t a = meshlm_act_row_bytes(MESHLM_TYPE_Q8_0, n), b = meshlm_act_row_bytes(MESHLM_TYPE_Q4_K, n);
    size_t c = meshlm_act_row_bytes(MESHLM_TYPE_BF16, n), ab = a > b ? a : b;
    return ab > c ? ab : c;
}

void meshlm_matmul_prepare_own(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, int type, const float *x,
                               int64_t n_tok, int64_t n_in, void *own, meshlm_matmul_in *in) {
    prepare(pool, cfg, type, x, n_tok, n_in, own, in);
}

size_t meshlm_matmul_act_bytes(int64_t n_tok, int64_t n_in) { return (size_t)n_tok * act_row_max(n_in); }

int meshlm_matmul_reserve(meshlm_pool *pool, int64_t max_tok, int64_t max_n_in) {
    if (max_tok < 1 || max_n_in < 1 || max_n_in > ((int64_t)1 << 40) ||
        (size_t)max_tok > SIZE_MAX / act_row_max(max_n_in))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "matmul scratch: %lld tokens of %lld values is out of range",
                           (long long)max_tok, (long long)max_n_in);
    return meshlm_pool_reserve_scratch(pool, (size_t)max_tok * act_row_max(max_n_in));
}

/* ---- the generic form: one matrix, its rows split across the threads ---- */

typedef struct multi_job {
    const meshlm_matmul_in *in;
    const meshlm_matrix *const *w;
    int n_w;
    float *const *y;
} multi_job;

/* Thread ith takes its share of the rows of all matrices laid end to end. */
static void multi_rows(void *arg, int ith, int nth) {
    const multi_job *job = arg;
    long total = 0;
    for (int i = 0; i < job->n_w; i++) total += (long)job->w[i]->n_out;
    long lo, hi, base = 0;
    meshlm_split_range(total, ith, nth, &lo, &hi);
    for (int i = 0; i < job->n_w && base < hi; base += (long)job->w[i]->n_out, i++) {
        long a = lo > base ? lo - base : 0, b = hi - base < job->w[i]->n_out ? hi - base : (long)job->w[i]->n_out;
        if (a < b) meshlm_matmul_rows(job->in, job->w[i], a, b, job->y[i]);
    }
}

void meshlm_matmul_ex(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *w, const float *x,
                      int64_t n_tok, float *y) {
    /* Without a pool (tests, tools) the int8 rows need a buffer of their own. */
    size_t act_row = meshlm_act_row_bytes(w->type, w->n_in);
    void *own = !pool && act_row && n_tok > 0 ? malloc(act_row * (size_t)n_tok) : NULL;
    meshlm_matmul_in in;
    prepare(pool, cfg, w->type, x, n_tok, w->n_in, own, &in);
    multi_job job = {&in, &w, 1, &y};
    meshlm_pool_run(pool, multi_rows, &job);
    free(own);
}

void meshlm_matmul(meshlm_pool *pool, const meshlm_matrix *w, const float *x, int64_t n_tok, float *y) {
    meshlm_matmul_ex(pool, NULL, w, x, n_tok, y);
}

/* ---- the fused forms ---- */

void meshlm_matmul_multi(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *const *w, int n_w,
                         const float *x, int64_t n_tok, float *const *y) {
    /* One scratch holds one quantized input: matrices of another activation format than
     * the first run as their own matmul (a GGUF Q4_K_M file may keep wv in Q6_K, which
     * shares Q4_K's format; mixing Q8_0 with K-quants is what falls back). */
    int blk = meshlm_act_block(w[0]->type);
    int same = 1;
    while (same < n_w && meshlm_act_block(w[same]->type) == blk) same++;
    meshlm_matmul_in in;
    meshlm_matmul_prepare(pool, cfg, w[0]->type, x, n_tok, w[0]->n_in, &in);
    multi_job job = {&in, w, same, y};
    meshlm_pool_run(pool, multi_rows, &job);
    for (int i = same; i < n_w; i++) meshlm_matmul_ex(pool, cfg, w[i], x, n_tok, y[i]);
}

typedef struct w13_job {
    const meshlm_matmul_in *in;
    const meshlm_matrix *w1, *w3;
    float *gate, *up;
    bool epilogue;
} w13_job;

/* A block of w1 rows, the same block of w3 rows, then silu(gate) * up on the block for
 * every token while those values are still in L1/L2. */
static void w13_rows(void *arg, int ith, int nth) {
    const w13_job *job = arg;
    const meshlm_matrix *w1 = job->w1;
    long lo, hi, rows = (long)(job->in->cfg.row_block_bytes / (2 * w1->row_bytes + 1)) + 1;
    /* Tiles that restage their activations per call want more rows per call. */
    if (job->in->act && (w1->panels || meshlm_vec_qdot_rows_whole(w1->type))) rows = 1024;
    meshlm_split_range((long)w1->n_out, ith, nth, &lo, &hi);
    for (long o0 = lo; o0 < hi; o0 += rows) {
        long o1 = o0 + rows < hi ? o0 + rows : hi;
        meshlm_matmul_rows(job->in, w1, o0, o1, job->gate);
        meshlm_matmul_rows(job->in, job->w3, o0, o1, job->up);
        if (!job->epilogue) continue;
        for (int64_t t = 0; t < job->in->n_tok; t++)
            meshlm_silu_mul(job->gate + t * w1->n_out + o0, job->up + t * w1->n_out + o0, o1 - o0);
    }
}

void meshlm_matmul_w13(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *w1,
                       const meshlm_matrix *w3, const float *x, int64_t n_tok, float *gate, float *up, bool epilogue) {
    meshlm_matmul_in in;
    if (meshlm_act_block(w1->type) != meshlm_act_block(w3->type)) {
        meshlm_matmul_ex(pool, cfg, w1, x, n_tok, gate);
        meshlm_matmul_ex(pool, cfg, w3, x, n_tok, up);
        if (epilogue) meshlm_silu_mul(gate, up, n_tok * w1->n_out);
        return;
    }
    meshlm_matmul_prepare(pool, cfg, w1->type, x, n_tok, w1->n_in, &in);
    w13_job job = {&in, w1, w3, gate, up, epilogue};
    meshlm_pool_run(pool, w13_rows, &job);
}

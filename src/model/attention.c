#include "model/attention.h"

#include <math.h>
#include <string.h>

#include "core/attn.h"
#include "core/dtype.h"

/* Below this many (row, head) pairs per thread, the pieces of a pair are spread over the
 * threads instead (long-context decode of few sequences). */
#define SPLIT_PAIRS_PER_THREAD 4

static int32_t n_pieces(int32_t pos) { return pos / MESHLM_ATTN_PIECE + 1; }

size_t meshlm_attention_scratch_floats(int n_threads, int32_t n_ctx, int head_dim) {
    size_t pairs = (size_t)SPLIT_PAIRS_PER_THREAD * (size_t)(n_threads > 0 ? n_threads : 1);
    return pairs * (size_t)n_pieces(n_ctx > 0 ? n_ctx - 1 : 0) * (size_t)(head_dim + 2);
}

/* What every piece of one call shares. */
typedef struct job {
    const meshlm_attention_args *a;
    const meshlm_attn_kernels *kern;
    size_t row_bytes, slice_bytes; /* a position's K (or V) row; one head's part of it */
    int32_t page_size, max_pieces;
    int n_blocks; /* head blocks per row */
    float scale;
} job;

/* Block b of a row's query heads: a run of consecutive heads that read one KV head, cut
 * into runs of at most MESHLM_ATTN_MAX_Q, so each K and V row is decoded once per block.
 * Returns the block's size and sets *h0 to its first head; 0 past the last block. */
static int head_block(const meshlm_attention_args *a, int b, int *h0) {
    for (int h = 0; h < a->n_heads;) {
        int end = ((a->head0 + h) / a->group + 1) * a->group - a->head0;
        if (end > a->n_heads) end = a->n_heads;
        while (h < end) {
            int n = end - h < MESHLM_ATTN_MAX_Q ? end - h : MESHLM_ATTN_MAX_Q;
            if (b-- == 0) {
                *h0 = h;
                return n;
            }
            h += n;
        }
    }
    return 0;
}

/* Where head h's KV head starts within a row; a head starts on a block boundary (the pool
 * checks head_dim against the block size). */
static size_t kv_offset(const meshlm_attention_args *a, int h) {
    int type = meshlm_kv_pool_type(a->kv);
    size_t off = (size_t)((a->head0 + h) / a->group - a->kv0) * (size_t)a->head_dim;
    return off / (size_t)meshlm_type_block_elems(type) * meshlm_type_block_bytes(type);
}

/* Rows at the start of a run to prefetch while the run before it is computed: the kernels
 * prefetch ahead within a run, not across the page boundary where the next run starts. */
#define RUN_AHEAD 16

/* The end of the run of positions from i that share i's page, at most hi. */
static int32_t run_end(const job *j, int32_t i, int32_t hi) {
    int32_t end = (i / j->page_size + 1) * j->page_size;
    return end < hi ? end : hi;
}

/* Starts loading the head slices of K (which = 0) or V (1) at positions [i, end). */
static void prefetch_run(const job *j, const meshlm_attn_row *r, size_t off, int32_t i, int32_t end, int which) {
    const meshlm_attention_args *a = j->a;
    if (end > i + RUN_AHEAD) end = i + RUN_AHEAD;
    const uint8_t *row = (const uint8_t *)meshlm_kv_row(a->kv, r->seq, a->layer, i, which) + off;
    for (int32_t p = i; p < end; p++, row += j->row_bytes)
        for (size_t o = 0; o < j->slice_bytes; o += 64) __builtin_prefetch(row + o);
}

/* Piece k of heads h .. h + nq - 1 of row t: positions [k * PIECE, min((k + 1) * PIECE,
 * pos + 1)). Gives each head x the piece's maximum score m[x * ms], the sum s[x * ms] of
 * exp(score - max) and acc[x * as ..] = the sum of exp(score - max) * V, in the order
 * core/attn.h fixes; the cut into page runs does not change it. */
static void piece(const job *j, int32_t t, int h, int nq, int32_t k, float *m, float *s, size_t ms, float *acc,
                  size_t as) {
    const meshlm_attention_args *a = j->a;
    const meshlm_attn_row *r = &a->rows[t];
    int hd = a->head_dim;
    const float *q = a->q + (size_t)t * a->q_dim + (size_t)h * hd;
    size_t off = kv_offset(a, h);
    int32_t lo = k * MESHLM_ATTN_PIECE, hi = lo + MESHLM_ATTN_PIECE;
    if (hi > r->pos + 1) hi = r->pos + 1;
    float w[MESHLM_ATTN_MAX_Q][MESHLM_ATTN_PIECE];
    for (int32_t i = lo, end; i < hi; i = end) {
        end = run_end(j, i, hi);
        if (end < hi)
            prefetch_run(j, r, off, end, run_end(j, end, hi), 0);
        else
            prefetch_run(j, r, off, lo, run_end(j, lo, hi), 1);
        const uint8_t *rows = (const uint8_t *)meshlm_kv_row(a->kv, r->seq, a->layer, i, 0) + off;
        j->kern->scores(rows, j->row_bytes, end - i, q, nq, hd, j->scale, &w[0][i - lo], MESHLM_ATTN_PIECE);
    }
    for (int x = 0; x < nq; x++) {
        j->kern->softmax(w[x], hi - lo, &m[(size_t)x * ms], &s[(size_t)x * ms]);
        memset(acc + (size_t)x * as, 0, (size_t)hd * sizeof(float));
    }
    for (int32_t i = lo, end; i < hi; i = end) {
        end = run_end(j, i, hi);
        if (end < hi) prefetch_run(j, r, off, end, run_end(j, end, hi), 1);
        const uint8_t *rows = (const uint8_t *)meshlm_kv_row(a->kv, r->seq, a->layer, i, 1) + off;
        j->kern->wsum(rows, j->row_bytes, end - i, &w[0][i - lo], MESHLM_ATTN_PIECE, nq, hd, acc, as);
    }
}

/* Merges a piece (m, s, pacc) into the running (M, S, acc), both rescaled to the larger
 * maximum. */
static void fold(float *M, float *S, float *acc, float m, float s, const float *pacc, int hd) {
    float nm = m > *M ? m : *M;
    float fa = expf(*M - nm), fb = expf(m - nm);
    *S = *S * fa + s * fb;
    for (int d = 0; d < hd; d++) acc[d] = acc[d] * fa + pacc[d] * fb;
    *M = nm;
}

/* The weighted values over the weights' sum: the softmax-weighted average. */
static void finish(float *acc, float S, int hd) {
    for (int d = 0; d < hd; d++) acc[d] /= S;
}

/* Output of head h of row t. */
static float *out_of(const meshlm_attention_args *a, int32_t t, int h) {
    return a->out + (size_t)t * a->q_dim + (size_t)h * a->head_dim;
}

/* One thread per (row, head block): its pieces in order, folded as they come. */
static void whole_blocks(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    int hd = a->head_dim;
    float pacc[MESHLM_ATTN_MAX_Q * MESHLM_ATTN_MAX_DIM];
    float M[MESHLM_ATTN_MAX_Q], S[MESHLM_ATTN_MAX_Q], m[MESHLM_ATTN_MAX_Q], s[MESHLM_ATTN_MAX_Q];
    long lo, hi;
    meshlm_split_range((long)a->n_rows * j->n_blocks, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        int32_t t = (int32_t)(u / j->n_blocks);
        int h = 0, nq = head_block(a, (int)(u % j->n_blocks), &h);
        float *out = out_of(a, t, h);
        piece(j, t, h, nq, 0, M, S, 1, out, (size_t)hd);
        int32_t np = n_pieces(a->rows[t].pos);
        for (int32_t k = 1; k < np; k++) {
            piece(j, t, h, nq, k, m, s, 1, pacc, (size_t)hd);
            for (int x = 0; x < nq; x++)
                fold(&M[x], &S[x], out + (size_t)x * hd, m[x], s[x], pacc + (size_t)x * hd, hd);
        }
        for (int x = 0; x < nq; x++) finish(out + (size_t)x * hd, S[x], hd);
    }
}

/* Record of (row, head) pair p, piece k in the scratch: m, s, then head_dim accumulated
 * values. */
static float *record(const job *j, long p, int32_t k) {
    return j->a->scratch + ((size_t)p * (size_t)j->max_pieces + (size_t)k) * (size_t)(j->a->head_dim + 2);
}

/* Split mode, first pass: every (row, head block, piece) to its heads' records. */
static void split_pieces(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    size_t rs = (size_t)j->max_pieces * (size_t)(a->head_dim + 2);
    long lo, hi;
    meshlm_split_range((long)a->n_rows * j->n_blocks * j->max_pieces, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        long u = i / j->max_pieces;
        int32_t t = (int32_t)(u / j->n_blocks), k = (int32_t)(i % j->max_pieces);
        if (k >= n_pieces(a->rows[t].pos)) continue;
        int h = 0, nq = head_block(a, (int)(u % j->n_blocks), &h);
        float *rec = record(j, (long)t * a->n_heads + h, k);
        piece(j, t, h, nq, k, &rec[0], &rec[1], rs, rec + 2, rs);
    }
}

/* Split mode, second pass: each pair folds its records in piece order, as whole_blocks
 * does. */
static void split_combine(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    int hd = a->head_dim;
    long lo, hi;
    meshlm_split_range((long)a->n_rows * a->n_heads, ith, nth, &lo, &hi);
    for (long p = lo; p < hi; p++) {
        int32_t t = (int32_t)(p / a->n_heads);
        float *acc = out_of(a, t, (int)(p % a->n_heads)), *rec = record(j, p, 0);
        float M = rec[0], S = rec[1];
        memcpy(acc, rec + 2, (size_t)hd * sizeof(float));
        int32_t np = n_pieces(a->rows[t].pos);
        for (int32_t k = 1; k < np; k++) {
            rec = record(j, p, k);
            fold(&M, &S, acc, rec[0], rec[1], rec + 2, hd);
        }
        finish(acc, S, hd);
    }
}

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a) {
    long pairs = (long)a->n_rows * a->n_heads;
    int nth = meshlm_pool_size(pool), h0;
    job j = {.a = a,
             .kern = meshlm_attn_kernels_get(meshlm_kv_pool_type(a->kv), a->head_dim),
             .row_bytes = meshlm_kv_pool_row_bytes(a->kv),
             .slice_bytes = meshlm_type_row_bytes(meshlm_kv_pool_type(a->kv), a->head_dim),
             .page_size = meshlm_kv_pool_page_size(a->kv),
             .max_pieces = 1,
             .n_blocks = 0,
             .scale = 1.0f / sqrtf((float)a->head_dim)};
    while (head_block(a, j.n_blocks, &h0)) j.n_blocks++;
    for (int32_t t = 0; t < a->n_rows; t++)
        if (n_pieces(a->rows[t].pos) > j.max_pieces) j.max_pieces = n_pieces(a->rows[t].pos);
    if (nth == 1 || j.max_pieces == 1 || pairs >= (long)SPLIT_PAIRS_PER_THREAD * nth || !a->scratch) {
        meshlm_pool_run(pool, whole_blocks, &j);
        return;
    }
    meshlm_pool_run(pool, split_pieces, &j);
    meshlm_pool_run(pool, split_combine, &j);
}

#include "model/attention.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/attn.h"
#include "core/dtype.h"
#include "core/ops.h"

/* Below this many (row, head) pairs per thread, the pieces of a pair are spread over the
 * threads instead (long-context decode of few sequences). */
#define SPLIT_PAIRS_PER_THREAD 4
/* A span of heads goes through a piece's rows together, so each position's K and V bytes
 * for all its KV heads are read at once and in address order, which the prefetchers
 * follow; its scores and one piece's values live on the stack, which bounds it. */
#define SPAN_HEADS 32
#define SPAN_FLOATS 8192
/* Positions a span takes at a time across its heads: small enough that a position's bytes
 * stay in L1 from the first head to the last. */
#define SUB_RUN 16

static int32_t n_pieces(int32_t pos) { return pos / MESHLM_ATTN_PIECE + 1; }

/* The first position a row at pos sees with window w (0 = none). */
static int32_t first_pos(int32_t pos, int32_t w) { return w > 0 && pos >= w ? pos - w + 1 : 0; }

/* The first piece holding a position the row sees. */
static int32_t first_piece(int32_t pos, int32_t w) { return first_pos(pos, w) / MESHLM_ATTN_PIECE; }

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
    int n_blocks;   /* head blocks per row */
    int span_max;   /* heads per span */
    int n_spans;    /* spans per row in split mode */
    float scale;
} job;

/* Heads h, h + 1, ... of the block that starts at h: those that read h's KV head, at most
 * MESHLM_ATTN_MAX_Q (one kernel call). Blocks tile the heads from 0. */
static int block_len(const meshlm_attention_args *a, int h) {
    int end = ((a->head0 + h) / a->group + 1) * a->group - a->head0;
    if (end > a->n_heads) end = a->n_heads;
    return end - h < MESHLM_ATTN_MAX_Q ? end - h : MESHLM_ATTN_MAX_Q;
}

/* The first head of block b. */
static int block_head(const meshlm_attention_args *a, int b) {
    int h = 0;
    while (b-- > 0) h += block_len(a, h);
    return h;
}

/* Whole blocks from head h on, as many as fit in n_max heads and the blocks [b, b_end). */
static int span_len(const meshlm_attention_args *a, int h, int n_max, int b, int b_end) {
    int n = 0;
    for (; b < b_end && h + n < a->n_heads && n + block_len(a, h + n) <= n_max; b++) n += block_len(a, h + n);
    return n;
}

/* Where head h's KV head starts within a row: its values times bytes per value; a head
 * starts on a block boundary (the pool checks head_dim against the block size). */
static size_t kv_offset(const job *j, int h) {
    const meshlm_attention_args *a = j->a;
    return (size_t)((a->head0 + h) / a->group - a->kv0) * j->slice_bytes;
}

/* The end of the run of positions from i that share i's page and one step of SUB_RUN, at
 * most hi. */
static int32_t sub_end(const job *j, int32_t i, int32_t hi) {
    int32_t end = (i / j->page_size + 1) * j->page_size;
    if (end > i + SUB_RUN) end = i + SUB_RUN;
    return end < hi ? end : hi;
}

/* Heads [h, h + n) of row t, whole blocks. */
typedef struct span {
    int32_t t;
    int h, n;
} span;

/* Starts loading the span's bytes of K (which = 0) or V (1) at positions [i, sub_end). */
static void prefetch(const job *j, const span *sp, int32_t i, int32_t hi, int which) {
    const meshlm_attention_args *a = j->a;
    size_t from = kv_offset(j, sp->h), to = kv_offset(j, sp->h + sp->n - 1) + j->slice_bytes;
    uintptr_t row = (uintptr_t)meshlm_kv_row(a->kv, a->rows[sp->t].seq, a->layer, i, which);
    for (int32_t p = i, end = sub_end(j, i, hi); p < end; p++, row += j->row_bytes)
        for (uintptr_t line = (row + from) & ~(uintptr_t)63; line < row + to; line += 64)
            __builtin_prefetch((const void *)line);
}

/* Piece k of span sp: positions [k * PIECE, min((k + 1) * PIECE, pos + 1)). Gives each
 * head x of the span the piece's maximum score m[x * ms], the sum s[x * ms] of
 * exp(score - max) and acc[x * as ..] = the sum of exp(score - max) * V, in the order
 * core/attn.h fixes: neither the cut into runs nor the span's other heads change it. */
static void piece(const job *j, const span *sp, int32_t k, float *m, float *s, size_t ms, float *acc, size_t as) {
    const meshlm_attention_args *a = j->a;
    const meshlm_attn_row *r = &a->rows[sp->t];
    int hd = a->head_dim;
    const float *q = a->q + (size_t)sp->t * a->q_dim;
    int32_t lo = k * MESHLM_ATTN_PIECE, hi = lo + MESHLM_ATTN_PIECE, first = first_pos(r->pos, a->window);
    if (hi > r->pos + 1) hi = r->pos + 1;
    if (lo < first) lo = first;
    float w[SPAN_HEADS][MESHLM_ATTN_PIECE];
    for (int32_t i = lo, end; i < hi; i = end) {
        end = sub_end(j, i, hi);
        if (end < hi)
            prefetch(j, sp, end, hi, 0);
        else
            prefetch(j, sp, lo, hi, 1);
        const uint8_t *row = meshlm_kv_row(a->kv, r->seq, a->layer, i, 0);
        for (int h = sp->h, nq; h < sp->h + sp->n; h += nq) {
            nq = block_len(a, h);
            j->kern->scores(row + kv_offset(j, h), j->row_bytes, end - i, q + (size_t)h * hd, nq, hd, j->scale,
                            &w[h - sp->h][i - lo], MESHLM_ATTN_PIECE);
        }
    }
    for (int x = 0; x < sp->n; x++) {
        if (a->softcap > 0) meshlm_softcap(w[x], hi - lo, a->softcap);
        j->kern->softmax(w[x], hi - lo, &m[(size_t)x * ms], &s[(size_t)x * ms]);
        memset(acc + (size_t)x * as, 0, (size_t)hd * sizeof(float));
    }
    for (int32_t i = lo, end; i < hi; i = end) {
        end = sub_end(j, i, hi);
        if (end < hi)
            prefetch(j, sp, end, hi, 1);
        else if (hi <= r->pos)
            prefetch(j, sp, hi, r->pos + 1, 0);
        const uint8_t *row = meshlm_kv_row(a->kv, r->seq, a->layer, i, 1);
        for (int h = sp->h, nq; h < sp->h + sp->n; h += nq) {
            nq = block_len(a, h);
            int x = h - sp->h;
            j->kern->wsum(row + kv_offset(j, h), j->row_bytes, end - i, &w[x][i - lo], MESHLM_ATTN_PIECE, nq, hd,
                          acc + (size_t)x * as, as);
        }
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

/* The weighted values over the weights' sum: the softmax-weighted average. A sink joins
 * the sum as a piece of weight exp(sink) and no value, folded last. */
static void finish(const meshlm_attention_args *a, int h, float *acc, float M, float S, int hd) {
    if (a->sinks) {
        float sink = a->sinks[a->head0 + h], nm = sink > M ? sink : M, fa = expf(M - nm);
        S = S * fa + expf(sink - nm);
        for (int d = 0; d < hd; d++) acc[d] *= fa;
    }
    for (int d = 0; d < hd; d++) acc[d] /= S;
}

/* Output of head h of row t. */
static float *out_of(const meshlm_attention_args *a, int32_t t, int h) {
    return a->out + (size_t)t * a->q_dim + (size_t)h * a->head_dim;
}

/* What one (row, head block) pair costs: the positions it reads, plus a fixed part for
 * the pieces' softmax and fold and the output. */
static int64_t pair_cost(const meshlm_attention_args *a, int32_t t) {
    return (int64_t)a->rows[t].pos - first_pos(a->rows[t].pos, a->window) + 1 + 32;
}

/* The first pair at or past the share `part` of nth of all pairs' cost: a prefill's late
 * rows read many more positions than its early ones, so equal counts of pairs would leave
 * the threads of the early rows waiting. */
static long cost_bound(const job *j, int part, int nth) {
    const meshlm_attention_args *a = j->a;
    if (part >= nth) return (long)a->n_rows * j->n_blocks;
    int64_t total = 0, done = 0;
    for (int32_t t = 0; t < a->n_rows; t++) total += pair_cost(a, t) * j->n_blocks;
    const int64_t goal = total / nth * part + total % nth * part / nth;
    long u = 0;
    for (int32_t t = 0; t < a->n_rows; t++)
        for (int b = 0; b < j->n_blocks; b++, u++) {
            if (done >= goal) return u;
            done += pair_cost(a, t);
        }
    return u;
}

/* Each thread takes a range of (row, head block) pairs of about equal cost and walks it in
 * spans of one row's blocks: a span's pieces in order, folded as they come. */
static void whole_spans(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    int hd = a->head_dim;
    float pacc[SPAN_FLOATS], M[SPAN_HEADS], S[SPAN_HEADS], m[SPAN_HEADS], s[SPAN_HEADS];
    long lo = cost_bound(j, ith, nth), hi = cost_bound(j, ith + 1, nth);
    for (long u = lo; u < hi;) {
        int b = (int)(u % j->n_blocks), b_end = (long)j->n_blocks < hi - u + b ? j->n_blocks : (int)(hi - u + b);
        span sp = {.t = (int32_t)(u / j->n_blocks), .h = block_head(a, b)};
        sp.n = span_len(a, sp.h, j->span_max, b, b_end);
        for (int h = sp.h; h < sp.h + sp.n; h += block_len(a, h)) u++;
        float *out = out_of(a, sp.t, sp.h);
        int32_t k0 = first_piece(a->rows[sp.t].pos, a->window), np = n_pieces(a->rows[sp.t].pos);
        piece(j, &sp, k0, M, S, 1, out, (size_t)hd);
        for (int32_t k = k0 + 1; k < np; k++) {
            piece(j, &sp, k, m, s, 1, pacc, (size_t)hd);
            for (int x = 0; x < sp.n; x++)
                fold(&M[x], &S[x], out + (size_t)x * hd, m[x], s[x], pacc + (size_t)x * hd, hd);
        }
        for (int x = 0; x < sp.n; x++) finish(a, sp.h + x, out + (size_t)x * hd, M[x], S[x], hd);
    }
}

/* Span g of a row in split mode: the row's blocks taken greedily, span_max heads at most. */
static span split_span(const job *j, int32_t t, int g) {
    span sp = {.t = t, .h = 0, .n = 0};
    for (int i = 0; i <= g; i++) {
        sp.h += sp.n;
        sp.n = span_len(j->a, sp.h, j->span_max, 0, j->n_blocks);
    }
    return sp;
}

/* Record of (row, head) pair p, piece k in the scratch: m, s, then head_dim accumulated
 * values. */
static float *record(const job *j, long p, int32_t k) {
    return j->a->scratch + ((size_t)p * (size_t)j->max_pieces + (size_t)k) * (size_t)(j->a->head_dim + 2);
}

/* Split mode, first pass: every (row, span, piece) to its heads' records. */
static void split_pieces(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    size_t rs = (size_t)j->max_pieces * (size_t)(a->head_dim + 2);
    long lo, hi;
    meshlm_split_range((long)a->n_rows * j->n_spans * j->max_pieces, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        long u = i / j->max_pieces;
        int32_t t = (int32_t)(u / j->n_spans), k = (int32_t)(i % j->max_pieces);
        if (k >= n_pieces(a->rows[t].pos) || k < first_piece(a->rows[t].pos, a->window)) continue;
        span sp = split_span(j, t, (int)(u % j->n_spans));
        float *rec = record(j, (long)t * a->n_heads + sp.h, k);
        piece(j, &sp, k, &rec[0], &rec[1], rs, rec + 2, rs);
    }
}

/* Split mode, second pass: each pair folds its records in piece order, as whole_spans
 * does. */
static void split_combine(void *arg, int ith, int nth) {
    const job *j = arg;
    const meshlm_attention_args *a = j->a;
    int hd = a->head_dim;
    long lo, hi;
    meshlm_split_range((long)a->n_rows * a->n_heads, ith, nth, &lo, &hi);
    for (long p = lo; p < hi; p++) {
        int32_t t = (int32_t)(p / a->n_heads);
        int32_t k0 = first_piece(a->rows[t].pos, a->window), np = n_pieces(a->rows[t].pos);
        float *acc = out_of(a, t, (int)(p % a->n_heads)), *rec = record(j, p, k0);
        float M = rec[0], S = rec[1];
        memcpy(acc, rec + 2, (size_t)hd * sizeof(float));
        for (int32_t k = k0 + 1; k < np; k++) {
            rec = record(j, p, k);
            fold(&M, &S, acc, rec[0], rec[1], rec + 2, hd);
        }
        finish(a, (int)(p % a->n_heads), acc, M, S, hd);
    }
}

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a) {
    long pairs = (long)a->n_rows * a->n_heads;
    int nth = meshlm_pool_size(pool);
    int span_max = SPAN_FLOATS / a->head_dim < SPAN_HEADS ? SPAN_FLOATS / a->head_dim : SPAN_HEADS;
    job j = {.a = a,
             .kern = meshlm_attn_kernels_get(meshlm_kv_pool_type(a->kv), a->head_dim),
             .row_bytes = meshlm_kv_pool_row_bytes(a->kv),
             .slice_bytes = meshlm_type_row_bytes(meshlm_kv_pool_type(a->kv), a->head_dim),
             .page_size = meshlm_kv_pool_page_size(a->kv),
             .max_pieces = 1,
             .span_max = span_max,
             .scale = a->scale};
    for (int h = 0; h < a->n_heads; h += block_len(a, h)) j.n_blocks++;
    for (int h = 0, n; h < a->n_heads; h += n, j.n_spans++) n = span_len(a, h, span_max, 0, j.n_blocks);
    for (int32_t t = 0; t < a->n_rows; t++)
        if (n_pieces(a->rows[t].pos) > j.max_pieces) j.max_pieces = n_pieces(a->rows[t].pos);
    if (nth == 1 || j.max_pieces == 1 || pairs >= (long)SPLIT_PAIRS_PER_THREAD * nth || !a->scratch) {
        meshlm_pool_run(pool, whole_spans, &j);
        return;
    }
    meshlm_pool_run(pool, split_pieces, &j);
    meshlm_pool_run(pool, split_combine, &j);
}

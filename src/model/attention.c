#include "model/attention.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"

/* Below this many (row, head) pairs per thread, the pieces of a pair are spread over the
 * threads instead (long-context decode of few sequences). */
#define SPLIT_PAIRS_PER_THREAD 4
#define MAX_HEAD_DIM 1024

static int32_t n_pieces(int32_t pos) { return pos / MESHLM_ATTN_PIECE + 1; }

size_t meshlm_attention_scratch_floats(int n_threads, int32_t n_ctx, int head_dim) {
    size_t pairs = (size_t)SPLIT_PAIRS_PER_THREAD * (size_t)(n_threads > 0 ? n_threads : 1);
    return pairs * (size_t)n_pieces(n_ctx > 0 ? n_ctx - 1 : 0) * (size_t)(head_dim + 2);
}

/* q . k over n values in 8 interleaved partial sums (element i into sum i % 8), added
 * pairwise at the end: a fixed order, so the same bits on every call, and short enough
 * dependency chains for the compiler to keep several multiplies in flight. */
static float dot8(const float *q, const float *k, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += q[i + j] * k[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += q[i] * k[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* How the pool's rows are read: in place (F32), or a head's slice decoded into buf first;
 * a head starts on a block boundary (the pool checks head_dim against the block size). */
typedef struct reader {
    bool f32;
    int type;
    size_t off_bytes; /* of the head slice within a row */
    float buf[MAX_HEAD_DIM];
} reader;

/* A reader of the head slice starting at value off of every row. */
static void reader_init(reader *rd, const meshlm_kv_pool *kv, int32_t off) {
    rd->type = meshlm_kv_pool_type(kv);
    rd->f32 = rd->type == MESHLM_TYPE_F32;
    rd->off_bytes = (size_t)(off / meshlm_type_block_elems(rd->type)) * meshlm_type_block_bytes(rd->type);
}

/* The head slice of the K (which = 0) or V (1) row at pos, as f32. */
static const float *slice(reader *rd, const meshlm_attention_args *a, const meshlm_kv_seq *seq, int32_t pos,
                          int which) {
    const uint8_t *row = (const uint8_t *)meshlm_kv_row(a->kv, seq, a->layer, pos, which) + rd->off_bytes;
    if (rd->f32) return (const float *)row;
    meshlm_dequantize_row(rd->type, row, rd->buf, a->head_dim);
    return rd->buf;
}

/* Piece k of pair p: positions [k * PIECE, min((k + 1) * PIECE, pos + 1)). Gives the
 * piece's maximum score m, the sum s of exp(score - m) and acc = sum of exp(score - m) * V,
 * every sum in position order. */
static void piece(const meshlm_attention_args *a, long p, int32_t k, float *m, float *s, float *acc) {
    int hd = a->head_dim;
    int32_t t = (int32_t)(p / a->n_heads), h = (int32_t)(p % a->n_heads);
    const meshlm_attn_row *r = &a->rows[t];
    const float *q = a->q + (size_t)t * a->q_dim + (size_t)h * hd;
    int32_t off = ((a->head0 + h) / a->group - a->kv0) * hd;
    int32_t lo = k * MESHLM_ATTN_PIECE, hi = lo + MESHLM_ATTN_PIECE;
    if (hi > r->pos + 1) hi = r->pos + 1;
    float scores[MESHLM_ATTN_PIECE], scale = 1.0f / sqrtf((float)hd), mx = -INFINITY;
    reader rd;
    reader_init(&rd, a->kv, off);
    for (int32_t i = lo; i < hi; i++) {
        float sc = dot8(q, slice(&rd, a, r->seq, i, 0), hd) * scale;
        scores[i - lo] = sc;
        if (sc > mx) mx = sc;
    }
    float sum = 0.0f;
    memset(acc, 0, (size_t)hd * sizeof(float));
    for (int32_t i = lo; i < hi; i++) {
        float w = expf(scores[i - lo] - mx);
        sum += w;
        const float *v = slice(&rd, a, r->seq, i, 1);
        for (int d = 0; d < hd; d++) acc[d] += w * v[d];
    }
    *m = mx;
    *s = sum;
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

/* Output of pair p: row p / n_heads, head p % n_heads. */
static float *out_of(const meshlm_attention_args *a, long p) {
    return a->out + (size_t)(p / a->n_heads) * a->q_dim + (size_t)(p % a->n_heads) * a->head_dim;
}

/* One thread per (row, head) pair: its pieces in order, folded as they come. */
static void whole_pairs(void *arg, int ith, int nth) {
    const meshlm_attention_args *a = arg;
    float pacc[MAX_HEAD_DIM];
    long lo, hi;
    meshlm_split_range((long)a->n_rows * a->n_heads, ith, nth, &lo, &hi);
    for (long p = lo; p < hi; p++) {
        float *acc = out_of(a, p), M, S, m, s;
        piece(a, p, 0, &M, &S, acc);
        int32_t np = n_pieces(a->rows[p / a->n_heads].pos);
        for (int32_t k = 1; k < np; k++) {
            piece(a, p, k, &m, &s, pacc);
            fold(&M, &S, acc, m, s, pacc, a->head_dim);
        }
        finish(acc, S, a->head_dim);
    }
}

typedef struct split_job {
    const meshlm_attention_args *a;
    int32_t max_pieces;
} split_job;

/* Record of pair p, piece k in the scratch: m, s, then head_dim accumulated values. */
static float *record(const split_job *j, long p, int32_t k) {
    return j->a->scratch + ((size_t)p * (size_t)j->max_pieces + (size_t)k) * (size_t)(j->a->head_dim + 2);
}

/* Split mode, first pass: every (pair, piece) to its own record. */
static void split_pieces(void *arg, int ith, int nth) {
    const split_job *j = arg;
    long lo, hi;
    meshlm_split_range((long)j->a->n_rows * j->a->n_heads * j->max_pieces, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) {
        long p = i / j->max_pieces;
        int32_t k = (int32_t)(i % j->max_pieces);
        if (k >= n_pieces(j->a->rows[p / j->a->n_heads].pos)) continue;
        float *rec = record(j, p, k);
        piece(j->a, p, k, &rec[0], &rec[1], rec + 2);
    }
}

/* Split mode, second pass: each pair folds its records in piece order, as whole_pairs does. */
static void split_combine(void *arg, int ith, int nth) {
    const split_job *j = arg;
    int hd = j->a->head_dim;
    long lo, hi;
    meshlm_split_range((long)j->a->n_rows * j->a->n_heads, ith, nth, &lo, &hi);
    for (long p = lo; p < hi; p++) {
        float *acc = out_of(j->a, p), *rec = record(j, p, 0);
        float M = rec[0], S = rec[1];
        memcpy(acc, rec + 2, (size_t)hd * sizeof(float));
        int32_t np = n_pieces(j->a->rows[p / j->a->n_heads].pos);
        for (int32_t k = 1; k < np; k++) {
            rec = record(j, p, k);
            fold(&M, &S, acc, rec[0], rec[1], rec + 2, hd);
        }
        finish(acc, S, hd);
    }
}

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a) {
    long pairs = (long)a->n_rows * a->n_heads;
    int nth = meshlm_pool_size(pool);
    int32_t max_pieces = 1;
    for (int32_t t = 0; t < a->n_rows; t++)
        if (n_pieces(a->rows[t].pos) > max_pieces) max_pieces = n_pieces(a->rows[t].pos);
    if (nth == 1 || max_pieces == 1 || pairs >= (long)SPLIT_PAIRS_PER_THREAD * nth || !a->scratch) {
        meshlm_pool_run(pool, whole_pairs, (void *)a);
        return;
    }
    split_job j = {a, max_pieces};
    meshlm_pool_run(pool, split_pieces, &j);
    meshlm_pool_run(pool, split_combine, &j);
}

#include "core/ops.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/quant_impl.h"
#include "core/status.h"

void meshlm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void meshlm_softmax(float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void meshlm_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void meshlm_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

int meshlm_rope_init(meshlm_rope *r, int head_dim, int n_rot, bool neox, double theta_base,
                     const float *freq_factors) {
    int max_pairs = (int)(sizeof r->inv_freq / sizeof r->inv_freq[0]);
    if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 || n_rot / 2 > max_pairs)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "rope: rotated dimensions %d must be even, at most the head size %d and %d",
                           n_rot, head_dim, 2 * max_pairs);
    if (!(theta_base > 0.0) || !isfinite(theta_base))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency base %g is not a positive number", theta_base);
    r->head_dim = head_dim;
    r->n_rot = n_rot;
    r->neox = neox;
    for (int i = 0; i < n_rot / 2; i++) {
        double f = pow(theta_base, -2.0 * i / n_rot);
        if (freq_factors) {
            if (!(freq_factors[i] > 0.0f) || !isfinite(freq_factors[i]))
                return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency factor %d is %g, not a positive number",
                                   i, (double)freq_factors[i]);
            f /= freq_factors[i];
        }
        r->inv_freq[i] = f;
    }
    return MESHLM_OK;
}

void meshlm_rope_apply(const meshlm_rope *r, float *x, int n_heads, int64_t pos) {
    int half = r->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double angle = (double)pos * r->inv_freq[i];
        float c = (float)cos(angle), s = (float)sin(angle);
        /* neox pairs dimension i with i + n_rot/2; the normal layout pairs 2i with 2i+1. */
        int a = r->neox ? i : 2 * i;
        int b = r->neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * r->head_dim;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

typedef struct matmul_job {
    const meshlm_matrix *w;
    const float *x;
    int64_t n_tok;
    float *y;
    uint8_t *act;    /* n_tok quantized activation rows (the integer path), or NULL */
    size_t act_row; /* bytes of one */
} matmul_job;

/* Prefill works on blocks of rows against groups of tokens sized so both stay in a core's
 * L2 (512 KiB on the machines we measure): the rows come from memory once, the tokens
 * from L2 rather than from L3 for every row. Blocking only changes which results are
 * computed when, never how, so it keeps the results bitwise. */
enum { ROW_BLOCK_BYTES = 128 << 10, TOK_BLOCK_BYTES = 256 << 10 };

/* Rows per block and tokens per group for rows of row_bytes and tokens of tok_bytes. */
static void block_sizes(size_t row_bytes, size_t tok_bytes, long *rows, int64_t *toks) {
    *rows = (long)(ROW_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    *toks = (int64_t)(TOK_BLOCK_BYTES / (tok_bytes ? tok_bytes : 1)) / 4 * 4;
    if (*rows < 1) *rows = 1;
    if (*toks < 4) *toks = 4;
}

static void matmul_rows(void *arg, int ith, int nth) {
    const matmul_job *job = arg;
    const meshlm_matrix *w = job->w;
    long lo, hi;
    meshlm_split_range((long)w->n_out, ith, nth, &lo, &hi);
    if (job->n_tok == 1) {
        for (long o = lo; o < hi; o++)
            job->y[o] = meshlm_vec_dot(w->type, (const char *)w->data + (size_t)o * w->row_bytes, job->x, w->n_in);
        return;
    }
    long rows;
    int64_t toks;
    block_sizes(w->row_bytes, (size_t)w->n_in * sizeof(float), &rows, &toks);
    for (long o0 = lo; o0 < hi; o0 += rows) {
        long o1 = o0 + rows < hi ? o0 + rows : hi;
        for (int64_t t0 = 0; t0 < job->n_tok; t0 += toks) {
            int64_t nt = job->n_tok - t0 < toks ? job->n_tok - t0 : toks;
            const float *x = job->x + t0 * w->n_in;
            meshlm_vec_dot_rows(w->type, (const char *)w->data + (size_t)o0 * w->row_bytes, w->row_bytes, o1 - o0,
                                x, w->n_in, nt, w->n_in, job->y + t0 * w->n_out + o0, w->n_out);
        }
    }
}

/* The integer path: the same blocking over already quantized activation rows. */
static void matmul_rows_q8(void *arg, int ith, int nth) {
    const matmul_job *job = arg;
    const meshlm_matrix *w = job->w;
    long lo, hi, rows;
    int64_t toks;
    meshlm_split_range((long)w->n_out, ith, nth, &lo, &hi);
    block_sizes(w->row_bytes, job->act_row, &rows, &toks);
    for (long o0 = lo; o0 < hi; o0 += rows) {
        long o1 = o0 + rows < hi ? o0 + rows : hi;
        for (int64_t t0 = 0; t0 < job->n_tok; t0 += toks) {
            int64_t nt = job->n_tok - t0 < toks ? job->n_tok - t0 : toks;
            meshlm_vec_qdot_rows(w->type, (const char *)w->data + (size_t)o0 * w->row_bytes, w->row_bytes, o1 - o0,
                                 job->act + (size_t)t0 * job->act_row, job->act_row, w->n_in, nt,
                                 job->y + t0 * w->n_out + o0, w->n_out);
        }
    }
}

/* Each thread quantizes its share of the activation rows. */
static void quantize_rows(void *arg, int ith, int nth) {
    const matmul_job *job = arg;
    const meshlm_matrix *w = job->w;
    long lo, hi;
    meshlm_split_range((long)job->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        meshlm_quantize_act(w->type, job->x + t * w->n_in, job->act + (size_t)t * job->act_row, w->n_in);
}

/* Quantized activations of the largest row any weight type needs for n_in values. */
static size_t act_row_max(int64_t n_in) {
    int64_t n = (n_in + MESHLM_ACT_ALIGN - 1) / MESHLM_ACT_ALIGN * MESHLM_ACT_ALIGN;
    size_t a = meshlm_act_row_bytes(MESHLM_TYPE_Q8_0, n), b = meshlm_act_row_bytes(MESHLM_TYPE_Q4_K, n);
    return a > b ? a : b;
}

int meshlm_matmul_reserve(meshlm_pool *pool, int64_t max_tok, int64_t max_n_in) {
    if (max_tok < 1 || max_n_in < 1 || max_n_in > ((int64_t)1 << 40) ||
        (size_t)max_tok > SIZE_MAX / act_row_max(max_n_in))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "matmul scratch: %lld tokens of %lld values is out of range",
                           (long long)max_tok, (long long)max_n_in);
    return meshlm_pool_reserve_scratch(pool, (size_t)max_tok * act_row_max(max_n_in));
}

void meshlm_matmul(meshlm_pool *pool, const meshlm_matrix *w, const float *x, int64_t n_tok,
                   float *y) {
    matmul_job job = {w, x, n_tok, y, NULL, meshlm_act_row_bytes(w->type, w->n_in)};
    if (job.act_row && n_tok > 0) {
        size_t need = job.act_row * (size_t)n_tok;
        void *own = NULL;
        job.act = pool ? meshlm_pool_scratch(pool, need) : (own = malloc(need));
        if (job.act) {
            if (n_tok > 1)
                meshlm_pool_run(pool, quantize_rows, &job);
            else
                meshlm_quantize_act(w->type, x, job.act, w->n_in);
            meshlm_pool_run(pool, matmul_rows_q8, &job);
            free(own);
            return;
        }
    }
    meshlm_pool_run(pool, matmul_rows, &job);
}

void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out) {
    meshlm_dequantize_row(w->type, (const char *)w->data + (size_t)id * w->row_bytes, out, w->n_in);
}

/* Element-wise and row operations of a transformer layer, in their plain f32 forms. */
#ifndef MESHLM_CORE_OPS_H
#define MESHLM_CORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"

/* y = x / sqrt(mean(x^2) + eps) * w; w may be NULL (no scale). y may alias x. */
void meshlm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/* In place: x = exp(x - max) / sum. */
void meshlm_softmax(float *x, int64_t n);

/* In place: g = silu(g) * u, silu(v) = v / (1 + e^-v). */
void meshlm_silu_mul(float *g, const float *u, int64_t n);

/* y += x. */
void meshlm_add(float *y, const float *x, int64_t n);

/* Rotary position embedding. "normal" rotates adjacent pairs (x[2i], x[2i+1]) as GGUF's
 * llama layout expects; "neox" rotates (x[i], x[i + n_rot/2]) as Qwen does. Only the
 * first n_rot dimensions of each head rotate. freq_factors (llama3 rope scaling, n_rot/2
 * values) divide each pair's frequency. */
typedef struct meshlm_rope {
    int head_dim, n_rot;
    bool neox;
    double inv_freq[512]; /* per rotated pair: theta_base^(-2i/n_rot) / factor_i */
} meshlm_rope;

int meshlm_rope_init(meshlm_rope *r, int head_dim, int n_rot, bool neox, double theta_base,
                     const float *freq_factors);
/* Rotates n_heads consecutive heads of x for position pos. */
void meshlm_rope_apply(const meshlm_rope *r, float *x, int n_heads, int64_t pos);

/* A weight matrix of n_out rows of n_in values each, stored row after row in type. */
typedef struct meshlm_matrix {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_bytes;
} meshlm_matrix;

/* y[t][o] = row o of w . x[t], for t < n_tok (x is n_tok x n_in, y is n_tok x n_out).
 * Output rows are split across the pool's threads; with several tokens, blocks of rows
 * and tokens are sized to stay in L2 and each block of a row is decoded once for many
 * tokens, with per-token arithmetic identical to meshlm_vec_dot: a row's result does not
 * depend on n_tok, the blocking or the thread count (bitwise). */
void meshlm_matmul(meshlm_pool *pool, const meshlm_matrix *w, const float *x, int64_t n_tok,
                   float *y);

/* Row id of w, dequantized into out[0..n_in). */
void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out);

#endif

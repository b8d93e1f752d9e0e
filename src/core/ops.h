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
 * tokens. For the types of the integer path (core/quant.h: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K) each x[t] is first quantized to int8 blocks (in the pool's scratch,
 * split across the threads when n_tok > 1) and y is meshlm_vec_qdot of it; the other types
 * use meshlm_vec_dot on f32 x. Either way a row's result does not depend on n_tok, the
 * blocking, the thread count or the CPU path (bitwise). Only if the scratch cannot grow
 * (out of memory) do the integer types fall back to the f32 dots. */
void meshlm_matmul(meshlm_pool *pool, const meshlm_matrix *w, const float *x, int64_t n_tok,
                   float *y);

/* Reserves the pool's scratch for matmuls of up to max_tok tokens of up to max_n_in
 * inputs, any type, so that meshlm_matmul allocates nothing afterwards (it grows the
 * scratch itself when a call needs more). Call once after creating the pool. */
int meshlm_matmul_reserve(meshlm_pool *pool, int64_t max_tok, int64_t max_n_in);

/* Row id of w, dequantized into out[0..n_in). */
void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out);

#endif

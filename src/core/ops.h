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

/* In place: gpt-oss's clamped SwiGLU, g = v / (1 + e^(-1.702 v)) * (w + 1) with
 * v = min(g, 7) and w = u clamped to [-7, 7]; the same bits on every path and for any n. */
void meshlm_swiglu_oai_mul(float *g, const float *u, int64_t n);

/* In place: g = gelu(g) * u, with gelu's tanh form,
 * gelu(v) = v / 2 * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 v^3))); the same bits on every
 * path and for any n, as meshlm_silu_mul. */
void meshlm_gelu_mul(float *g, const float *u, int64_t n);

/* In place: x = cap * tanh(x / cap), a smooth bound on |x| (logit soft-capping); the same
 * bits on every path and for any n. */
void meshlm_softcap(float *x, int64_t n, float cap);

/* y += x. */
void meshlm_add(float *y, const float *x, int64_t n);

/* Rotary position embedding. "normal" rotates adjacent pairs (x[2i], x[2i+1]) as GGUF's
 * llama layout expects; "neox" rotates (x[i], x[i + n_rot/2]) as Qwen does. Only the
 * first n_rot dimensions of each head rotate. freq_factors (llama3 rope scaling, n_rot/2
 * values) divide each pair's frequency; linear (linear rope scaling, 1 = none) divides
 * every frequency, as dividing the positions would. mscale (1 after init) multiplies the
 * cos and sin, as LongRoPE's attention factor does. */
typedef struct meshlm_rope {
    int head_dim, n_rot;
    bool neox;
    float mscale;
    double inv_freq[512]; /* per rotated pair: theta_base^(-2i/n_rot) / factor_i */
} meshlm_rope;

int meshlm_rope_init(meshlm_rope *r, int head_dim, int n_rot, bool neox, double theta_base,
                     const float *freq_factors, double linear);
/* YaRN (rope scaling "yarn"), applied to a rope initialized unscaled with base theta_base:
 * each pair's frequency moves from the extrapolated one (pairs that turn many times within
 * n_ctx_orig positions) to the interpolated one (divided by factor) along a linear ramp
 * between the pairs that turn beta_fast and beta_slow times, and cos and sin grow by
 * attn_factor * (1 + 0.1 ln factor), as llama.cpp computes them. */
int meshlm_rope_yarn(meshlm_rope *r, double theta_base, double factor, int32_t n_ctx_orig, double beta_fast,
                     double beta_slow, float attn_factor);
/* The angles of position pos: cs[i] the cos of pair i, cs[n_rot / 2 + i] its sin, both
 * times mscale (n_rot floats). A step takes them once per row for all its layers and heads. */
void meshlm_rope_angles(const meshlm_rope *r, int64_t pos, float *cs);
/* Rotates n_heads consecutive heads of x by the angles cs of meshlm_rope_angles. */
void meshlm_rope_rotate(const meshlm_rope *r, float *x, int n_heads, const float *cs);
/* Both: n_heads consecutive heads of x rotated for position pos. */
void meshlm_rope_apply(const meshlm_rope *r, float *x, int n_heads, int64_t pos);

/* A weight matrix of n_out rows of n_in values each, stored row after row in type, or in
 * panels of 16 rows (core/panel.h; row_bytes is then each row's share of the bytes). */
typedef struct meshlm_matrix {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_bytes;
    bool panels;
} meshlm_matrix;

/* How a plan runs its matmuls: the activation precision and the cache blocking of its mode.
 * Blocking only decides which results are computed when, never how, so any two configs with
 * the same f32_act give bitwise equal results. */
typedef struct meshlm_matmul_cfg {
    bool f32_act;           /* f32 activations for the integer-path types too (accuracy) */
    size_t row_block_bytes; /* weight bytes per block of rows, with several tokens */
    size_t tok_block_bytes; /* activation bytes per group of tokens against one block */
} meshlm_matmul_cfg;

/* Int8 activations, blocks of 128 KiB of rows against 256 KiB of tokens (a core's L2 on
 * the machines we measure). */
meshlm_matmul_cfg meshlm_matmul_cfg_default(void);

/* y[t][o] = row o of w . x[t], for t < n_tok (x is n_tok x n_in, y is n_tok x n_out).
 * Output rows are split across the pool's threads; with several tokens, blocks of rows
 * and tokens (cfg) stay in L2 and each block of a row is decoded once for many tokens.
 * For the types of the integer path (core/quant.h: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 * Q5_K, Q6_K) each x[t] is first quantized to int8 blocks (in the pool's scratch, split
 * across the threads when n_tok > 1) and y is meshlm_vec_qdot of it, unless cfg->f32_act;
 * the other types use meshlm_vec_dot on f32 x. Either way a row's result does not depend on
 * n_tok, the blocking, the thread count or the CPU path (bitwise). Only if the scratch
 * cannot grow (out of memory) do the integer types fall back to the f32 dots. cfg NULL =
 * meshlm_matmul_cfg_default(). */
void meshlm_matmul_ex(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *w, const float *x,
                      int64_t n_tok, float *y);
void meshlm_matmul(meshlm_pool *pool, const meshlm_matrix *w, const float *x, int64_t n_tok, float *y);

/* The fused forms. Each output element is computed exactly as meshlm_matmul_ex computes it,
 * so they are bitwise equal to their generic sequences; what they save is passes over the
 * input and memory. */

/* y[i] = w[i] . x for n_w matrices of the same n_in (QKV): the input is quantized once for
 * all matrices sharing an activation format, and one parallel pass covers every row of
 * every matrix. */
void meshlm_matmul_multi(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *const *w, int n_w,
                         const float *x, int64_t n_tok, float *const *y);

/* gate = w1 . x and up = w3 . x in one pass over x (w1 and w3 of one shape); with epilogue,
 * each thread then applies gate = silu(gate) * up to the block of rows it just computed,
 * while it is still in cache: the same result as meshlm_silu_mul afterwards. */
void meshlm_matmul_w13(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, const meshlm_matrix *w1,
                       const meshlm_matrix *w3, const float *x, int64_t n_tok, float *gate, float *up, bool epilogue);

/* One input prepared for matmuls: x and, for the integer path, its int8 rows (in the
 * pool's scratch: valid until the next matmul on this pool). The pieces the fused model
 * ops (model/exec.c) build their own passes from. */
typedef struct meshlm_matmul_in {
    const float *x;
    int64_t n_tok, n_in;
    int act_type;        /* the weight type the rows were quantized for */
    int act_block;       /* its meshlm_act_block, 0 = no int8 rows */
    const uint8_t *act;  /* n_tok rows of act_row bytes, or NULL */
    size_t act_row;
    meshlm_matmul_cfg cfg;
} meshlm_matmul_in;

/* Prepares x (n_tok x n_in) for matrices of type (quantizing on the pool's threads). */
void meshlm_matmul_prepare(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, int type, const float *x,
                           int64_t n_tok, int64_t n_in, meshlm_matmul_in *in);

/* As meshlm_matmul_prepare, with the int8 rows in own (meshlm_matmul_act_bytes of them)
 * rather than the pool's scratch, so that several inputs can be ready at once. */
void meshlm_matmul_prepare_own(meshlm_pool *pool, const meshlm_matmul_cfg *cfg, int type, const float *x,
                               int64_t n_tok, int64_t n_in, void *own, meshlm_matmul_in *in);
/* Bytes of int8 rows n_tok tokens of n_in values need for weights of any type (an upper
 * bound, as meshlm_matmul_reserve uses). */
size_t meshlm_matmul_act_bytes(int64_t n_tok, int64_t n_in);

/* Rows [lo, hi) of y = w . x for every token of in, on the calling thread, blocked by
 * in->cfg; y is n_tok x w->n_out. Uses in's int8 rows when w's type shares their format. */
void meshlm_matmul_rows(const meshlm_matmul_in *in, const meshlm_matrix *w, long lo, long hi, float *y);

/* Reserves the pool's scratch for matmuls of up to max_tok tokens of up to max_n_in
 * inputs, any type, so that meshlm_matmul allocates nothing afterwards (it grows the
 * scratch itself when a call needs more). Call once after creating the pool. */
int meshlm_matmul_reserve(meshlm_pool *pool, int64_t max_tok, int64_t max_n_in);

/* Row id of w, dequantized into out[0..n_in). */
void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out);

#endif

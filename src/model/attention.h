/* Causal attention over the paged KV cache, for a step of rows from many sequences.
 *
 * Each (row, head) attends to positions 0..pos of its own sequence, or with a window W to
 * the last W of them (pos - W + 1..pos); pieces wholly before the window are not read. A
 * score is scale * q . k, then cap * tanh(score / cap) with a soft-cap. A head's sink (if
 * any) is one more score in the softmax's sum that brings no value, so the weights of the
 * positions may sum to less than one. The positions are cut
 * into fixed pieces of MESHLM_ATTN_PIECE ([0, P), [P, 2P), ...: absolute positions, so the
 * cut depends on nothing but pos). Within a piece the scores are computed, their maximum
 * taken, and exp-weights and values summed, in the order core/attn.h fixes (the same on the
 * scalar and AVX2 paths); the pieces' (max, sum, weighted values) are then folded in piece
 * order with the usual rescaling. The query heads that share a KV head go through each
 * piece together, so its rows are decoded once for all of them; a thread takes a span of a
 * row's heads over several KV heads, a few positions at a time, so it reads each position's
 * K/V bytes in address order. That fixed arithmetic is the contract: a row's output is
 * bitwise the same whatever other rows share the step, however its sequence's prompt was
 * chunked, and whatever the thread count, whether a (row, head) is computed by one thread
 * or its pieces are spread over several (flash-decoding, used when there are too few
 * (row, head) pairs to keep the threads busy). */
#ifndef MESHLM_MODEL_ATTENTION_H
#define MESHLM_MODEL_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"
#include "model/kv_paged.h"

#define MESHLM_ATTN_PIECE 256

/* One query row: a token of seq at position pos (its own K/V already written there). */
typedef struct meshlm_attn_row {
    const meshlm_kv_seq *seq;
    int32_t pos;
} meshlm_attn_row;

/* q and out are n_rows rows of q_dim (n_heads heads of head_dim, global head indices
 * head0..); query head h reads KV head (head0 + h) / group, which is head
 * ((head0 + h) / group - kv0) of the pool's kv_dim slice. */
typedef struct meshlm_attention_args {
    const meshlm_kv_pool *kv;
    int32_t layer;
    const meshlm_attn_row *rows;
    int32_t n_rows;
    const float *q;
    float *out;
    int n_heads, head0, group, kv0, head_dim;
    size_t q_dim;
    float scale;    /* multiplies q . k */
    float softcap;  /* 0 = none */
    int32_t window; /* 0 = every position */
    const float *sinks; /* per global head, a logit that joins the softmax with no value; or NULL */
    float *scratch; /* meshlm_attention_scratch_floats() floats */
} meshlm_attention_args;

/* Scratch for the split (flash-decoding) mode with n_threads threads and up to n_ctx
 * positions per sequence. */
size_t meshlm_attention_scratch_floats(int n_threads, int32_t n_ctx, int head_dim);

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a);

#endif

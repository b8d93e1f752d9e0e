/* The transformer forward pass on one device (1x1): a plan per mode (model/plan.h) run by
 * the executor (model/exec.h) over a 1x1 shard of the model. A step is a set of token rows
 * from any number of sequences (decode tokens and prefill chunks side by side), run through
 * every matmul as one matrix, so the weights are read once per step; each row attends over
 * its own sequence's pages of the paged KV cache (model/attention.h). A row's result never
 * depends on the other rows of its step, nor on the options (only f32_act and repacks change
 * arithmetic). */
#ifndef MESHLM_MODEL_FORWARD_H
#define MESHLM_MODEL_FORWARD_H

#include <stdint.h>

#include "core/pool.h"
#include "model/exec.h"
#include "model/model.h"
#include "model/options.h"

/* Everything a device's forward needs for steps of up to max_tok rows, made once: the 1x1
 * shard, the decode and prefill plans for the options, and the executor with its buffers
 * (allocated here when the options say persistent, so the decode loop allocates nothing).
 * n_ctx bounds the positions of a sequence (for the attention scratch). */
typedef struct meshlm_forward_buf {
    int32_t max_tok, n_ctx, n_threads;
    meshlm_shard sh;
    meshlm_plan plan[2]; /* indexed by meshlm_mode */
    meshlm_exec exec;
    int32_t *pos;
    meshlm_kv_seq **seqs;
    meshlm_rope rope[2]; /* meshlm_model_ropes() */
} meshlm_forward_buf;

/* opts NULL = the performance preset. With opts->stream, a thread streams each step's
 * weights toward the cache ahead of compute. */
int meshlm_forward_buf_init(meshlm_forward_buf *b, const meshlm_model *m, int32_t max_tok, int32_t n_ctx,
                            int32_t n_threads, const meshlm_opts *opts);
void meshlm_forward_buf_free(meshlm_forward_buf *b);

/* The model's two ropes for sequences of up to n_ctx positions: [0] for every layer (linear
 * scaling included; LongRoPE's long factors when n_ctx exceeds the original context, its
 * short ones otherwise, and its attention factor), [1] for the layers meshlm_layer_rope_swa()
 * picks (their own base, unscaled; a copy of [0] when there are none). */
int meshlm_model_ropes(const meshlm_model *m, int32_t n_ctx, meshlm_rope rope[2]);

/* Reserves the pool's matmul scratch (quantized activations) for steps of up to max_tok
 * rows of this model, so that no step allocates. */
int meshlm_forward_reserve(meshlm_pool *pool, const meshlm_model *m, int32_t max_tok);

/* KV pool params for the model on one device holding kv_heads KV heads. */
meshlm_kv_params meshlm_kv_params_for(const meshlm_model *m, int32_t kv_heads, int type, int32_t page_size,
                                      size_t mem_bytes);

/* Checks an eval before it runs: n > 0, positions pos..pos+n-1 inside n_ctx, every token
 * inside the vocabulary. Both the 1x1 and the mesh forward rely on it. */
int meshlm_forward_check(const meshlm_model *m, const int32_t *tokens, int32_t n, int32_t pos, int32_t n_ctx);

/* Runs one step (st->n <= b->max_tok rows); logits gets st->n_out rows of n_vocab. */
int meshlm_forward_step(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_forward_buf *b,
                        const meshlm_step *st, float *logits);

/* Before a sequence runs from pos: for a model whose every layer is windowed, pos 0 gives
 * back any pages of seq an earlier run dropped, and a pos whose window reaches dropped
 * positions is MESHLM_ERR_RANGE (their KV is gone; start again from 0). */
int meshlm_forward_window(const meshlm_model *m, meshlm_kv_pool *kv, meshlm_kv_seq *seq, int32_t pos);

/* One sequence: runs tokens[0..n) at positions pos..pos+n-1 of seq, reserving its pages,
 * and writes the logits of the last token (n_vocab floats). Long inputs run in steps of
 * b->max_tok; the result does not depend on that chunking. When every layer is windowed,
 * the pages no later position can see are dropped afterwards. */
int meshlm_forward(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_kv_seq *seq,
                   meshlm_forward_buf *b, const int32_t *tokens, int32_t n, int32_t pos, float *logits);

#endif

/* The transformer forward pass in its generic form: separate ops, f32 activations, one
 * device. Prefill runs a whole chunk of tokens matrix-shaped; decode is a chunk of one. */
#ifndef MESHLM_MODEL_FORWARD_H
#define MESHLM_MODEL_FORWARD_H

#include <stdint.h>

#include "core/pool.h"
#include "model/model.h"

/* Keys and values of every layer, position-major: k[((layer * n_ctx) + pos) * kv_dim]. */
typedef struct meshlm_kv_cache {
    int32_t n_ctx, n_layer, kv_dim;
    float *k, *v;
} meshlm_kv_cache;

/* kv_dim = KV heads held x head size (all of them on one device, a slice on a mesh). */
int meshlm_kv_cache_init(meshlm_kv_cache *kv, int32_t n_layer, int32_t kv_dim, int32_t n_ctx);
void meshlm_kv_cache_free(meshlm_kv_cache *kv);

/* Activations for up to max_tok tokens at once, allocated once so the decode loop
 * allocates nothing. */
typedef struct meshlm_forward_buf {
    int32_t max_tok, n_ctx, n_threads;
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *last;
    float *scores; /* n_threads rows of n_ctx */
    meshlm_rope rope;
} meshlm_forward_buf;

int meshlm_forward_buf_init(meshlm_forward_buf *b, const meshlm_model *m, int32_t max_tok, int32_t n_ctx,
                            int32_t n_threads);
void meshlm_forward_buf_free(meshlm_forward_buf *b);

/* Causal attention for n_tok new tokens at positions pos.. of n_heads query heads (global
 * indices head0..), whose KV heads are kv0.. in the cache layer (k, v: n_ctx rows of
 * kv_dim). q and out are n_tok rows of q_dim; scores holds pool-size rows of n_ctx. */
typedef struct meshlm_attention_args {
    const float *q;
    float *out;
    const float *k, *v;
    float *scores;
    int n_tok, pos, n_ctx;
    int n_heads, head0, group, kv0, head_dim;
    size_t q_dim, kv_dim;
} meshlm_attention_args;

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a);

/* Per-head RMS norm (qwen3; norm may be NULL) then rope, on n_tok rows of n_heads heads. */
void meshlm_qk_rope(const meshlm_rope *rope, const meshlm_hparams *hp, float *x, const float *norm, int n_heads,
                    int n_tok, int pos);

/* Checks an eval before it runs: n > 0, positions pos..pos+n-1 inside n_ctx, every token
 * inside the vocabulary. Both the 1x1 and the mesh forward rely on it. */
int meshlm_forward_check(const meshlm_model *m, const int32_t *tokens, int32_t n, int32_t pos, int32_t n_ctx);

/* Runs tokens[0..n) at positions pos..pos+n-1, writing their keys and values into kv, and
 * the logits of the last token into logits (n_vocab floats). Long inputs run in chunks
 * of b->max_tok; the result does not depend on the chunking. */
int meshlm_forward(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_cache *kv, meshlm_forward_buf *b,
                   const int32_t *tokens, int32_t n, int32_t pos, float *logits);

#endif

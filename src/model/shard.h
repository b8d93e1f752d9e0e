/* Tensor-parallel shards of a model over an R x C mesh (Megatron-style, 2-D as the seed's
 * Galaxy): axis A splits heads, the feed-forward width and the vocabulary; axis B splits
 * the other matrix dimension (the embedding width). A 1xC mesh uses its columns as A. */
#ifndef MESHLM_MODEL_SHARD_H
#define MESHLM_MODEL_SHARD_H

#include <stdint.h>

#include "core/ops.h"
#include "model/model.h"

typedef struct meshlm_range {
    int64_t lo, hi;
} meshlm_range;

/* Column-parallel weights (QKV, W1, W3, LM head) keep rows of this device's heads, ffn or
 * vocab slice and the columns k of the embedding width; row-parallel ones (WO, W2) keep
 * the rows e of the output width and the columns of this device's heads or ffn slice. */
typedef struct meshlm_shard_layer {
    meshlm_matrix wq, wk, wv, wo, w1, w2, w3;
    meshlm_range kq, kk, kv, k1, k3;
    const float *bq, *bk, *bv; /* slices of the model's biases, or NULL */
    /* With the attention split over B: Q, K and V rows of every B rank's heads in one matrix,
     * rank after rank (q heads, then k, then v), columns kq; and the biases in that order. */
    meshlm_matrix wqkv;
    const float *bqkv;
    /* Mixture-of-experts layers: this device's experts (meshlm_shard_experts), each cut to
     * the width exp_ff: gate and up rows, down columns. */
    meshlm_matrix *eg, *eu, *ed;
} meshlm_shard_layer;

typedef struct meshlm_shard {
    int axis_a, axis_b, n_a, n_b, a, b;
    meshlm_range heads, kv_heads, ffn, vocab, e;
    meshlm_range experts, exp_ff; /* MoE: the experts this device runs, and their width it holds */
    bool exp_down_bias;           /* ... and whether it adds their down biases (one device per expert) */
    meshlm_matrix embd; /* rows of the vocab slice, full width */
    meshlm_matrix lm_head;
    meshlm_range k_lm;
    meshlm_shard_layer *layers;
    /* The heads this device attends and their KV heads: the A slice's (heads, kv_heads), or,
     * with the attention split over B, this B rank's share of them. */
    meshlm_range att_heads, att_kv;
    bool split_att;
    int64_t *qkv_bounds; /* split: n_b + 1 column bounds of each B rank's part of wqkv's output */
    int64_t *att_bounds; /* split: n_b + 1 bounds of each B rank's heads in the A slice's q width */
    void **owned; /* column-sliced copies */
    int n_owned;
} meshlm_shard;

/* Splits n items into g near-equal chunks in units of `unit` items (the last unit may be
 * partial); chunk i may be empty when there are fewer units than chunks. */
meshlm_range meshlm_shard_split(int64_t n, int64_t unit, int g, int i);

/* Which axis splits heads for a rows x cols mesh (0 if rows > 1, else 1). */
int meshlm_shard_axis_a(int rows, int cols);

/* Computes device (a, b)'s ranges and weight views; copies column slices (call it on the
 * device's own thread, so the copies are first-touched there). */
int meshlm_shard_build(const meshlm_model *m, int axis_a, int n_a, int n_b, int a, int b, meshlm_shard *s);
void meshlm_shard_free(meshlm_shard *s);

/* The shard's Q8_0 and Q4_0 matrices (but the embedding, which is looked up by row)
 * repacked in panels of 16 rows where the CPU has the kernels for them (core/panel.h):
 * copies the shard owns, made on the calling thread, on huge pages (core/hugemem.h). Same
 * bits as the rows. */
int meshlm_shard_panels(const meshlm_model *m, meshlm_shard *s);

/* Cuts the mixture-of-experts layers over the mesh's n_a x n_b devices taken as one axis:
 * with expert_parallel, each device keeps a share of the experts whole; otherwise every
 * expert's width is split (as the dense FFN's). Either way a device's partial FFN output is
 * summed over the whole mesh. Nothing to do for a dense model. MESHLM_ERR_NOMEM. */
int meshlm_shard_experts(const meshlm_model *m, meshlm_shard *s, bool expert_parallel);

/* Splits the attention of a 2-D mesh's device over axis B (the seed's "each column keeps its
 * own"): B rank b attends its share of the A slice's query heads, with the KV heads they
 * read (a KV head is held by every rank one of its query heads goes to), and the layers get
 * the combined wqkv their reduce-scatter needs. Not for n_b = 1, nor when wq, wk and wv
 * differ in type or columns (MESHLM_ERR_UNSUPPORTED; the shard is unchanged). */
int meshlm_shard_split_attention(const meshlm_model *m, meshlm_shard *s);

#endif

/* A mixture-of-experts FFN on one device: each row's router scores, its chosen experts and
 * their weights, then this device's experts run over the rows that chose them, each
 * expert's weights streamed once per step however many rows chose it. */
#ifndef MESHLM_MODEL_MOE_H
#define MESHLM_MODEL_MOE_H

#include <stdint.h>

#include "core/ops.h"
#include "core/pool.h"
#include "model/model.h"

typedef struct meshlm_moe_args {
    meshlm_pool *pool;
    const meshlm_matmul_cfg *mm;
    const meshlm_hparams *hp;
    const meshlm_matrix *router;           /* n_expert outputs, every expert's score */
    const meshlm_matrix *gate, *up, *down; /* this device's experts (n_local each), maybe cut in width */
    int32_t first, n_local;                /* the model's id of gate[0], and how many */
    const float *x;                        /* n rows of n_embd: the normed input */
    const float *shexp_gate;               /* n_embd, or NULL: no shared expert */
    float *shexp_scale;                    /* n: sigmoid(x . shexp_gate) per row (with shexp_gate) */
    int32_t n;
    float *out;                            /* n rows of n_embd: this device's part of the sum */
    float *scores;                         /* scratch: n rows of n_expert */
    float *ein, *egu, *ey;                 /* scratch: n x n_embd, 2 x n x width, n x n_embd */
    int32_t *chosen;                       /* scratch: n rows of n_expert_used expert ids */
    float *weight;                         /* scratch: ... and their weights */
    int32_t *rows;                         /* scratch: n */
} meshlm_moe_args;

/* The routing of one row: the n_used highest of scores[0..n_expert) after a softmax (the
 * lower id first among equals), their probabilities renormalised to sum to 1 when norm. */
void meshlm_moe_route(const float *scores, int32_t n_expert, int32_t n_used, bool norm, int32_t *chosen,
                      float *weight);

/* out = the sum over each row's chosen experts held here of weight x expert(row), the
 * experts in id order (so a row's sum does not depend on the other rows). */
void meshlm_moe(const meshlm_moe_args *a);

#endif

/* A mixture-of-experts FFN on one device: each row's router scores, its chosen experts and
 * their weights, then this device's experts over the rows that chose them. The gate and up
 * matrices of every expert some row chose run as one pass of the threads, then their down
 * matrices as another, so each expert's weights stream once per step however many rows
 * chose it, and the threads stream from one expert into the next without waiting. */
#ifndef MESHLM_MODEL_MOE_H
#define MESHLM_MODEL_MOE_H

#include <stdint.h>

#include "core/ops.h"
#include "core/pool.h"
#include "mesh/mesh.h"
#include "model/model.h"

typedef struct meshlm_moe_args {
    meshlm_pool *pool;
    const meshlm_matmul_cfg *mm;
    const meshlm_hparams *hp;
    const meshlm_matrix *router;           /* n_expert outputs, every expert's score */
    const meshlm_matrix *gate, *up, *down; /* this device's experts (n_local each), maybe cut in width */
    int32_t first, n_local;                /* the model's id of gate[0], and how many */
    const float *x;                        /* n rows of n_embd: the normed input */
    int32_t n;
    const float *shexp_gate;               /* n_embd, or NULL: no shared expert */
    const float *router_b;                 /* n_expert, added to the scores; or NULL */
    /* The experts' biases, or NULL: gate and up n_expert x n_ff_exp (this device's width
     * starts at ff_lo), down n_expert x n_embd, added on this device when down_bias (once
     * over the devices that share an expert's width). */
    const float *gate_b, *up_b, *down_b;
    int64_t ff_lo;
    bool down_bias;
    float *shexp_scale;                    /* n: sigmoid(x . shexp_gate) per row (with shexp_gate) */
    float *out;                            /* n rows of n_embd: this device's part of the sum */
    /* Scratch, for n rows of n_expert_used choices each (sized by meshlm_exec_init). */
    float *scores;                         /* n x n_expert */
    float *ein, *egu, *ey;                 /* n x used rows of n_embd, of 2 x width, of n_embd */
    int32_t *chosen;                       /* n x used expert ids */
    float *weight;                         /* ... and their weights */
    int32_t *rows;                         /* n x used: each expert's rows, expert after expert */
    int32_t *start;                        /* n_local + 1: where each expert's rows begin */
    meshlm_matmul_in *in;                  /* n_local prepared inputs */
    uint8_t *act;                          /* meshlm_matmul_act_bytes(n x used, max(n_embd, width)) */
} meshlm_moe_args;

/* The routing of one row: the n_used highest of scores[0..n_expert) (the lower id first
 * among equals), weighted by their probabilities after a softmax over all the scores,
 * renormalised to sum to 1 when norm; or with softmax_k, by a softmax over the chosen. */
void meshlm_moe_route(const float *scores, int32_t n_expert, int32_t n_used, bool norm, bool softmax_k,
                      int32_t *chosen, float *weight);

/* out = the sum over each row's chosen experts held here of weight x expert(row), the
 * experts in id order (so a row's sum does not depend on the other rows). */
void meshlm_moe(const meshlm_moe_args *a);

/* Most experts per token, and most experts one device holds, the all-to-all combine takes. */
#define MESHLM_MOE_MAX_USED 64
#define MESHLM_MOE_MAX_LOCAL 4096

/* The expert-parallel combine over one mesh axis of n_dev devices, the experts split
 * among them as meshlm_shard_experts splits them (this device is rank). */
typedef struct meshlm_moe_a2a_args {
    meshlm_ccl *ccl;
    const meshlm_device *dev;
    int axis, n_dev, rank;
    float *send, *recv; /* n x n_expert_used rows of n_embd each */
    float *mine;        /* n rows of n_embd */
} meshlm_moe_a2a_args;

/* The tokens' results come back to their rows: the rows of a step are cut into n_dev
 * chunks (meshlm_ccl_chunk), each device runs its experts for every row that chose them and
 * an all-to-all takes each output to the device owning its row, which sums its rows'
 * experts in id order, exactly as meshlm_moe on one device; an all-gather then gives every
 * device all of out. The same bits as one device's meshlm_moe. */
int meshlm_moe_a2a(const meshlm_moe_args *a, const meshlm_moe_a2a_args *c);

#endif

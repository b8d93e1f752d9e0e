/* A forward pass as data. A plan is the ordered list of steps one device runs for a step of
 * token rows: each step a kernel or a collective, with its weights, its input columns, its
 * buffers and the bytes of weights it reads, fixed when the plan is built from (model,
 * shard, mode, options). The generic options give the seed's generic sequence (separate
 * ops, one collective per tensor); the performance options give fused steps. Both run on
 * one executor (model/exec.h) and compute every output element with the same kernels, so
 * they give the same tokens. Each device builds one plan per mode (decode, prefill). */
#ifndef MESHLM_MODEL_PLAN_H
#define MESHLM_MODEL_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "core/ops.h"
#include "model/model.h"
#include "model/options.h"
#include "model/shard.h"

typedef enum meshlm_mode { MESHLM_MODE_DECODE = 0, MESHLM_MODE_PREFILL = 1 } meshlm_mode;

/* The activation buffers of a step, laid end to end in this order for the step's row
 * count (so Q, K, V and GATE, UP are contiguous: one collective can cover them). LOGITS is
 * the caller's output, outside the arena. */
typedef enum meshlm_buf {
    MESHLM_BUF_X,      /* the residual stream, full width */
    MESHLM_BUF_XN,     /* normed rows, and row-parallel outputs */
    MESHLM_BUF_XS,     /* a column slice of XN (2-D meshes) */
    MESHLM_BUF_Q,
    MESHLM_BUF_K,
    MESHLM_BUF_V,
    MESHLM_BUF_ATT,    /* attention output, this device's heads */
    MESHLM_BUF_YS,     /* this device's slice of a row-parallel output (2-D meshes) */
    MESHLM_BUF_GATHER, /* the gathered slices (2-D meshes) */
    MESHLM_BUF_GATE,
    MESHLM_BUF_UP,
    MESHLM_BUF_RS,     /* a reduce-scatter's chunks of GATE and UP (2-D meshes) */
    MESHLM_BUF_LAST,   /* normed rows whose logits are wanted */
    MESHLM_BUF_QKV,    /* attention split over B: the combined QKV output of every B rank's heads */
    MESHLM_BUF_QKVS,   /* ... this rank's part of it, reduced */
    MESHLM_BUF_ATTF,   /* ... the A slice's attention output, gathered over B */
    MESHLM_BUF_MOE,    /* a mixture-of-experts FFN's output, this device's part of the sum */
    MESHLM_BUF_ROUTER, /* ... the router's scores, one per expert */
    MESHLM_BUF_EIN,    /* ... the normed rows of one expert's tokens */
    MESHLM_BUF_EGU,    /* ... their gate rows, then their up rows */
    MESHLM_BUF_EY,     /* ... that expert's output rows */
    MESHLM_BUF_SHGATE, /* ... each row's shared-expert gate, sigmoid(x . gate) */
    MESHLM_BUF_A2A,    /* ... the expert outputs an all-to-all brings to this device's rows */
    MESHLM_BUF_COUNT,
    MESHLM_BUF_LOGITS = MESHLM_BUF_COUNT,
} meshlm_buf;

typedef enum meshlm_op {
    MESHLM_OP_EMBED,         /* x = embedding rows (this device's vocab slice, zeros elsewhere) */
    MESHLM_OP_RMSNORM,       /* out = rmsnorm(in) * vec[0], per row */
    MESHLM_OP_MATMUL,        /* out = w[0] . in[:, k[0]] */
    MESHLM_OP_MATMUL_QKV,    /* fused: Q, K, V = w[0..3) . in, one pass over the input */
    MESHLM_OP_QKV_ROPE,      /* fused: per head, its Q or K/V rows, bias, q/k norm, rope, KV write */
    MESHLM_OP_BIAS,          /* out, out + 1, out + 2 += vec[0..3) per row (those given) */
    MESHLM_OP_ROPE_KV,       /* q/k norm and rope of Q and K, then K, V into the KV cache */
    MESHLM_OP_ATTENTION,     /* ATT = attention of Q over the rows' pages */
    MESHLM_OP_ALL_REDUCE,    /* n_buf consecutive buffers from `in`, summed over `axis` */
    MESHLM_OP_GATHER_CONCAT, /* YS slices of axis B gathered, then assembled into rows of out */
    MESHLM_OP_GATHER_ADD,    /* fused: the gathered YS slices added straight into X */
    MESHLM_OP_ADD,           /* X += in */
    MESHLM_OP_SILU_MUL,      /* GATE = silu(GATE) * UP */
    MESHLM_OP_GELU_MUL,      /* GATE = gelu(GATE) * UP (GeGLU) */
    MESHLM_OP_MATMUL_W13,    /* fused: GATE, UP = w[0], w[1] . in, one pass; epilogue: silu * mul */
    MESHLM_OP_RS_SILU_AG,    /* fused: reduce-scatter GATE, UP over B, silu (or gelu) * mul of the own chunk,
                              * all-gather GATE (in place of two all-reduces and a full silu) */
    MESHLM_OP_MATMUL_W13_RS, /* fused: W1 and W3 by column chunks, partners' chunks first, each B rank
                              * reducing its own chunk as the partners finish it, then silu (or gelu) * mul
                              * of the chunk and a column all-gather of GATE */
    MESHLM_OP_QKV_RS,        /* attention split over B: QKV = wqkv . in; reduce-scatter over B so each
                              * rank keeps its heads' q, k, v (into Q, K, V, bias added); with
                              * pipelined, fused into the matmul as MATMUL_W13_RS is */
    MESHLM_OP_GATHER_HEADS,  /* attention split over B: every rank's ATT gathered into ATTF, heads
                              * concatenated in order */
    MESHLM_OP_OUT_ROWS,      /* LAST = rmsnorm(rows out_rows of X) * vec[0] */
    MESHLM_OP_LM_HEAD,       /* LOGITS = w[0] . LAST[:, k[0]] for the output rows */
    MESHLM_OP_SOFTCAP,       /* LOGITS = cap * tanh(LOGITS / cap), once they are whole sums */
    MESHLM_OP_MOE,           /* MOE = the weighted sum of each row's chosen experts that this device
                              * holds (w[0] the router; the experts from the shard), to be summed
                              * over the mesh; with vec[0], SHGATE = each row's shared-expert gate */
    MESHLM_OP_SCALE_ROWS,    /* out[t] *= in[t], one factor per row (the shared expert's gate) */
    MESHLM_OP_MOE_A2A,       /* MOE whole on every device: this device's experts, their outputs taken
                              * to their rows' devices over axis (an all-to-all), summed there, and
                              * gathered (expert-parallel on a mesh with one axis of devices) */
    MESHLM_OP_COUNT,
} meshlm_op;

typedef struct meshlm_plan_step {
    meshlm_op op;
    int32_t layer;          /* -1 outside the layers */
    int8_t in, out, n_buf;  /* buffer ids (meshlm_buf) */
    int8_t axis;            /* collectives: the mesh axis */
    int8_t epilogue;        /* MATMUL_W13: silu * mul in the epilogue */
    int8_t pipelined;       /* QKV_RS: the reduce-scatter fused into the matmul */
    const meshlm_matrix *w[3];
    meshlm_range k[3];      /* the input columns each matrix reads */
    const float *vec[3];    /* norm weights or biases (may be NULL) */
    int32_t region;         /* index of w[0] in the plan's weight order (the prefetcher's), or -1 */
    uint64_t weight_bytes;  /* read by one run of the step */
} meshlm_plan_step;

typedef struct meshlm_plan {
    meshlm_mode mode;
    int32_t max_tok;           /* rows per step */
    meshlm_opts opts;
    meshlm_matmul_cfg mm;      /* activation precision and blocking of this mode */
    int axis_a, axis_b, n_a, n_b;
    int64_t width[MESHLM_BUF_COUNT + 1]; /* floats per row of each buffer (LOGITS: the vocab slice) */
    meshlm_plan_step *steps;
    int32_t n_steps, cap;
    int32_t n_regions;         /* matrices in weight order */
    uint64_t weight_bytes;     /* of one pass */
} meshlm_plan;

/* Builds device sh's plan for mode with steps of up to max_tok rows (sh is the device's
 * shard: meshlm_shard_build; 1x1 is a shard too). The plan points into m and sh, which
 * must outlive it. MESHLM_ERR_NOMEM. */
int meshlm_plan_build(const meshlm_model *m, const meshlm_shard *sh, meshlm_mode mode, int32_t max_tok,
                      const meshlm_opts *o, meshlm_plan *p);
void meshlm_plan_free(meshlm_plan *p);

/* Device (a, b)'s shard (meshlm_shard_build) laid out as the options want it: with fuse_ag
 * on a 2-D mesh, the attention split over B (meshlm_shard_split_attention; shapes that
 * cannot combine wq, wk and wv keep the unsplit form). */
int meshlm_plan_shard(const meshlm_model *m, int axis_a, int n_a, int n_b, int a, int b, const meshlm_opts *o,
                      meshlm_shard *s);

/* Floats of the arena for a step of n rows (every buffer but LOGITS). */
size_t meshlm_plan_arena_floats(const meshlm_plan *p, int32_t n);

/* The weights of the plan in the order its steps read them (n_regions entries of data and
 * bytes), for the prefetcher. */
int meshlm_plan_regions(const meshlm_plan *p, const void **data, size_t *bytes, int32_t cap);

/* Prints the plan: a header, then one line per step (index, op, layer, shapes, buffers,
 * weight type, bytes of weights read). */
void meshlm_plan_print(const meshlm_plan *p, FILE *f);

const char *meshlm_op_name(meshlm_op op);
const char *meshlm_mode_name(meshlm_mode mode);

#endif

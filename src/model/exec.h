/* The executor: runs a plan's steps (model/plan.h) for one step of token rows on one
 * device. Every device of a mesh walks the same steps in lockstep; a compute step splits
 * its rows among the device's threads, a collective synchronizes the device with its peers
 * on the step's axis. The 1x1 generic path is the same executor on a 1x1 shard. */
#ifndef MESHLM_MODEL_EXEC_H
#define MESHLM_MODEL_EXEC_H

#include <stdint.h>

#include "core/pool.h"
#include "core/prefetch.h"
#include "mesh/mesh.h"
#include "model/attention.h"
#include "model/kv_paged.h"
#include "model/plan.h"

/* One step: row i is token tokens[i] of sequence seqs[i] at position pos[i]. Positions
 * pos[i] must be reserved in seqs[i] (meshlm_kv_reserve), and every position below pos[i]
 * written by this or an earlier step; rows of one sequence come in position order. The
 * logits of rows out_rows[0..n_out) are wanted, in that order. */
typedef struct meshlm_step {
    int32_t n;
    const int32_t *tokens, *pos;
    meshlm_kv_seq *const *seqs;
    int32_t n_out;
    const int32_t *out_rows;
} meshlm_step;

/* Per-head RMS norm (qwen3; norm may be NULL) then rope (NULL: the layer has none) by the
 * row's angles cs (meshlm_rope_angles), on one row of n_heads heads. */
void meshlm_qk_rope(const meshlm_rope *rope, const meshlm_hparams *hp, float *x, const float *norm, int n_heads,
                    const float *cs);

typedef struct meshlm_exec {
    const meshlm_model *m;
    const meshlm_shard *sh;
    meshlm_pool *pool;
    meshlm_kv_pool *kv;
    const meshlm_rope *rope;    /* two: meshlm_model_ropes() */
    meshlm_ccl *ccl;            /* NULL on a 1x1 mesh */
    const meshlm_device *dev;   /* NULL on a 1x1 mesh */
    float *arena;               /* the persistent buffers, or NULL: allocated for each step */
    size_t arena_floats;
    float *attn_scratch;
    float *angles;              /* max_tok x 2 ropes x head_dim: each row's meshlm_rope_angles */
    meshlm_attn_row *rows;      /* max_tok entries */
    size_t *counts;             /* n_b gather counts (2-D meshes) */
    meshlm_range *e_all;        /* every B rank's output-width slice (2-D meshes) */
    meshlm_prefetch *stream;    /* the weight streamer walking the plan, or NULL */
    uint32_t stream_pass;
    uint64_t n_alloc;           /* allocations made by steps (non-persistent plans) */
    int32_t *moe_ids;           /* mixture of experts: 2 x max_tok x n_expert_used + n_expert + 1 ids, or NULL */
    float *moe_weights;         /* ... max_tok x n_expert_used routing weights */
    meshlm_matmul_in *moe_in;   /* ... n_expert prepared inputs */
    uint8_t *moe_act;           /* ... their int8 rows */
} meshlm_exec;

/* Sets up x for device sh with buffers for plans of up to max_tok rows: allocates the
 * persistent arena when persistent is set (else each step allocates its own), the
 * attention scratch for n_threads and n_ctx, and the gather tables. */
int meshlm_exec_init(meshlm_exec *x, const meshlm_model *m, const meshlm_shard *sh, const meshlm_plan *largest,
                     bool persistent, int32_t n_ctx, int n_threads);
void meshlm_exec_free(meshlm_exec *x);

/* Builds device sh's decode and prefill plans (plans[MESHLM_MODE_*]) for steps of up to
 * max_tok rows with options o, then meshlm_exec_init for them, then the streamer when
 * o->stream. On error nothing is left allocated. */
int meshlm_exec_setup(meshlm_exec *x, meshlm_plan *plans, const meshlm_model *m, const meshlm_shard *sh,
                      const meshlm_opts *o, int32_t max_tok, int32_t n_ctx, int n_threads);

/* Starts the streamer over the plan's weights (LINES mode, a window of two layers' worth,
 * cyclic), or returns an error naming why it could not. */
int meshlm_exec_stream(meshlm_exec *x, const meshlm_plan *p);

/* The plan of plans[0..2) (decode, prefill) for st: decode when every row is a decode
 * (wants its logits), else prefill. */
const meshlm_plan *meshlm_exec_pick(const meshlm_plan *plans, const meshlm_step *st);

/* Runs one step st through plan p; logits gets st->n_out rows of the
 * device's vocab slice. */
int meshlm_exec_step(meshlm_exec *x, const meshlm_plan *p, const meshlm_step *st, float *logits);

#endif

/* The part of a session that runs on a mesh of more than one device: the device
 * forwards, and the exchange of sampling candidates across the vocab shards. */
#ifndef MESHLM_RUNTIME_MESH_SESSION_H
#define MESHLM_RUNTIME_MESH_SESSION_H

#include <stdbool.h>

#include "mesh/mesh.h"
#include "model/forward.h"
#include "model/model.h"
#include "runtime/sampler.h"

typedef struct meshlm_mesh_session meshlm_mesh_session;

/* Sizes of a mesh session: positions per sequence, threads per device, rows per step, and
 * each device's KV pool (kv_pages pages on every device, so that page ids from one ledger
 * hold on all of them). max_out > 0 allocates the gather of max_out rows of full logits
 * for meshlm_mesh_session_step. */
typedef struct meshlm_mesh_config {
    int32_t n_ctx, n_threads, max_tok, max_out, page_size, kv_pages;
    int kv_type;
    bool full_logits;
    meshlm_opts opts; /* the devices' plan options */
} meshlm_mesh_config;

/* Starts the mesh and builds every device's shard on its own thread. The sampler (may be
 * NULL for steps only) is read, never written, by the devices while they pick candidates. */
int meshlm_mesh_session_create(const meshlm_model *m, int rows, int cols, const meshlm_ccl_options *opts,
                               const meshlm_mesh_config *cfg, const meshlm_sampler *sampler,
                               meshlm_mesh_session **out);
void meshlm_mesh_session_free(meshlm_mesh_session *ms);

/* Runs tokens at positions pos.. on every device; then the candidates of the last token
 * (and, with full_logits, every logit, into logits) are gathered. */
int meshlm_mesh_session_eval(meshlm_mesh_session *ms, const int32_t *tokens, int32_t n, int32_t pos, float *logits);

/* Runs one step of many sequences (forward.h; their page tables are shared by every
 * device) and writes st->n_out rows of full logits (n_vocab each) into logits. Over MPI
 * every rank gets them (each gathers the vocab slices), so every rank can run the same
 * scheduler and sample the same tokens. */
int meshlm_mesh_session_step(meshlm_mesh_session *ms, const meshlm_step *st, float *logits);

/* Heap allocations the devices' forward steps made so far, summed over this process's devices. */
uint64_t meshlm_mesh_session_step_allocs(const meshlm_mesh_session *ms);

/* Makes room in every device's candidate exchange for what sampler's parameters keep
 * (greedy keeps one a shard, top-k k), before a session switches to them; it never shrinks. */
int meshlm_mesh_session_reserve_candidates(meshlm_mesh_session *ms, const meshlm_sampler *sampler);

/* Exchanges the last eval's candidates again under the sampler's current parameters and
 * history (and, with full_logits, gathers its logits into logits again): no forward runs.
 * Over MPI every rank makes this call, like eval. */
int meshlm_mesh_session_refresh(meshlm_mesh_session *ms, float *logits);

/* The gathered candidates of the last eval, for meshlm_sampler_pick. */
meshlm_candidate *meshlm_mesh_session_candidates(meshlm_mesh_session *ms, int32_t *n);

#endif

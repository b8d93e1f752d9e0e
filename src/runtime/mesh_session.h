/* The part of a session that runs on a mesh of more than one device: the device
 * forwards, and the exchange of sampling candidates across the vocab shards. */
#ifndef MESHLM_RUNTIME_MESH_SESSION_H
#define MESHLM_RUNTIME_MESH_SESSION_H

#include <stdbool.h>

#include "mesh/mesh.h"
#include "model/model.h"
#include "runtime/sampler.h"

typedef struct meshlm_mesh_session meshlm_mesh_session;

/* Starts the mesh and builds every device's shard on its own thread. The sampler is read
 * (never written) by the devices while they pick their candidates. */
int meshlm_mesh_session_create(const meshlm_model *m, int rows, int cols, const meshlm_ccl_options *opts,
                               int32_t n_ctx, int32_t n_threads, bool full_logits, const meshlm_sampler *sampler,
                               meshlm_mesh_session **out);
void meshlm_mesh_session_free(meshlm_mesh_session *ms);

/* Runs tokens at positions pos.. on every device; then the candidates of the last token
 * (and, with full_logits, every logit, into logits) are gathered. */
int meshlm_mesh_session_eval(meshlm_mesh_session *ms, const int32_t *tokens, int32_t n, int32_t pos, float *logits);

/* The gathered candidates of the last eval, for meshlm_sampler_pick. */
meshlm_candidate *meshlm_mesh_session_candidates(meshlm_mesh_session *ms, int32_t *n);

#endif

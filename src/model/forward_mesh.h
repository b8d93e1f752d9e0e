/* The forward pass of one device of a mesh: its shard of every matmul, the collectives
 * between them, its slice of the KV cache. Every device of the mesh runs it in lockstep on
 * its own thread; the 1x1 generic path (forward.h) is the reference it is tested against. */
#ifndef MESHLM_MODEL_FORWARD_MESH_H
#define MESHLM_MODEL_FORWARD_MESH_H

#include <stdint.h>

#include "mesh/mesh.h"
#include "model/forward.h"
#include "model/shard.h"

typedef struct meshlm_mesh_fwd {
    meshlm_shard sh;
    meshlm_kv_pool *kv; /* this device's KV-head slice; same page count on every device */
    meshlm_kv_seq seq;  /* the single sequence of meshlm_mesh_forward */
    meshlm_rope rope[2]; /* meshlm_model_ropes() */
    meshlm_pool *pool;
    int32_t max_tok, n_ctx;
    meshlm_plan plan[2]; /* indexed by meshlm_mode */
    meshlm_exec exec;
    float *logits;       /* the vocab slice's logits of the output rows, one row after another */
} meshlm_mesh_fwd;

/* Builds the shard of device dev of a rows x cols mesh (copies first-touched by the
 * calling thread, which should be dev's own), its plans for the options (NULL = the
 * performance preset) and everything the forward needs: a KV pool of kv_pages pages of
 * page_size positions in kv_type for its KV heads (the same count on every device, so one
 * sequence's page ids are valid on all of them). */
int meshlm_mesh_fwd_init(meshlm_mesh_fwd *f, const meshlm_model *m, int rows, int cols, const meshlm_device *dev,
                         int32_t max_tok, int32_t n_ctx, int32_t n_threads, int kv_type, int32_t page_size,
                         int32_t kv_pages, const meshlm_opts *opts);
void meshlm_mesh_fwd_free(meshlm_mesh_fwd *f);

/* Runs one step (forward.h; the sequences' pages in f->kv) on this device; afterwards
 * f->logits holds st->n_out rows of this device's vocab slice (f->sh.vocab). */
int meshlm_mesh_forward_step(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                             const meshlm_step *st);

/* The single sequence f->seq: runs tokens at positions pos.. (reserving pages); f->logits
 * then holds the last token's logits. Long inputs run in chunks. */
int meshlm_mesh_forward(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                        const int32_t *tokens, int32_t n, int32_t pos);

#endif

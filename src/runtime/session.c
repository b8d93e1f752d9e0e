/* A session: one sequence, on one device (the 1x1 generic path: KV cache, activation
 * buffers and a thread pool of its own) or tensor-parallel on a mesh. Owns the logits, the
 * sampler and the tokens it has evaluated; everything is allocated at creation. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/pool.h"
#include "core/status.h"
#include "model/forward.h"
#include "runtime/mesh_session.h"
#include "runtime/sampler.h"

enum { PREFILL_CHUNK = 512, DEFAULT_CTX_CAP = 4096, PAGE_SIZE = 64 };

struct meshlm_session {
    const meshlm_model *model;
    meshlm_pool *pool;
    meshlm_kv_pool *kv;
    meshlm_kv_seq seq;
    meshlm_forward_buf buf;
    meshlm_sampler sampler;
    float *logits;
    int32_t *tokens; /* n_ctx: the ids at positions 0 .. pos - 1 */
    int32_t pos;
    int32_t held_from; /* positions below this left every layer's window and were dropped */
    meshlm_mesh_session *ms; /* NULL on a 1x1 mesh */
    int rows, cols;
    int32_t n_ctx;
    bool have_logits;
    bool fresh; /* the logits are those of position pos - 1 (no truncate or reset since) */
};

meshlm_session_params meshlm_session_defaults(void) {
    return (meshlm_session_params){.n_ctx = 0, .n_threads = 0, .sampler = meshlm_sampler_defaults(), .links = 1};
}

/* A session's pool holds exactly one sequence of n_ctx positions. */
static int kv_create(const meshlm_model *m, int32_t n_ctx, int type, meshlm_kv_pool **out) {
    meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, type, PAGE_SIZE, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * (size_t)((n_ctx + PAGE_SIZE - 1) / PAGE_SIZE);
    return meshlm_kv_pool_create(&kp, out);
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

meshlm_status meshlm_session_create(const meshlm_model *m, const meshlm_session_params *p, meshlm_session **out) {
    if (!m || !p || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_session_create: NULL argument");
    *out = NULL;
    int32_t n_ctx = p->n_ctx;
    if (n_ctx < 0 || n_ctx > m->hp.n_ctx_train)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "context size %d is outside [1, %d] (the model's training context)",
                           n_ctx, m->hp.n_ctx_train);
    /* Like llama.cpp's -c 0, but capped so a 128k model does not reserve its whole cache by default. */
    if (n_ctx == 0) n_ctx = m->hp.n_ctx_train < DEFAULT_CTX_CAP ? m->hp.n_ctx_train : DEFAULT_CTX_CAP;
    int rows = 1, cols = 1;
    meshlm_ccl_options ccl = {.topology = MESHLM_TOPOLOGY_LINEAR, .transport = MESHLM_TRANSPORT_THREADS,
                              .links = p->links > 0 ? p->links : 1, .staging_bytes = 4u << 20};
    int rc;
    if ((p->mesh && (rc = meshlm_mesh_parse(p->mesh, &rows, &cols))) ||
        (p->topology && (rc = meshlm_topology_parse(p->topology, &ccl.topology))))
        return (meshlm_status)rc;
    if (p->transport && strcmp(p->transport, "threads") != 0) {
        if (strcmp(p->transport, "mpi") != 0)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "transport '%s' is not one of: threads, mpi", p->transport);
        ccl.transport = MESHLM_TRANSPORT_MPI;
        ccl.timeout_s = meshlm_ccl_timeout(p->ccl_timeout);
    }
    int kv_type;
    meshlm_opts opts;
    if ((rc = meshlm_kv_type_parse(p->kv_type, &kv_type)) || (rc = meshlm_opts_make(p->opt, p->opt_set, &opts)))
        return (meshlm_status)rc;
    if (!p->topology) ccl.topology = opts.ring ? MESHLM_TOPOLOGY_RING : MESHLM_TOPOLOGY_LINEAR;
    bool on_mesh = rows * cols > 1 || ccl.transport == MESHLM_TRANSPORT_MPI;
    int n_threads = p->n_threads > 0 ? p->n_threads : on_mesh ? 1 : default_threads();
    meshlm_session *s = calloc(1, sizeof *s);
    if (!s) return meshlm_fail(MESHLM_ERR_NOMEM, "session: out of memory");
    s->model = m;
    s->rows = rows;
    s->cols = cols;
    s->n_ctx = n_ctx;
    s->have_logits = !on_mesh || p->full_logits;
    if ((rc = meshlm_sampler_init(&s->sampler, &p->sampler, m->hp.n_vocab)))
        goto fail;
    if (on_mesh)
        rc = meshlm_mesh_session_create(m, rows, cols, &ccl,
                                        &(meshlm_mesh_config){.n_ctx = n_ctx, .n_threads = n_threads,
                                                              .max_tok = PREFILL_CHUNK, .page_size = PAGE_SIZE,
                                                              .kv_pages = (n_ctx + PAGE_SIZE - 1) / PAGE_SIZE,
                                                              .kv_type = kv_type,
                                                              .full_logits = p->full_logits, .opts = opts},
                                        &s->sampler, &s->ms);
    else if (!(rc = meshlm_pool_create(n_threads, &s->pool)) && !(rc = kv_create(m, n_ctx, kv_type, &s->kv)) &&
             !(rc = meshlm_kv_seq_init(&s->seq, n_ctx, s->kv)) &&
             !(rc = meshlm_forward_buf_init(&s->buf, m, PREFILL_CHUNK, n_ctx, n_threads, &opts)))
        rc = meshlm_forward_reserve(s->pool, m, PREFILL_CHUNK);
    if (rc) goto fail;
    s->logits = calloc((size_t)m->hp.n_vocab, sizeof *s->logits);
    s->tokens = malloc((size_t)n_ctx * sizeof *s->tokens);
    if (!s->logits || !s->tokens) {
        rc = meshlm_fail(MESHLM_ERR_NOMEM, "session: out of memory for logits");
        goto fail;
    }
    *out = s;
    return MESHLM_OK;
fail:
    meshlm_session_free(s);
    return (meshlm_status)rc;
}

void meshlm_session_free(meshlm_session *s) {
    if (!s) return;
    meshlm_mesh_session_free(s->ms);
    meshlm_pool_free(s->pool);
    meshlm_kv_seq_free(&s->seq);
    meshlm_kv_pool_free(s->kv);
    meshlm_forward_buf_free(&s->buf);
    meshlm_sampler_free(&s->sampler);
    free(s->logits);
    free(s->tokens);
    free(s);
}

meshlm_status meshlm_mpi_start(int *argc, char ***argv, int *rank, int *size) {
    int rc = meshlm_mpi_init(argc, argv);
    if (!rc) rc = meshlm_mpi_world(rank, size);
    return (meshlm_status)rc;
}

meshlm_status meshlm_mpi_stop(void) { return (meshlm_status)meshlm_mpi_finalize(); }

/* The sampler's penalty history as if the session had only ever seen tokens[0..pos): the
 * last repeat_last_n of them, oldest first. */
static void rebuild_history(meshlm_session *s) {
    meshlm_sampler_reset(&s->sampler);
    int32_t keep = s->sampler.params.repeat_last_n, from = s->pos > keep ? s->pos - keep : 0;
    for (int32_t i = from; i < s->pos; i++) meshlm_sampler_accept(&s->sampler, s->tokens[i]);
}

/* Evaluates at pos.. and records the tokens; on a failure inside the forward the history
 * goes back to the tokens held and the logits are stale. */
meshlm_status meshlm_session_eval(meshlm_session *s, const int32_t *tokens, int32_t n) {
    if (!s || !tokens) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_session_eval: NULL argument");
    /* Checked first: a refused call changes nothing, not even the freshness of the logits. */
    int rc = meshlm_forward_check(s->model, tokens, n, s->pos, s->n_ctx);
    if (rc) return (meshlm_status)rc;
    if (s->ms) {
        /* The shards penalize their candidates during eval, so the history must already
         * hold these tokens, as it does when the 1x1 path samples after eval. */
        for (int32_t i = 0; i < n; i++) meshlm_sampler_accept(&s->sampler, tokens[i]);
        rc = meshlm_mesh_session_eval(s->ms, tokens, n, s->pos, s->have_logits ? s->logits : NULL);
    } else {
        rc = meshlm_forward(s->model, s->pool, s->kv, &s->seq, &s->buf, tokens, n, s->pos, s->logits);
        if (!rc)
            for (int32_t i = 0; i < n; i++) meshlm_sampler_accept(&s->sampler, tokens[i]);
    }
    if (rc != MESHLM_OK) {
        /* Positions from pos on may hold part of this call: never read, rewritten by the next. */
        s->fresh = false;
        rebuild_history(s);
        return (meshlm_status)rc;
    }
    memcpy(s->tokens + s->pos, tokens, (size_t)n * sizeof *tokens);
    s->pos += n;
    s->fresh = true;
    /* The pages the forward dropped, on one device or on every device of a mesh alike:
     * those wholly below the next position's window. */
    int32_t window = meshlm_model_window(&s->model->hp), gone = (s->pos - window + 1) / PAGE_SIZE * PAGE_SIZE;
    if (window > 0 && gone > s->held_from) s->held_from = gone;
    return MESHLM_OK;
}

/* Starts over at position 0 with stale logits; one device's pages go back to the session's
 * own pool (the next eval takes them again), a mesh's devices keep theirs. */
void meshlm_session_reset(meshlm_session *s) {
    s->pos = 0;
    s->held_from = 0;
    s->fresh = false;
    if (s->kv) meshlm_kv_release(s->kv, &s->seq);
    meshlm_sampler_reset(&s->sampler);
}

/* Attention reads only the positions up to the row it computes, on one device and on a
 * mesh, so the rows past pos are never read before the next eval overwrites them; their
 * pages stay reserved (the cache holds a whole context anyway). A model whose every layer
 * is windowed may have dropped what the row at pos would see: then only 0 is possible. */
meshlm_status meshlm_session_truncate(meshlm_session *s, int32_t pos) {
    if (!s) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_session_truncate: NULL session");
    if (pos < 0 || pos > s->pos)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "truncate: position %d is outside [0, %d] (the session's position)",
                           pos, s->pos);
    int32_t window = meshlm_model_window(&s->model->hp);
    if (pos > 0 && pos < s->pos && s->held_from > 0 && pos - window + 1 < s->held_from)
        return meshlm_fail(MESHLM_ERR_RANGE,
                           "truncate: position %d sees back to %d, but positions below %d left every layer's window "
                           "and were dropped (truncate to 0 instead)",
                           pos, pos - window + 1, s->held_from);
    if (pos == 0) s->held_from = 0;
    s->pos = pos;
    s->fresh = false;
    rebuild_history(s);
    return MESHLM_OK;
}

/* The history a caller diffs a new prompt against (the array is the session's own). */
const int32_t *meshlm_session_tokens(const meshlm_session *s) { return s->tokens; }

/* New parameters, validated as at creation; the history is rebuilt from the tokens held
 * (so a longer repeat_last_n sees them too) and the seed restarts the random sequence. On a
 * mesh the shards chose their candidates at eval under the old parameters: the exchange
 * grows to what the new ones keep and, if there are logits to sample, runs again. */
meshlm_status meshlm_session_set_sampler(meshlm_session *s, const meshlm_sampler_params *p) {
    if (!s || !p) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_session_set_sampler: NULL argument");
    meshlm_sampler next;
    int rc = meshlm_sampler_init(&next, p, s->model->hp.n_vocab);
    if (!rc && s->ms) rc = meshlm_mesh_session_reserve_candidates(s->ms, &next);
    if (rc) {
        meshlm_sampler_free(&next);
        return (meshlm_status)rc;
    }
    /* In place: the mesh session holds a pointer to this sampler. */
    meshlm_sampler_free(&s->sampler);
    s->sampler = next;
    rebuild_history(s);
    if (s->ms && s->fresh && (rc = meshlm_mesh_session_refresh(s->ms, s->have_logits ? s->logits : NULL))) {
        s->fresh = false;
        return (meshlm_status)rc;
    }
    return MESHLM_OK;
}

const float *meshlm_session_logits(const meshlm_session *s) { return s->have_logits ? s->logits : NULL; }

void meshlm_session_mesh(const meshlm_session *s, int *rows, int *cols) {
    *rows = s->rows;
    *cols = s->cols;
}

int32_t meshlm_session_pos(const meshlm_session *s) { return s->pos; }

int32_t meshlm_session_n_ctx(const meshlm_session *s) { return s->n_ctx; }

/* Refuses stale logits (none yet, or truncated or reset since): they belong to no position.
 * A mesh's gathered candidates stay as the exchange left them. */
meshlm_status meshlm_session_sample(meshlm_session *s, int32_t *token) {
    if (!s || !token) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_session_sample: NULL argument");
    if (!s->fresh) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "no logits: evaluate a token first");
    if (s->ms) {
        /* pick reorders (and drops from) what it is given: a copy, so a second draw from
         * the same logits sees the same candidates, as it does on one device. */
        int32_t n;
        const meshlm_candidate *c = meshlm_mesh_session_candidates(s->ms, &n);
        memcpy(s->sampler.cand, c, (size_t)n * sizeof *c);
        *token = meshlm_sampler_pick(&s->sampler, s->sampler.cand, n);
    } else {
        *token = meshlm_sampler_sample(&s->sampler, s->logits);
    }
    return MESHLM_OK;
}

uint64_t meshlm_session_step_allocs(const meshlm_session *s) {
    return s->ms ? meshlm_mesh_session_step_allocs(s->ms) : s->buf.exec.n_alloc;
}

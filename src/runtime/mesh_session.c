#include "runtime/mesh_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/forward_mesh.h"

/* What one device owns besides its forward: its candidates, packed as (id, logit) float
 * pairs for the all-gather (ids below 2^24 are exact in a float), and the gather counts
 * (the candidates' counts follow the sampler's parameters at each exchange, within pack_cap). */
typedef struct device_state {
    meshlm_mesh_fwd fwd;
    meshlm_candidate *cand;
    float *pack, *gathered, *logits, *step_logits;
    size_t pack_cap; /* floats in pack and in gathered */
    size_t *cand_counts, *logit_counts, *step_counts;
    int status;
    char error[256];
} device_state;

/* With threads, one process holds every device. Under MPI each rank has its own session
 * and holds either one device (mpi_dev; a job of R*C ranks) or one row of C device threads
 * (a job of R ranks: nodes x cores); every rank samples the same token from the same
 * candidates. dev[] holds this process's devices, from global id first_id on. */
struct meshlm_mesh_session {
    const meshlm_model *model;
    const meshlm_sampler *sampler;
    meshlm_mesh *mesh; /* this process's device threads; NULL with one device per rank */
    meshlm_ccl *ccl;
    meshlm_device mpi_dev;
    int rows, cols, n_dev, first_id;
    device_state *dev;
    meshlm_mesh_config cfg;
    bool full_logits;
    meshlm_candidate *cand; /* gathered, for the sampler */
    int32_t n_cand;
    /* the current job */
    const int32_t *tokens;
    int32_t n_tokens, pos;
    float *out_logits;
    const meshlm_step *step;
};

/* Candidates shard i of axis A sends under sampler's parameters (none without a sampler). */
static int32_t slice_candidates(const meshlm_mesh_session *ms, const meshlm_sampler *sampler, const meshlm_shard *sh,
                                int i) {
    meshlm_range v = meshlm_shard_split(ms->model->hp.n_vocab, 1, sh->n_a, i);
    return sampler ? meshlm_sampler_n_candidates(sampler, (int32_t)(v.hi - v.lo)) : 0;
}

/* Sets d's gather counts for sampler's parameters; returns their total in floats. */
static size_t count_candidates(const meshlm_mesh_session *ms, const meshlm_sampler *sampler, device_state *d) {
    const meshlm_shard *sh = &d->fwd.sh;
    size_t total = 0;
    for (int i = 0; i < sh->n_a; i++) total += d->cand_counts[i] = 2 * (size_t)slice_candidates(ms, sampler, sh, i);
    return total;
}

static int alloc_exchange(meshlm_mesh_session *ms, device_state *d) {
    const meshlm_shard *sh = &d->fwd.sh;
    size_t total = 0;
    d->cand_counts = malloc((size_t)sh->n_a * sizeof *d->cand_counts);
    d->logit_counts = malloc((size_t)sh->n_a * sizeof *d->logit_counts);
    d->step_counts = malloc((size_t)sh->n_a * sizeof *d->step_counts);
    if (!d->cand_counts || !d->logit_counts || !d->step_counts)
        return meshlm_fail(MESHLM_ERR_NOMEM, "mesh session: out of memory");
    for (int i = 0; i < sh->n_a; i++) {
        meshlm_range v = meshlm_shard_split(ms->model->hp.n_vocab, 1, sh->n_a, i);
        d->logit_counts[i] = (size_t)(v.hi - v.lo);
    }
    total = count_candidates(ms, ms->sampler, d);
    size_t local = (size_t)(sh->vocab.hi - sh->vocab.lo);
    d->pack_cap = total ? total : 1;
    d->cand = malloc((local ? local : 1) * sizeof *d->cand);
    d->pack = malloc(d->pack_cap * sizeof(float));
    d->gathered = malloc(d->pack_cap * sizeof(float));
    d->logits = ms->full_logits ? malloc((size_t)ms->model->hp.n_vocab * sizeof(float)) : NULL;
    size_t step_floats = (size_t)ms->cfg.max_out * (size_t)ms->model->hp.n_vocab;
    d->step_logits = step_floats ? malloc(step_floats * sizeof(float)) : NULL;
    if (!d->cand || !d->pack || !d->gathered || (ms->full_logits && !d->logits) || (step_floats && !d->step_logits))
        return meshlm_fail(MESHLM_ERR_NOMEM, "mesh session: out of memory for candidates");
    return MESHLM_OK;
}

static void record(device_state *d, int rc) {
    d->status = rc;
    if (rc) snprintf(d->error, sizeof d->error, "%s", meshlm_last_error());
}

static device_state *state_of(meshlm_mesh_session *ms, const meshlm_device *dev) {
    return &ms->dev[dev->id - ms->first_id];
}

static void device_init(void *ctx, const meshlm_device *dev) {
    meshlm_mesh_session *ms = ctx;
    device_state *d = state_of(ms, dev);
    const meshlm_mesh_config *c = &ms->cfg;
    int rc = meshlm_mesh_fwd_init(&d->fwd, ms->model, ms->rows, ms->cols, dev, c->max_tok, c->n_ctx, c->n_threads,
                                  c->kv_type, c->page_size, c->kv_pages, &c->opts);
    if (!rc) rc = alloc_exchange(ms, d);
    record(d, rc);
}

/* Each shard's best candidates go around axis A; every device ends with the same list,
 * and the process's first device hands it to its session. */
static int exchange(meshlm_mesh_session *ms, device_state *d, const meshlm_device *dev) {
    const meshlm_shard *sh = &d->fwd.sh;
    int32_t local = (int32_t)(sh->vocab.hi - sh->vocab.lo);
    int32_t nc = meshlm_sampler_candidates(ms->sampler, d->fwd.logits, (int32_t)sh->vocab.lo, local, d->cand);
    for (int32_t i = 0; i < nc; i++) {
        d->pack[2 * i] = (float)d->cand[i].id;
        d->pack[2 * i + 1] = d->cand[i].logit;
    }
    size_t total = count_candidates(ms, ms->sampler, d);
    int rc = MESHLM_OK;
    if (sh->n_a > 1)
        rc = meshlm_ccl_all_gather(ms->ccl, dev, sh->axis_a, d->pack, d->gathered, total, d->cand_counts);
    else
        memcpy(d->gathered, d->pack, total * sizeof(float));
    if (!rc && ms->full_logits) {
        if (sh->n_a > 1)
            rc = meshlm_ccl_all_gather(ms->ccl, dev, sh->axis_a, d->fwd.logits, d->logits,
                                       (size_t)ms->model->hp.n_vocab, d->logit_counts);
        else
            memcpy(d->logits, d->fwd.logits, (size_t)ms->model->hp.n_vocab * sizeof(float));
    }
    if (rc || dev->id != ms->first_id) return rc;
    ms->n_cand = (int32_t)(total / 2);
    for (int32_t i = 0; i < ms->n_cand; i++)
        ms->cand[i] = (meshlm_candidate){(int32_t)d->gathered[2 * i], d->gathered[2 * i + 1], 0.0f};
    if (ms->full_logits) memcpy(ms->out_logits, d->logits, (size_t)ms->model->hp.n_vocab * sizeof(float));
    return MESHLM_OK;
}

static void device_eval(void *ctx, const meshlm_device *dev) {
    meshlm_mesh_session *ms = ctx;
    device_state *d = state_of(ms, dev);
    int rc = meshlm_mesh_forward(ms->model, &d->fwd, ms->ccl, dev, ms->tokens, ms->n_tokens, ms->pos);
    if (!rc) rc = exchange(ms, d, dev);
    record(d, rc);
}

/* The first device's failure, as this thread's error. */
static int collect(const meshlm_mesh_session *ms) {
    for (int i = 0; i < ms->n_dev; i++)
        if (ms->dev[i].status)
            return meshlm_fail(ms->dev[i].status, "device %d: %s", ms->first_id + i, ms->dev[i].error);
    return MESHLM_OK;
}

/* Threads: a mesh of every device. MPI: one device per rank when the job has R*C ranks,
 * else (R ranks) a row of device threads per rank. */
static int open_transport(meshlm_mesh_session *ms, const meshlm_ccl_options *opts) {
    int rc, rank = 0, size = 1;
    if (opts->transport != MESHLM_TRANSPORT_MPI) {
        if ((rc = meshlm_mesh_create(ms->rows, ms->cols, &ms->mesh)) || (rc = meshlm_ccl_create(ms->mesh, opts, &ms->ccl)))
            return rc;
    } else if ((rc = meshlm_mpi_world(&rank, &size))) {
        return rc;
    } else if (size == ms->rows * ms->cols) {
        if ((rc = meshlm_ccl_create_mpi(ms->rows, ms->cols, opts, &ms->mpi_dev, &ms->ccl))) return rc;
        ms->n_dev = 1;
        ms->first_id = ms->mpi_dev.id;
        return MESHLM_OK;
    } else if (size == ms->rows) {
        if ((rc = meshlm_ccl_create_hybrid(ms->rows, ms->cols, opts, &ms->mesh, &ms->ccl))) return rc;
    } else {
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "mesh %dx%d over MPI needs %d ranks (one device each) or %d (a row of %d threads each); "
                           "the job has %d", ms->rows, ms->cols, ms->rows * ms->cols, ms->rows, ms->cols, size);
    }
    ms->n_dev = meshlm_mesh_local_size(ms->mesh);
    ms->first_id = meshlm_mesh_first_id(ms->mesh);
    return MESHLM_OK;
}

int meshlm_mesh_session_create(const meshlm_model *m, int rows, int cols, const meshlm_ccl_options *opts,
                               const meshlm_mesh_config *cfg, const meshlm_sampler *sampler,
                               meshlm_mesh_session **out) {
    *out = NULL;
    meshlm_mesh_session *ms = calloc(1, sizeof *ms);
    if (!ms) return meshlm_fail(MESHLM_ERR_NOMEM, "mesh session: out of memory");
    *ms = (meshlm_mesh_session){.model = m, .sampler = sampler, .cfg = *cfg, .full_logits = cfg->full_logits,
                                .rows = rows, .cols = cols};
    int rc = open_transport(ms, opts);
    if (!rc) {
        ms->dev = calloc((size_t)ms->n_dev, sizeof *ms->dev);
        ms->cand = malloc((size_t)m->hp.n_vocab * sizeof *ms->cand);
        if (!ms->dev || !ms->cand) rc = meshlm_fail(MESHLM_ERR_NOMEM, "mesh session: out of memory");
    }
    if (!rc) {
        if (ms->mesh)
            meshlm_mesh_run(ms->mesh, device_init, ms);
        else
            device_init(ms, &ms->mpi_dev);
        rc = collect(ms);
    }
    if (rc) {
        meshlm_mesh_session_free(ms);
        return rc;
    }
    *out = ms;
    return MESHLM_OK;
}

void meshlm_mesh_session_free(meshlm_mesh_session *ms) {
    if (!ms) return;
    if (ms->dev) {
        for (int i = 0; i < ms->n_dev; i++) {
            device_state *d = &ms->dev[i];
            meshlm_mesh_fwd_free(&d->fwd);
            free(d->cand), free(d->pack), free(d->gathered), free(d->logits), free(d->step_logits);
            free(d->cand_counts), free(d->logit_counts), free(d->step_counts);
        }
        free(ms->dev);
    }
    meshlm_ccl_free(ms->ccl); /* before the mesh: a hybrid ccl uses it */
    meshlm_mesh_free(ms->mesh);
    free(ms->cand);
    free(ms);
}

int meshlm_mesh_session_eval(meshlm_mesh_session *ms, const int32_t *tokens, int32_t n, int32_t pos, float *logits) {
    ms->tokens = tokens;
    ms->n_tokens = n;
    ms->pos = pos;
    ms->out_logits = logits;
    if (ms->mesh)
        meshlm_mesh_run(ms->mesh, device_eval, ms);
    else
        device_eval(ms, &ms->mpi_dev);
    return collect(ms);
}

/* Every vocab slice's rows go around axis A; the first device lays them out as full rows. */
static void device_step(void *ctx, const meshlm_device *dev) {
    meshlm_mesh_session *ms = ctx;
    device_state *d = state_of(ms, dev);
    const meshlm_shard *sh = &d->fwd.sh;
    const meshlm_step *st = ms->step;
    int64_t V = ms->model->hp.n_vocab;
    int rc = meshlm_mesh_forward_step(ms->model, &d->fwd, ms->ccl, dev, st);
    size_t n_out = (size_t)st->n_out;
    if (!rc && n_out) {
        for (int i = 0; i < sh->n_a; i++) d->step_counts[i] = n_out * d->logit_counts[i];
        if (sh->n_a > 1)
            rc = meshlm_ccl_all_gather(ms->ccl, dev, sh->axis_a, d->fwd.logits, d->step_logits, n_out * (size_t)V,
                                       d->step_counts);
        else
            memcpy(d->step_logits, d->fwd.logits, n_out * (size_t)V * sizeof(float));
    }
    if (!rc && n_out && dev->id == ms->first_id) {
        const float *src = d->step_logits;
        for (int i = 0; i < sh->n_a; i++) {
            meshlm_range v = meshlm_shard_split(V, 1, sh->n_a, i);
            size_t w = (size_t)(v.hi - v.lo);
            for (size_t r = 0; r < n_out; r++) memcpy(ms->out_logits + r * (size_t)V + v.lo, src + r * w, w * sizeof(float));
            src += n_out * w;
        }
    }
    record(d, rc);
}

int meshlm_mesh_session_step(meshlm_mesh_session *ms, const meshlm_step *st, float *logits) {
    if (st->n_out > ms->cfg.max_out || st->n > ms->cfg.max_tok)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh step: %d rows, %d outputs (at most %d and %d)", st->n,
                           st->n_out, ms->cfg.max_tok, ms->cfg.max_out);
    ms->step = st;
    ms->out_logits = logits;
    if (ms->mesh)
        meshlm_mesh_run(ms->mesh, device_step, ms);
    else
        device_step(ms, &ms->mpi_dev);
    return collect(ms);
}

/* Grows one buffer of floats to cap, keeping the old one on failure. */
static int grow_floats(float **buf, size_t cap) {
    float *p = realloc(*buf, cap * sizeof(float));
    if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "mesh session: out of memory for %zu candidates", cap / 2);
    *buf = p;
    return MESHLM_OK;
}

/* Called between evals, when no device runs: every buffer of this process is ours to grow. */
int meshlm_mesh_session_reserve_candidates(meshlm_mesh_session *ms, const meshlm_sampler *sampler) {
    for (int i = 0; i < ms->n_dev; i++) {
        device_state *d = &ms->dev[i];
        const meshlm_shard *sh = &d->fwd.sh;
        size_t need = 0;
        for (int k = 0; k < sh->n_a; k++) need += 2 * (size_t)slice_candidates(ms, sampler, sh, k);
        if (need <= d->pack_cap) continue;
        int rc = grow_floats(&d->pack, need);
        if (!rc) rc = grow_floats(&d->gathered, need);
        if (rc) return rc;
        d->pack_cap = need;
    }
    return MESHLM_OK;
}

/* The devices' logits are still those of the last eval: only the exchange runs again. */
static void device_refresh(void *ctx, const meshlm_device *dev) {
    meshlm_mesh_session *ms = ctx;
    record(state_of(ms, dev), exchange(ms, state_of(ms, dev), dev));
}

int meshlm_mesh_session_refresh(meshlm_mesh_session *ms, float *logits) {
    ms->out_logits = logits;
    if (ms->mesh)
        meshlm_mesh_run(ms->mesh, device_refresh, ms);
    else
        device_refresh(ms, &ms->mpi_dev);
    return collect(ms);
}

meshlm_candidate *meshlm_mesh_session_candidates(meshlm_mesh_session *ms, int32_t *n) {
    *n = ms->n_cand;
    return ms->cand;
}

uint64_t meshlm_mesh_session_step_allocs(const meshlm_mesh_session *ms) {
    uint64_t n = 0;
    for (int i = 0; i < ms->n_dev; i++) n += ms->dev[i].fwd.exec.n_alloc;
    return n;
}

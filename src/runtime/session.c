/* A session: one sequence on one device (a 1x1 mesh). Owns the KV cache, the activation
 * buffers, the logits and the sampler, all allocated at creation. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/status.h"
#include "model/forward.h"
#include "runtime/sampler.h"

enum { PREFILL_CHUNK = 64, DEFAULT_CTX_CAP = 4096 };

struct meshlm_session {
    const meshlm_model *model;
    meshlm_pool *pool;
    meshlm_kv_cache kv;
    meshlm_forward_buf buf;
    meshlm_sampler sampler;
    float *logits;
    int32_t pos;
};

meshlm_session_params meshlm_session_defaults(void) {
    return (meshlm_session_params){.n_ctx = 0, .n_threads = 0, .sampler = meshlm_sampler_defaults()};
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
    int n_threads = p->n_threads > 0 ? p->n_threads : default_threads();
    meshlm_session *s = calloc(1, sizeof *s);
    if (!s) return meshlm_fail(MESHLM_ERR_NOMEM, "session: out of memory");
    s->model = m;
    int rc;
    if ((rc = meshlm_pool_create(n_threads, &s->pool)) || (rc = meshlm_kv_cache_init(&s->kv, &m->hp, n_ctx)) ||
        (rc = meshlm_forward_buf_init(&s->buf, m, PREFILL_CHUNK, n_ctx, n_threads)) ||
        (rc = meshlm_sampler_init(&s->sampler, &p->sampler, m->hp.n_vocab))) {
        meshlm_session_free(s);
        return (meshlm_status)rc;
    }
    s->logits = calloc((size_t)m->hp.n_vocab, sizeof *s->logits);
    if (!s->logits) {
        meshlm_session_free(s);
        return meshlm_fail(MESHLM_ERR_NOMEM, "session: out of memory for logits");
    }
    *out = s;
    return MESHLM_OK;
}

void meshlm_session_free(meshlm_session *s) {
    if (!s) return;
    meshlm_pool_free(s->pool);
    meshlm_kv_cache_free(&s->kv);
    meshlm_forward_buf_free(&s->buf);
    meshlm_sampler_free(&s->sampler);
    free(s->logits);
    free(s);
}

meshlm_status meshlm_session_eval(meshlm_session *s, const int32_t *tokens, int32_t n) {
    int rc = meshlm_forward(s->model, s->pool, &s->kv, &s->buf, tokens, n, s->pos, s->logits);
    if (rc != MESHLM_OK) return (meshlm_status)rc;
    for (int32_t i = 0; i < n; i++) meshlm_sampler_accept(&s->sampler, tokens[i]);
    s->pos += n;
    return MESHLM_OK;
}

const float *meshlm_session_logits(const meshlm_session *s) { return s->logits; }

int32_t meshlm_session_pos(const meshlm_session *s) { return s->pos; }

meshlm_status meshlm_session_sample(meshlm_session *s, int32_t *token) {
    if (s->pos == 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "sample: no tokens evaluated yet");
    *token = meshlm_sampler_sample(&s->sampler, s->logits);
    return MESHLM_OK;
}

/* The server's life: listen first (so /health can say it is loading), take the model and
 * batch when they are ready, and on a signal drain in-flight requests within a grace
 * period before stopping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/internal.h"

meshlm_status meshlm_srv_create(const srv_params *p, srv_server **out) {
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return MESHLM_ERR_NOMEM;
    s->p = *p;
    const char *slash = strrchr(p->model_path, '/');
    s->base = strdup(slash ? slash + 1 : p->model_path);
    s->name = strdup(p->alias ? p->alias : s->base ? s->base : "");
    if (!s->base || !s->name) {
        free(s->base);
        free(s->name);
        free(s);
        return MESHLM_ERR_NOMEM;
    }
    const char *dot = strrchr(s->base, '.');
    s->base_stem = dot && dot != s->base ? (size_t)(dot - s->base) : strlen(s->base);
    s->created = time(NULL);
    if (pthread_mutex_init(&s->e.snap_mu, NULL) != 0) {
        free(s->base);
        free(s->name);
        free(s);
        return MESHLM_ERR_NOMEM;
    }
    if (meshlm_srv_queue_init(&s->q, p->parallel + p->max_queue) != 0) {
        pthread_mutex_destroy(&s->e.snap_mu);
        free(s->base);
        free(s->name);
        free(s);
        return MESHLM_ERR_NOMEM;
    }
    if (meshlm_srv_http_start(s) != 0) {
        meshlm_srv_free(s);
        return MESHLM_ERR_IO;
    }
    *out = s;
    return MESHLM_OK;
}

meshlm_status meshlm_srv_ready(srv_server *s, meshlm_model *m, meshlm_batch *b, int32_t n_ctx) {
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_vocab = meshlm_model_n_vocab(m);
    meshlm_status rc = meshlm_chat_template_from_model(m, NULL, &s->tmpl);
    if (rc != MESHLM_OK) {
        meshlm_batch_free(b);
        return rc;
    }
    if (s->p.replicas) {
        s->log.timeout_s = s->p.replica_timeout_s;
        s->e.log = &s->log;
    }
    if (meshlm_srv_engine_start(&s->e, b, s->p.parallel, &s->q) != 0) {
        meshlm_batch_free(b);
        return MESHLM_ERR_NOMEM;
    }
    __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
    return MESHLM_OK;
}

void meshlm_srv_shutdown(srv_server *s) {
    if (!s) return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    meshlm_srv_http_quiesce(s);
    double t0 = meshlm_srv_now();
    while (meshlm_srv_queue_in_flight(&s->q) > 0 && meshlm_srv_now() - t0 < s->p.grace_s) usleep(20 * 1000);
    int32_t left = meshlm_srv_queue_in_flight(&s->q);
    if (left) fprintf(stderr, "meshlm serve: %d sequences still running after %d s: cancelled\n", left, s->p.grace_s);
    meshlm_srv_queue_stop(&s->q);
    if (s->e.started) meshlm_srv_engine_join(&s->e);
    meshlm_srv_http_drain(s, 2.0);
    meshlm_srv_http_stop(s);
}

bool meshlm_srv_mesh_lost(srv_server *s) { return s && __atomic_load_n(&s->e.broken, __ATOMIC_ACQUIRE); }

void meshlm_srv_free(srv_server *s) {
    if (!s) return;
    meshlm_srv_shutdown(s);
    if (s->e.b) meshlm_batch_free(s->e.b);
    meshlm_chat_template_free(s->tmpl);
    meshlm_srv_oplog_free(&s->log);
    meshlm_srv_queue_destroy(&s->q);
    pthread_mutex_destroy(&s->e.snap_mu);
    free(s->base);
    free(s->name);
    free(s);
}

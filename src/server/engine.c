/* The engine thread: the only one that touches the batch. Each turn it takes submitted
 * jobs, applies cancels, runs one step and publishes each job's new tokens, finished jobs
 * and a metrics snapshot. It never waits on a client: publishing is a copy under the
 * call's lock. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/internal.h"

/* Ends a job the batch never saw or can no longer run; the caller holds no lock. */
static void end_unsubmitted(srv_engine *e, srv_job *j, meshlm_finish f, const char *why, int status) {
    srv_call *c = j->call;
    pthread_mutex_lock(&c->mu);
    j->state = JOB_DONE;
    j->finish = f;
    if (why) {
        j->failed = true;
        j->fail_status = status;
        snprintf(c->error, sizeof c->error, "%s", why);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (f == MESHLM_FINISH_CANCELLED) e->live.success[SRV_REASON_ABORT]++;
    meshlm_srv_queue_finished(e->q, 1);
    meshlm_srv_call_unref(c);
}

/* A seed for a request that asked for none (splitmix64 over the clock and a counter). */
static uint64_t fresh_seed(srv_engine *e) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) + ++e->seeds * 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return z == UINT64_MAX ? 0 : z;
}

/* Submits the jobs taken from the queue; those cancelled while they waited are dropped. */
static void admit(srv_engine *e, srv_job *list, bool stopping) {
    while (list) {
        srv_job *j = list;
        list = j->next;
        pthread_mutex_lock(&j->call->mu);
        bool cancel = j->cancel || stopping;
        pthread_mutex_unlock(&j->call->mu);
        if (cancel) {
            end_unsubmitted(e, j, MESHLM_FINISH_CANCELLED, NULL, 0);
            continue;
        }
        if (e->n_active == e->cap_active) {
            int32_t cap = e->cap_active ? 2 * e->cap_active : 64;
            srv_job **grown = realloc(e->active, (size_t)cap * sizeof *grown);
            if (!grown) {
                end_unsubmitted(e, j, MESHLM_FINISH_NONE, "out of memory", 500);
                continue;
            }
            e->active = grown;
            e->cap_active = cap;
        }
        /* Every rank must draw the same tokens: a random seed is chosen here, once. */
        if (e->log && j->sp.seed == UINT64_MAX) j->sp.seed = fresh_seed(e);
        meshlm_status st = meshlm_batch_submit(e->b, j->prompt, j->n_prompt, &j->sp, j->n_predict, &j->id);
        if (st != MESHLM_OK) {
            end_unsubmitted(e, j, MESHLM_FINISH_NONE, meshlm_last_error(), st == MESHLM_ERR_RANGE ? 400 : 500);
            continue;
        }
        pthread_mutex_lock(&j->call->mu);
        j->state = JOB_RUNNING;
        pthread_cond_broadcast(&j->call->cv);
        pthread_mutex_unlock(&j->call->mu);
        if (e->log) meshlm_srv_oplog_submit(e->log, j->id, j->prompt, j->n_prompt, &j->sp, j->n_predict);
        e->active[e->n_active++] = j;
    }
}

static void cancel_job(srv_engine *e, int32_t id) {
    if (meshlm_batch_cancel(e->b, id) != MESHLM_OK)
        fprintf(stderr, "meshlm serve: cancel %d: %s\n", id, meshlm_last_error());
    else if (e->log)
        meshlm_srv_oplog_cancel(e->log, id);
}

/* Cancels the running jobs whose client left or whose stop string appeared (all of them
 * when the server stops), so their pages are free for the next step. */
static void apply_cancels(srv_engine *e, bool stopping) {
    for (int32_t i = 0; i < e->n_active; i++) {
        srv_job *j = e->active[i];
        pthread_mutex_lock(&j->call->mu);
        bool cancel = j->cancel || stopping;
        pthread_mutex_unlock(&j->call->mu);
        if (cancel) cancel_job(e, j->id);
    }
}

static int reason(const srv_job *j) {
    if (j->finish == MESHLM_FINISH_STOP || (j->finish == MESHLM_FINISH_CANCELLED && j->stop_hit))
        return SRV_REASON_STOP;
    return j->finish == MESHLM_FINISH_LENGTH ? SRV_REASON_LENGTH : SRV_REASON_ABORT;
}

/* Copies a job's new tokens to its call and records its timings; returns true when it
 * has finished (and has been released). */
static bool publish(srv_engine *e, srv_job *j, double now, bool failed) {
    meshlm_batch_result r;
    if (meshlm_batch_result_get(e->b, j->id, &r) != MESHLM_OK) {
        r = (meshlm_batch_result){.finish = MESHLM_FINISH_NONE};
        failed = true;
    }
    srv_call *c = j->call;
    int32_t n_new = r.n_gen - j->n_seen;
    if (n_new > 0) {
        if (!j->n_seen) {
            j->t_first = now;
            meshlm_srv_hist_observe(&e->live.hist[SRV_HIST_TTFT], now - c->t_arrival);
            double queued = now - c->t_arrival - r.prompt_ms * 1e-3;
            meshlm_srv_hist_observe(&e->live.hist[SRV_HIST_QUEUE], queued > 0 ? queued : 0);
            e->live.prompt_tokens += (uint64_t)r.n_prompt;
        } else {
            for (int32_t k = 0; k < n_new; k++)
                meshlm_srv_hist_observe(&e->live.hist[SRV_HIST_ITL], (now - j->t_last) / n_new);
        }
        j->t_last = now;
        e->live.generation_tokens += (uint64_t)n_new;
    }
    bool done = r.finish != MESHLM_FINISH_NONE || failed;
    pthread_mutex_lock(&c->mu);
    if (n_new > 0 && j->n_tokens + n_new > j->cap_tokens) {
        int32_t cap = j->cap_tokens ? j->cap_tokens : 64;
        while (cap < j->n_tokens + n_new) cap *= 2;
        int32_t *grown = realloc(j->tokens, (size_t)cap * sizeof *grown);
        if (grown) {
            j->tokens = grown;
            j->cap_tokens = cap;
        } else {
            failed = done = true;
            n_new = 0;
        }
    }
    if (n_new > 0) {
        memcpy(j->tokens + j->n_tokens, r.tokens + j->n_seen, (size_t)n_new * sizeof *r.tokens);
        j->n_tokens += n_new;
        j->n_seen = r.n_gen;
    }
    if (done) {
        j->state = JOB_DONE;
        j->finish = failed ? MESHLM_FINISH_NONE : r.finish;
        if (failed) {
            j->failed = true;
            j->fail_status = 500;
            snprintf(c->error, sizeof c->error, "the engine failed: %s", meshlm_last_error());
        }
    }
    int why = reason(j);
    if (n_new > 0 || done) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!done) return false;
    if (r.finish == MESHLM_FINISH_NONE) cancel_job(e, j->id);
    if (!j->t_first && (r.finish == MESHLM_FINISH_STOP || r.finish == MESHLM_FINISH_LENGTH))
        e->live.prompt_tokens += (uint64_t)r.n_prompt;
    e->live.success[why]++;
    meshlm_srv_hist_observe(&e->live.hist[SRV_HIST_E2E], now - c->t_arrival);
    if (meshlm_batch_release(e->b, j->id) != MESHLM_OK)
        fprintf(stderr, "meshlm serve: release %d: %s\n", j->id, meshlm_last_error());
    else if (e->log)
        meshlm_srv_oplog_release(e->log, j->id);
    meshlm_srv_queue_finished(e->q, 1);
    meshlm_srv_call_unref(c);
    return true;
}

static void publish_all(srv_engine *e, bool failed) {
    double now = meshlm_srv_now();
    int32_t kept = 0;
    for (int32_t i = 0; i < e->n_active; i++)
        if (!publish(e, e->active[i], now, failed)) e->active[kept++] = e->active[i];
    e->n_active = kept;
    /* The batch's own counts: running and waiting sequences exactly, free pages counting
     * cached prefixes no request holds (vLLM's usage), and the prefix cache's counters. */
    meshlm_batch_stats st = {0};
    meshlm_batch_stats_get(e->b, &st);
    int32_t queued = meshlm_srv_queue_in_flight(e->q) - e->n_active;
    e->live.running = st.requests_running;
    e->live.waiting = st.requests_waiting + (queued > 0 ? queued : 0);
    e->live.kv_usage = st.pages_total > 0 ? 1.0 - (double)(st.pages_free + st.pages_cached) / st.pages_total : 0.0;
    e->live.prefix_queries = (uint64_t)st.prefix_queries;
    e->live.prefix_hits = (uint64_t)st.prefix_hits;
    pthread_mutex_lock(&e->snap_mu);
    e->snap = e->live;
    pthread_mutex_unlock(&e->snap_mu);
}

/* Seconds between the heartbeats an idle engine sends the replicas under MPI. */
#define BEAT_S 1.0

/* The mesh failed: requests get errors from now on, and the process is asked to stop. */
static void mesh_lost(srv_engine *e) {
    fprintf(stderr, "meshlm serve: the mesh of ranks failed: answering 503 and stopping\n");
    __atomic_store_n(&e->broken, 1, __ATOMIC_RELEASE);
    kill(getpid(), SIGTERM);
}

static void *engine_main(void *arg) {
    srv_engine *e = arg;
    for (;;) {
        bool stopping = false;
        /* Under MPI an idle engine wakes each second to tell the replicas it is alive. */
        srv_job *list = meshlm_srv_queue_take(e->q, e->n_active == 0, e->log ? BEAT_S : 0, &stopping);
        if (!list && e->log && e->n_active == 0 && !stopping && !__atomic_load_n(&e->broken, __ATOMIC_ACQUIRE) &&
            meshlm_srv_oplog_beat(e->log) != MESHLM_OK)
            fprintf(stderr, "meshlm serve: ranks: %s\n", meshlm_last_error());
        admit(e, list, stopping);
        apply_cancels(e, stopping);
        bool broken = __atomic_load_n(&e->broken, __ATOMIC_ACQUIRE), failed = broken;
        if (e->n_active > 0 && !broken) {
            int32_t n_left = 0;
            /* The other ranks learn this turn's changes before they step with us. */
            if (e->log && meshlm_srv_oplog_send(e->log, false) != MESHLM_OK) {
                fprintf(stderr, "meshlm serve: ranks: %s\n", meshlm_last_error());
                failed = true;
            } else if (meshlm_batch_step(e->b, &n_left) != MESHLM_OK) {
                fprintf(stderr, "meshlm serve: step: %s\n", meshlm_last_error());
                failed = true;
            }
            /* Across ranks a failed step means a rank is lost: no later step can succeed. */
            if (failed && e->log) mesh_lost(e);
        }
        publish_all(e, failed);
        if (stopping && e->n_active == 0) break;
    }
    if (e->log && !__atomic_load_n(&e->broken, __ATOMIC_ACQUIRE) && meshlm_srv_oplog_send(e->log, true) != MESHLM_OK)
        fprintf(stderr, "meshlm serve: ranks: %s\n", meshlm_last_error());
    return NULL;
}

int meshlm_srv_engine_start(srv_engine *e, meshlm_batch *b, int32_t n_batch, srv_queue *q) {
    e->b = b;
    e->n_batch = n_batch;
    e->q = q;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        e->b = NULL;
        return -1;
    }
    e->started = true;
    return 0;
}

void meshlm_srv_engine_join(srv_engine *e) {
    if (!e->started) return;
    pthread_join(e->thread, NULL);
    free(e->active);
    e->active = NULL;
    e->started = false;
}

void meshlm_srv_engine_snapshot(srv_engine *e, srv_metrics *out) {
    pthread_mutex_lock(&e->snap_mu);
    *out = e->snap;
    pthread_mutex_unlock(&e->snap_mu);
}

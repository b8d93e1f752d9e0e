/* Where HTTP threads and the engine meet: calls and their jobs (reference-counted, since
 * either side may finish with a call first), and the submit queue with its limit. */
#include <stdlib.h>
#include <time.h>

#include "server/internal.h"

double meshlm_srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

srv_call *meshlm_srv_call_new(int32_t n_jobs) {
    srv_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!(c->jobs = calloc((size_t)n_jobs, sizeof *c->jobs))) {
        free(c);
        return NULL;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->jobs);
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c->jobs);
        free(c);
        return NULL;
    }
    c->n_jobs = n_jobs;
    c->refs = 1;
    c->t_arrival = meshlm_srv_now();
    for (int32_t i = 0; i < n_jobs; i++) c->jobs[i].call = c;
    return c;
}

void meshlm_srv_call_unref(srv_call *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left) return;
    for (int32_t i = 0; i < c->n_jobs; i++) {
        free(c->jobs[i].prompt);
        free(c->jobs[i].tokens);
    }
    free(c->jobs);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int meshlm_srv_queue_init(srv_queue *q, int32_t limit) {
    *q = (srv_queue){.limit = limit};
    if (pthread_mutex_init(&q->mu, NULL) != 0) return -1;
    if (pthread_cond_init(&q->cv, NULL) != 0) {
        pthread_mutex_destroy(&q->mu);
        return -1;
    }
    return 0;
}

void meshlm_srv_queue_destroy(srv_queue *q) {
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
}

int meshlm_srv_queue_push(srv_queue *q, srv_call *c) {
    pthread_mutex_lock(&q->mu);
    int rc = q->stop ? -2 : q->in_flight + c->n_jobs > q->limit ? -1 : 0;
    if (!rc) {
        pthread_mutex_lock(&c->mu);
        c->refs += c->n_jobs;
        pthread_mutex_unlock(&c->mu);
        for (int32_t i = 0; i < c->n_jobs; i++) {
            srv_job *j = &c->jobs[i];
            j->next = NULL;
            if (q->tail) q->tail->next = j;
            else q->head = j;
            q->tail = j;
        }
        q->in_flight += c->n_jobs;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void meshlm_srv_queue_cancel(srv_queue *q, srv_call *c, srv_job *only, bool stop_hit) {
    bool any = false;
    pthread_mutex_lock(&c->mu);
    for (int32_t i = 0; i < c->n_jobs; i++) {
        srv_job *j = &c->jobs[i];
        if ((only && j != only) || j->state == JOB_DONE || j->cancel) continue;
        j->cancel = true;
        j->stop_hit = stop_hit;
        any = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (!any) return;
    pthread_mutex_lock(&q->mu);
    q->wake = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

srv_job *meshlm_srv_queue_take(srv_queue *q, bool idle, double wait_s, bool *stop) {
    struct timespec until = {0, 0};
    if (wait_s > 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)wait_s;
        until.tv_nsec += (long)((wait_s - (double)(time_t)wait_s) * 1e9);
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    while (idle && !q->head && !q->wake && !q->stop) {
        if (wait_s <= 0) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0) {
            break;
        }
    }
    srv_job *list = q->head;
    q->head = q->tail = NULL;
    q->wake = false;
    *stop = q->stop;
    pthread_mutex_unlock(&q->mu);
    return list;
}

void meshlm_srv_queue_finished(srv_queue *q, int32_t n) {
    pthread_mutex_lock(&q->mu);
    q->in_flight -= n;
    pthread_mutex_unlock(&q->mu);
}

int32_t meshlm_srv_queue_in_flight(srv_queue *q) {
    pthread_mutex_lock(&q->mu);
    int32_t n = q->in_flight;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void meshlm_srv_queue_stop(srv_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

#include "core/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/status.h"

struct meshlm_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    unsigned long generation; /* bumped for each job, so workers tell a new job from a spurious wake */
    int pending;              /* workers still running the current job */
    int stopping;
    meshlm_pool_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    meshlm_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    meshlm_pool *p = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stopping) break;
        seen = p->generation;
        meshlm_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, wa.ith, p->n_threads);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int meshlm_pool_create(int n_threads, meshlm_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "thread count %d is outside [1, 4096]", n_threads);
    meshlm_pool *p = calloc(1, sizeof *p);
    if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return meshlm_fail(MESHLM_ERR_NOMEM, "thread pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* only threads 1..i-1 exist: free joins those */
            meshlm_pool_free(p);
            return meshlm_fail(MESHLM_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return MESHLM_OK;
}

void meshlm_pool_free(meshlm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p);
}

int meshlm_pool_size(const meshlm_pool *p) { return p ? p->n_threads : 1; }

void meshlm_pool_run(meshlm_pool *p, meshlm_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n_threads);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void meshlm_split_range(long n, int ith, int nth, long *lo, long *hi) {
    long base = n / nth, extra = n % nth;
    *lo = ith * base + (ith < extra ? ith : extra);
    *hi = *lo + base + (ith < extra ? 1 : 0);
}

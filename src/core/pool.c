#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/status.h"
#include "core/sync.h"

/* Fork-join without a mutex: the caller bumps `go` to start job number g, each worker
 * runs it and adds one to `done`, and the caller waits for done to reach g * workers.
 * Waits spin briefly then sleep (core/sync.h), so a decode step's many small jobs do not
 * pay a condition variable's wake-up each. */
struct meshlm_pool {
    int n_threads;
    pthread_t *threads;
    meshlm_flag go, done;
    uint32_t generation;
    atomic_int stopping;
    meshlm_pool_fn fn;
    void *ctx;
    void *scratch;
    size_t scratch_bytes;
};

typedef struct worker_arg {
    meshlm_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    meshlm_pool *p = wa.pool;
    for (uint32_t seen = 1;; seen++) {
        meshlm_flag_wait(&p->go, seen);
        if (atomic_load_explicit(&p->stopping, memory_order_acquire)) break;
        p->fn(p->ctx, wa.ith, p->n_threads);
        meshlm_flag_add(&p->done);
    }
    return NULL;
}

/* Stops and joins workers 1..n_started-1. */
static void stop_workers(meshlm_pool *p, int n_started) {
    atomic_store_explicit(&p->stopping, 1, memory_order_release);
    meshlm_flag_set(&p->go, p->generation + 1);
    for (int i = 1; i < n_started; i++) pthread_join(p->threads[i], NULL);
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
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            stop_workers(p, i);
            free(p->threads);
            free(p);
            return meshlm_fail(MESHLM_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return MESHLM_OK;
}

void meshlm_pool_free(meshlm_pool *p) {
    if (!p) return;
    stop_workers(p, p->n_threads);
    free(p->scratch);
    free(p->threads);
    free(p);
}

int meshlm_pool_size(const meshlm_pool *p) { return p ? p->n_threads : 1; }

void meshlm_pool_run(meshlm_pool *p, meshlm_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->generation++;
    meshlm_flag_set(&p->go, p->generation); /* release: workers see fn and ctx */
    fn(ctx, 0, p->n_threads);
    meshlm_flag_wait(&p->done, p->generation * (uint32_t)(p->n_threads - 1));
}

void *meshlm_pool_scratch(meshlm_pool *p, size_t bytes) {
    if (!p) return NULL;
    if (bytes <= p->scratch_bytes) return p->scratch;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, bytes) != 0) return NULL;
    free(p->scratch);
    p->scratch = mem;
    p->scratch_bytes = bytes;
    return mem;
}

int meshlm_pool_reserve_scratch(meshlm_pool *p, size_t bytes) {
    if (!p) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "thread pool: no pool to reserve scratch in");
    if (!meshlm_pool_scratch(p, bytes))
        return meshlm_fail(MESHLM_ERR_NOMEM, "thread pool: cannot reserve %zu bytes of scratch", bytes);
    return MESHLM_OK;
}

void meshlm_split_range(long n, int ith, int nth, long *lo, long *hi) {
    long base = n / nth, extra = n % nth;
    *lo = ith * base + (ith < extra ? ith : extra);
    *hi = *lo + base + (ith < extra ? 1 : 0);
}

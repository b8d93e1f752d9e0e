/* A fixed pool of worker threads that run one function on all threads at once (fork-join).
 * The caller is thread 0, so a pool of n threads starts n-1 workers. */
#ifndef MESHLM_CORE_POOL_H
#define MESHLM_CORE_POOL_H

#include <stddef.h>

typedef struct meshlm_pool meshlm_pool;

/* fn(ctx, ith, nth) runs once on each of nth threads; ith in [0, nth). */
typedef void (*meshlm_pool_fn)(void *ctx, int ith, int nth);

int meshlm_pool_create(int n_threads, meshlm_pool **out);
void meshlm_pool_free(meshlm_pool *p);
int meshlm_pool_size(const meshlm_pool *p);
/* Runs fn on every thread and returns when all are done. Not reentrant. A NULL pool
 * runs fn(ctx, 0, 1) on the caller. */
void meshlm_pool_run(meshlm_pool *p, meshlm_pool_fn fn, void *ctx);

/* The pool's scratch buffer (meshlm_matmul keeps its int8 activations there): at least
 * bytes, 64-byte aligned, kept between calls and reallocated only when too small, so a
 * loop whose sizes were reserved up front allocates nothing. NULL if it cannot grow (or
 * for a NULL pool). Its contents do not survive a call that grows it. Used by the pool's
 * caller, like meshlm_pool_run; not for its jobs to call. */
void *meshlm_pool_scratch(meshlm_pool *p, size_t bytes);

/* Grows the scratch to at least bytes now (see meshlm_pool_scratch). */
int meshlm_pool_reserve_scratch(meshlm_pool *p, size_t bytes);

/* Splits [0, n) into nth near-equal ranges; thread ith gets [*lo, *hi). */
void meshlm_split_range(long n, int ith, int nth, long *lo, long *hi);

#endif

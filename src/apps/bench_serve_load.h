/* meshlm bench-serve's load loop: streamed POSTs kept in flight over libcurl's multi
 * interface, their Server-Sent Events parsed as they arrive and timed. */
#ifndef MESHLM_APPS_BENCH_SERVE_LOAD_H
#define MESHLM_APPS_BENCH_SERVE_LOAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "apps/bench_serve_stats.h"

/* The next request to send: 1 with *body (malloc'd JSON, taken) and *tag, 0 when none can
 * start before a request in flight finishes (a conversation's next turn), -1 when there
 * are no more, -2 on an error (said on stderr). */
typedef int (*meshlm_bs_next_fn)(void *ctx, char **body, void **tag);
/* A request finished (or failed). Returns false to stop the run (out of memory). */
typedef bool (*meshlm_bs_done_fn)(void *ctx, void *tag, const meshlm_bs_result *r);

typedef struct meshlm_bs_load {
    const char *url;     /* the endpoint's full URL */
    const char *api_key; /* NULL: no Authorization header */
    bool chat;           /* chunks carry choices[0].delta.content, not choices[0].text */
    int64_t concurrency;
    double rate;         /* requests/s, Poisson arrivals; <= 0: each as soon as a slot is free */
    uint64_t seed;       /* for the arrival times */
    const char *what;    /* names the run in progress lines on stderr */
    int64_t total;       /* requests expected, for progress (0: unknown) */
    meshlm_bs_next_fn next;
    meshlm_bs_done_fn done;
    void *ctx;
    const volatile sig_atomic_t *stop; /* set (by a signal handler): drop what is in flight */
} meshlm_bs_load;

typedef struct meshlm_bs_outcome {
    double t0, t1;       /* the first request's start; the last one's end (or the stop) */
    int64_t finished, failed, dropped;
    bool interrupted;    /* *stop was set */
    bool refused;        /* no connection could be made before any request succeeded */
} meshlm_bs_outcome;

/* Seconds on the monotonic clock the results use. */
double meshlm_bs_now(void);

/* The next of a stream of 64-bit pseudo-random numbers (splitmix64) from *state. */
uint64_t meshlm_bs_rand(uint64_t *state);

/* Runs requests until next says there are no more, *stop is set, or the server cannot be
 * reached. Returns false on a setup or memory error (said on stderr). */
bool meshlm_bs_run(const meshlm_bs_load *l, meshlm_bs_outcome *out);

#endif

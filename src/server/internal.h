/* What the serving layer's files share: a call (one HTTP request's sequences) and its
 * jobs, the HTTP -> engine queue, the engine and its published metrics. */
#ifndef MESHLM_SERVER_INTERNAL_H
#define MESHLM_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "meshlm.h"
#include "server/replica.h"
#include "server/request.h"
#include "server/server.h"

typedef enum srv_job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } srv_job_state;

typedef struct srv_call srv_call;

/* One sequence in the batch. The HTTP side fills the request, the engine the results;
 * both read and write the shared fields under call->mu. */
typedef struct srv_job {
    srv_call *call;
    int32_t *prompt, n_prompt, n_predict;
    meshlm_sampler_params sp;
    /* engine -> HTTP */
    int32_t *tokens, n_tokens, cap_tokens;
    srv_job_state state;
    meshlm_finish finish;
    bool failed; /* the batch refused it or failed: call->error says why */
    int fail_status; /* 400 when the batch refused it as too long, else 500 */
    /* HTTP -> engine */
    bool cancel, stop_hit; /* stop_hit: cancelled by a stop string, which is a normal stop */
    /* the engine's own */
    int32_t id, n_seen;
    double t_first, t_last;
    struct srv_job *next;
} srv_job;

struct srv_call {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled by the engine on every change to a job */
    int refs;          /* the HTTP side's one, and one per job the engine holds */
    double t_arrival;
    srv_job *jobs;
    int32_t n_jobs;
    char error[256];
};

/* A call of n jobs (zeroed) with the HTTP side's reference. */
srv_call *meshlm_srv_call_new(int32_t n_jobs);
void meshlm_srv_call_unref(srv_call *c);

typedef struct srv_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_job *head, *tail; /* submitted, not yet taken by the engine */
    int32_t in_flight;    /* jobs queued or in the batch */
    int32_t limit;        /* --parallel + --max-queue */
    bool wake;            /* a cancel was posted */
    bool stop;            /* the engine should cancel everything and end */
} srv_queue;

int meshlm_srv_queue_init(srv_queue *q, int32_t limit);
void meshlm_srv_queue_destroy(srv_queue *q);
/* Queues every job of c; 0, or -1 when the jobs would pass the limit (nothing queued),
 * -2 when the server is stopping. */
int meshlm_srv_queue_push(srv_queue *q, srv_call *c);
/* Asks the engine to end c's unfinished jobs (stop_hit: because of a stop string). */
void meshlm_srv_queue_cancel(srv_queue *q, srv_call *c, srv_job *only, bool stop_hit);
/* The engine: waits (when idle is set) for work, at most wait_s seconds when that is above
 * 0, then takes the submitted jobs (none when the wait ran out). */
srv_job *meshlm_srv_queue_take(srv_queue *q, bool idle, double wait_s, bool *stop);
void meshlm_srv_queue_finished(srv_queue *q, int32_t n);
int32_t meshlm_srv_queue_in_flight(srv_queue *q);
void meshlm_srv_queue_stop(srv_queue *q);

enum { SRV_HIST_TTFT, SRV_HIST_ITL, SRV_HIST_E2E, SRV_HIST_QUEUE, SRV_N_HIST };
enum { SRV_N_BUCKETS = 20 };
enum { SRV_REASON_STOP, SRV_REASON_LENGTH, SRV_REASON_ABORT, SRV_N_REASONS };

typedef struct srv_hist {
    uint64_t counts[SRV_N_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} srv_hist;

typedef struct srv_metrics {
    int32_t running, waiting;
    double kv_usage; /* 0..1 */
    uint64_t prompt_tokens, generation_tokens;
    uint64_t prefix_queries, prefix_hits; /* prompt tokens looked up in the prefix cache, and found */
    uint64_t success[SRV_N_REASONS];
    srv_hist hist[SRV_N_HIST];
} srv_metrics;

void meshlm_srv_hist_observe(srv_hist *h, double seconds);
/* Prometheus text exposition, malloc'd (NULL when out of memory). */
char *meshlm_srv_metrics_render(const srv_metrics *m, size_t *len);

typedef struct srv_engine {
    meshlm_batch *b;
    int32_t n_batch;
    srv_queue *q;
    srv_oplog *log;   /* under MPI: what the other ranks must apply, else NULL */
    uint64_t seeds;   /* random seeds drawn for the replicas' sake */
    srv_job **active; /* submitted to the batch, not released */
    int32_t n_active, cap_active;
    srv_metrics live;
    pthread_mutex_t snap_mu; /* initialized and destroyed by the server, which outlives the thread */
    srv_metrics snap; /* what /metrics reads: published after each step */
    pthread_t thread;
    bool started;
    /* atomic: under MPI a step failed, so the mesh is gone (a rank lost or unreachable):
     * every job fails from then on, and the process is told to stop (SIGTERM to itself) */
    int broken;
} srv_engine;

int meshlm_srv_engine_start(srv_engine *e, meshlm_batch *b, int32_t n_batch, srv_queue *q);
/* After meshlm_srv_queue_stop: waits for the engine to cancel everything and end. */
void meshlm_srv_engine_join(srv_engine *e);
void meshlm_srv_engine_snapshot(srv_engine *e, srv_metrics *out);

double meshlm_srv_now(void);

#endif

/* The server: parameters, the model and batch once loaded, the queue and the engine. The
 * HTTP daemon lives in http.c. */
struct srv_server {
    srv_params p;
    char *name;      /* the alias, or the model file's base name */
    char *base;      /* the file's base name; also accepted without its extension */
    size_t base_stem;
    time_t created;
    meshlm_model *m;
    meshlm_chat_template *tmpl;
    int32_t n_ctx, n_vocab;
    srv_queue q;
    srv_engine e;
    srv_oplog log; /* with replicas: the engine's changes to the batch, for the other ranks */
    int ready;    /* atomic: the model is loaded and the engine runs */
    int stopping; /* atomic: no new work is accepted */
    void *http;   /* http.c's daemon state */
    int open_streams; /* atomic: event streams not yet freed by the HTTP layer */
};

/* http.c */
int meshlm_srv_http_start(srv_server *s);
void meshlm_srv_http_quiesce(srv_server *s);
/* Waits up to `seconds` for the open event streams to send their last events, so a
 * stream cut short at shutdown still ends with its final chunk and [DONE]. */
void meshlm_srv_http_drain(srv_server *s, double seconds);
void meshlm_srv_http_stop(srv_server *s);

/* The chat page served at GET / (webui/index.html, embedded by CMake at build time). */
extern const unsigned char meshlm_srv_webui_page[];
extern const size_t meshlm_srv_webui_page_len;

/* routes.c: what the HTTP layer asks of the server. */
typedef enum srv_route {
    ROUTE_NONE, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_MODELS, ROUTE_CHAT, ROUTE_COMPLETIONS, ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE, ROUTE_WEBUI
} srv_route;

typedef struct srv_stream srv_stream;

/* Is the client still connected? (http.c answers from its socket.) */
typedef bool (*srv_alive_fn)(void *ctx);

typedef struct srv_reply {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const unsigned char *page; /* instead of body: static bytes, sent without a copy */
    const char *csp;           /* a Content-Security-Policy header, or NULL */
    const char *ctype;
    int retry_after; /* seconds, or 0 */
    const char *allow; /* for 405 */
    srv_stream *stream; /* a text/event-stream body read with meshlm_srv_stream_read */
} srv_reply;

/* The route of a method and path, or an error reply (404, 405, 401) when *out->body is set. */
srv_route meshlm_srv_route_find(srv_server *s, const char *method, const char *url, const char *auth,
                                const char *api_key_header, srv_reply *out);
/* An error reply of status with OpenAI's error JSON. */
void meshlm_srv_reply_error(srv_reply *out, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Serves a request whose body has arrived; blocks (on this connection's thread) until a
 * non-streamed answer is ready. */
void meshlm_srv_handle(srv_server *s, srv_route r, const char *body, size_t len, srv_alive_fn alive, void *actx,
                       srv_reply *out);
/* Up to max bytes of the stream into buf, waiting for the engine as needed: the count,
 * 0 at the end, -1 when the client has gone (or the server failed). */
long meshlm_srv_stream_read(srv_stream *st, char *buf, size_t max, srv_alive_fn alive, void *actx);
/* The response is done with (sent or abandoned): unfinished jobs are cancelled. */
void meshlm_srv_stream_free(srv_stream *st);

/* meshlm serve: an OpenAI-compatible HTTP server over one batch. HTTP threads parse,
 * template, tokenize and format; one engine thread runs the batch; they meet in queue.c. */
#ifndef MESHLM_SERVER_SERVER_H
#define MESHLM_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshlm.h"

typedef struct srv_params {
    const char *host;      /* "127.0.0.1" */
    int port;              /* 8080 */
    int32_t parallel;      /* sequences running at once (the batch's n_batch) */
    int32_t max_queue;     /* sequences waiting beyond those; more get 503 */
    const char *alias;     /* the model's name in requests and responses; NULL = file base name */
    const char *model_path;
    const char *api_key;   /* NULL = open */
    int timeout_s;         /* idle or slow connections are closed after this */
    int grace_s;           /* on SIGINT/SIGTERM, in-flight requests get this long to finish */
    size_t max_body;       /* bytes; larger bodies get 413 */
    bool replicas;         /* the other ranks of an MPI job run meshlm_srv_replica_run */
    double replica_timeout_s; /* a step's log not received by every replica after this long fails; 0 = never */
    bool no_webui;         /* GET / is a 404 instead of the chat page */
} srv_params;

typedef struct srv_server srv_server;

/* Starts listening (GET /health answers 503 until meshlm_srv_ready). */
meshlm_status meshlm_srv_create(const srv_params *p, srv_server **out);
/* The model is loaded and the batch made: starts the engine thread and serving. The
 * server borrows m and owns b from here on. */
meshlm_status meshlm_srv_ready(srv_server *s, meshlm_model *m, meshlm_batch *b, int32_t n_ctx);
/* Stops accepting, gives in-flight requests grace_s to finish, cancels the rest, then
 * stops every thread. */
void meshlm_srv_shutdown(srv_server *s);
/* Whether the server stopped because its mesh of ranks failed (the process should then
 * exit non-zero, without waiting on the lost ranks). */
bool meshlm_srv_mesh_lost(srv_server *s);
void meshlm_srv_free(srv_server *s);

#endif

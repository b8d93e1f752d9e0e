/* Serving across MPI ranks: rank 0 runs HTTP and the engine, and every other rank keeps a
 * replica of its batch. The engine records each change it makes to the batch (submissions,
 * cancellations, releases) in an operation log and broadcasts the log before each step; a
 * replica applies the same changes in the same order and steps with it, so every rank holds
 * the same requests and the collectives inside the step line up. */
#ifndef MESHLM_SERVER_REPLICA_H
#define MESHLM_SERVER_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshlm.h"

typedef struct srv_oplog {
    unsigned char *p;
    size_t n, cap;
    bool oom;         /* a record could not be stored: the replicas can no longer follow */
    double timeout_s; /* a broadcast of the log not ended after this long fails; 0 = never */
} srv_oplog;

void meshlm_srv_oplog_free(srv_oplog *l);
void meshlm_srv_oplog_submit(srv_oplog *l, int32_t id, const int32_t *prompt, int32_t n_prompt,
                             const meshlm_sampler_params *sp, int32_t n_predict);
void meshlm_srv_oplog_cancel(srv_oplog *l, int32_t id);
void meshlm_srv_oplog_release(srv_oplog *l, int32_t id);
/* Broadcasts the log followed by a step (end false) or by the end of serving (end true),
 * and empties it. Rank 0 only; every other rank is in meshlm_srv_replica_run. */
meshlm_status meshlm_srv_oplog_send(srv_oplog *l, bool end);
/* Broadcasts the log with no step: rank 0's heartbeat while it has nothing to run, so a
 * replica can tell an idle server from a lost one. */
meshlm_status meshlm_srv_oplog_beat(srv_oplog *l);

/* A rank other than 0: applies rank 0's logs to b and steps with it until the end. With
 * timeout_s > 0, rank 0 silent for that long (no log, no heartbeat) is an error naming this
 * rank and host. */
meshlm_status meshlm_srv_replica_run(meshlm_batch *b, double timeout_s);

#endif

/* The operation log rank 0's engine broadcasts, and the loop that applies it on the other
 * ranks. A log is a sequence of records, each an operation byte and its fields in the
 * machine's byte order (every rank of a job runs the same build on the same kind of CPU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "mesh/mesh.h"
#include "server/replica.h"

enum { OP_SUBMIT = 1, OP_CANCEL, OP_RELEASE, OP_STEP, OP_END, OP_BEAT };

static void put(srv_oplog *l, const void *src, size_t n) {
    if (l->oom) return;
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->n + n) cap *= 2;
        unsigned char *grown = realloc(l->p, cap);
        if (!grown) {
            l->oom = true;
            return;
        }
        l->p = grown;
        l->cap = cap;
    }
    memcpy(l->p + l->n, src, n);
    l->n += n;
}

static void put_op(srv_oplog *l, unsigned char op, int32_t id) {
    put(l, &op, 1);
    put(l, &id, sizeof id);
}

void meshlm_srv_oplog_free(srv_oplog *l) {
    free(l->p);
    *l = (srv_oplog){0};
}

void meshlm_srv_oplog_submit(srv_oplog *l, int32_t id, const int32_t *prompt, int32_t n_prompt,
                             const meshlm_sampler_params *sp, int32_t n_predict) {
    put_op(l, OP_SUBMIT, id);
    put(l, sp, sizeof *sp);
    put(l, &n_predict, sizeof n_predict);
    put(l, &n_prompt, sizeof n_prompt);
    put(l, prompt, (size_t)n_prompt * sizeof *prompt);
}

void meshlm_srv_oplog_cancel(srv_oplog *l, int32_t id) { put_op(l, OP_CANCEL, id); }

void meshlm_srv_oplog_release(srv_oplog *l, int32_t id) { put_op(l, OP_RELEASE, id); }

/* The log, closed by op, to every replica; the log is then empty. */
static meshlm_status send_op(srv_oplog *l, unsigned char op) {
    put_op(l, op, -1);
    if (l->oom) return meshlm_fail(MESHLM_ERR_NOMEM, "serve: out of memory for the ranks' operation log");
    uint64_t n = l->n;
    int rc = meshlm_mpi_bcast_idle(&n, sizeof n, l->timeout_s);
    if (!rc) rc = meshlm_mpi_bcast_idle(l->p, l->n, l->timeout_s);
    l->n = 0;
    return (meshlm_status)rc;
}

meshlm_status meshlm_srv_oplog_send(srv_oplog *l, bool end) { return send_op(l, end ? OP_END : OP_STEP); }

meshlm_status meshlm_srv_oplog_beat(srv_oplog *l) { return send_op(l, OP_BEAT); }

/* Reads the next field of a log, failing when the log is shorter than its records say. */
static int take(const unsigned char *p, size_t n, size_t *at, void *dst, size_t len) {
    if (len > n - *at) return meshlm_fail(MESHLM_ERR_FORMAT, "serve: a truncated operation log from rank 0");
    memcpy(dst, p + *at, len);
    *at += len;
    return 0;
}

static int apply_submit(meshlm_batch *b, const unsigned char *p, size_t n, size_t *at, int32_t want_id) {
    meshlm_sampler_params sp = {0};
    int32_t n_predict = 0, n_prompt = 0, id = -1;
    int rc = take(p, n, at, &sp, sizeof sp);
    if (!rc) rc = take(p, n, at, &n_predict, sizeof n_predict);
    if (!rc) rc = take(p, n, at, &n_prompt, sizeof n_prompt);
    if (rc) return rc;
    if (n_prompt < 0 || (size_t)n_prompt > (n - *at) / sizeof(int32_t))
        return meshlm_fail(MESHLM_ERR_FORMAT, "serve: a truncated operation log from rank 0");
    int32_t *prompt = malloc((size_t)(n_prompt ? n_prompt : 1) * sizeof *prompt);
    if (!prompt) return meshlm_fail(MESHLM_ERR_NOMEM, "serve: out of memory for a prompt from rank 0");
    memcpy(prompt, p + *at, (size_t)n_prompt * sizeof *prompt);
    *at += (size_t)n_prompt * sizeof *prompt;
    rc = meshlm_batch_submit(b, prompt, n_prompt, &sp, n_predict, &id);
    free(prompt);
    if (!rc && id != want_id)
        rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "serve: this rank's request %d is rank 0's %d", id, want_id);
    return rc;
}

/* Applies one log; *end is set when it closes the serving. */
static int apply(meshlm_batch *b, const unsigned char *p, size_t n, bool *end) {
    size_t at = 0;
    while (at < n) {
        unsigned char op = 0;
        int32_t id = -1, left;
        int rc = take(p, n, &at, &op, 1);
        if (!rc) rc = take(p, n, &at, &id, sizeof id);
        if (rc) return rc;
        switch (op) {
        case OP_SUBMIT: rc = apply_submit(b, p, n, &at, id); break;
        case OP_CANCEL: rc = meshlm_batch_cancel(b, id); break;
        case OP_RELEASE: rc = meshlm_batch_release(b, id); break;
        case OP_STEP: rc = meshlm_batch_step(b, &left); break;
        case OP_END: *end = true; return at == n ? 0 : meshlm_fail(MESHLM_ERR_FORMAT, "serve: records after the end");
        case OP_BEAT: break;
        default: rc = meshlm_fail(MESHLM_ERR_FORMAT, "serve: unknown operation %u from rank 0", op);
        }
        if (rc) return rc;
    }
    return 0;
}

meshlm_status meshlm_srv_replica_run(meshlm_batch *b, double timeout_s) {
    unsigned char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (bool end = false; !end && !rc;) {
        uint64_t n = 0;
        if ((rc = meshlm_mpi_bcast_idle(&n, sizeof n, timeout_s))) break;
        if (n > cap) {
            unsigned char *grown = realloc(buf, (size_t)n);
            if (!grown) {
                rc = meshlm_fail(MESHLM_ERR_NOMEM, "serve: out of memory for an operation log of %llu bytes",
                                 (unsigned long long)n);
                break;
            }
            buf = grown;
            cap = (size_t)n;
        }
        if ((rc = meshlm_mpi_bcast_idle(buf, (size_t)n, timeout_s))) break;
        rc = apply(b, buf, (size_t)n, &end);
    }
    free(buf);
    return (meshlm_status)rc;
}

/* Collectives over MPI. With one device per rank, each axis has its own communicator (split
 * by column for axis 0, by row for axis 1, keyed by the rank along the axis), so group rank k
 * is the same device as in the threads transport. In a hybrid mesh (one row per rank) only
 * axis 0 goes through MPI, and each column has its own communicator over all ranks keyed by
 * rank = row: MPI forbids two threads running collectives on one communicator at once, and
 * the column threads of a rank do exactly that.
 *
 * Results are bitwise equal to the threads transport: the sums are done here, in the same
 * order, never by MPI's reductions (whose order MPI leaves open). Linear gathers every
 * contribution and sums in rank order; ring passes partial sums to the right neighbour and
 * adds the received partial first (s + own), exactly as ccl.c does. Messages larger than the
 * staging size move in pieces; pieces only split element ranges, so they change no bits.
 *
 * Failures: every communicator uses MPI_ERRORS_RETURN, so an MPI error becomes a meshlm_fail
 * status with MPI's own error string instead of an abort inside MPI. A peer that dies does
 * not always produce an error (a blocked receive may simply wait); with OpenMPI, mpirun
 * notices the dead process and terminates every rank of the job (tests/ccl_mpi_kill.sh). A
 * peer that is alive but unreachable (its link down) or hung is noticed by nobody, so every
 * exchange here is non-blocking and waited on with a deadline: past it the collective fails
 * naming this rank and host, and the rank can end (tests/ccl_mpi_stall.sh,
 * tests/multihost.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "mesh/ccl_mpi.h"

#ifdef MESHLM_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <time.h>

/* Same floor as the threads transport: at least this many floats per rank per piece. */
enum { MIN_STAGING_PER_RANK = 64 };

struct mesh_mpi {
    meshlm_topology topology;
    double timeout_s; /* 0: wait for ever */
    int world_rank;
    MPI_Comm comm[2];
    int g[2], r[2];
    size_t per;      /* floats per rank per piece */
    float *scratch;  /* per * max(g, 2) floats */
    int *cnt, *dsp;  /* 2 * widest group: counts and displacements for the v-collectives */
};

static int mpi_fail(int err, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error code %d", err);
    return meshlm_fail(MESHLM_ERR_IO, "mpi: %s: %s", what, msg);
}

#define MPI_TRY(call, what)                          \
    do {                                             \
        int err_ = (call);                           \
        if (err_ != MPI_SUCCESS) return mpi_fail(err_, what); \
    } while (0)

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int need_init(void) {
    int inited = 0, done = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&done);
    if (!inited || done) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mpi: call meshlm_mpi_init first");
    return MESHLM_OK;
}

/* Asks for MPI_THREAD_MULTIPLE, which only the hybrid mesh needs: a library that provides
 * less still serves one device per rank, and meshlm_ccl_create_hybrid reports the shortfall. */
int meshlm_mpi_init(int *argc, char ***argv) {
    int inited = 0, provided;
    MPI_Initialized(&inited);
    if (!inited) MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    return MESHLM_OK;
}

int meshlm_mpi_finalize(void) {
    int inited = 0, done = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&done);
    if (inited && !done) MPI_TRY(MPI_Finalize(), "MPI_Finalize");
    return MESHLM_OK;
}

int meshlm_mpi_world(int *rank, int *size) {
    int rc = need_init();
    if (rc) return rc;
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank");
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, size), "MPI_Comm_size");
    return MESHLM_OK;
}

/* Waits for req, spinning briefly (a busy server's steps follow each other closely), then
 * sleeping between polls; past timeout_s (> 0) it fails naming this rank and its host. */
static int wait_bcast(MPI_Request *req, double timeout_s) {
    double start = seconds();
    for (long polls = 0;; polls++) {
        int done = 0;
        MPI_TRY(MPI_Test(req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) return MESHLM_OK;
        if (polls <= 20000) continue;
        if (timeout_s > 0 && seconds() - start > timeout_s) {
            char host[MPI_MAX_PROCESSOR_NAME] = "?";
            int len = 0, rank = -1;
            MPI_Get_processor_name(host, &len);
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            return meshlm_fail(MESHLM_ERR_IO,
                               "mpi: rank %d on host %s: no word from rank 0 for %.1f s (a host or link is down, "
                               "or a rank hung)",
                               rank, host, timeout_s);
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

int meshlm_mpi_bcast_idle(void *buf, size_t n, double timeout_s) {
    int rc = need_init();
    if (rc) return rc;
    /* MPI counts are ints: a longer message goes in pieces, each under the deadline. */
    size_t done = 0;
    do {
        int c = n - done > (size_t)INT_MAX ? INT_MAX : (int)(n - done);
        MPI_Request req;
        MPI_TRY(MPI_Ibcast((char *)buf + done, c, MPI_BYTE, 0, MPI_COMM_WORLD, &req), "MPI_Ibcast");
        if ((rc = wait_bcast(&req, timeout_s))) return rc;
        done += (size_t)c;
    } while (done < n);
    return MESHLM_OK;
}

int meshlm_mpi_bcast(void *buf, size_t n) { return meshlm_mpi_bcast_idle(buf, n, 0); }

void mesh_mpi_free(mesh_mpi *m) {
    if (!m) return;
    for (int a = 0; a < 2; a++)
        if (m->comm[a] != MPI_COMM_NULL) MPI_Comm_free(&m->comm[a]);
    free(m->scratch);
    free(m->cnt);
    free(m);
}

static int split(mesh_mpi *m, int axis, int color, int key) {
    MPI_TRY(MPI_Comm_split(MPI_COMM_WORLD, color, key, &m->comm[axis]), "MPI_Comm_split");
    MPI_TRY(MPI_Comm_set_errhandler(m->comm[axis], MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_TRY(MPI_Comm_size(m->comm[axis], &m->g[axis]), "MPI_Comm_size");
    MPI_TRY(MPI_Comm_rank(m->comm[axis], &m->r[axis]), "MPI_Comm_rank");
    return MESHLM_OK;
}

/* Sizes the pieces and allocates the scratch and the v-collective arrays; frees m on failure. */
static int alloc_scratch(mesh_mpi *m, int rows, int cols, const meshlm_ccl_options *opts, mesh_mpi **out) {
    const int widest = rows > cols ? rows : cols;
    m->per = opts->staging_bytes / sizeof(float) / (size_t)widest;
    if (m->per < MIN_STAGING_PER_RANK) m->per = MIN_STAGING_PER_RANK;
    if (m->per > INT_MAX / (size_t)widest) m->per = INT_MAX / (size_t)widest;
    m->scratch = malloc(m->per * (size_t)(widest > 2 ? widest : 2) * sizeof(float));
    m->cnt = malloc(4 * (size_t)widest * sizeof(int));
    if (!m->scratch || !m->cnt) {
        mesh_mpi_free(m);
        return meshlm_fail(MESHLM_ERR_NOMEM, "mpi: cannot allocate %zu floats of staging", m->per * (size_t)widest);
    }
    m->dsp = m->cnt + 2 * widest;
    *out = m;
    return MESHLM_OK;
}

static mesh_mpi *new_endpoint(const meshlm_ccl_options *opts) {
    mesh_mpi *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->comm[0] = m->comm[1] = MPI_COMM_NULL;
    m->topology = opts->topology;
    m->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &m->world_rank);
    return m;
}

int mesh_mpi_create(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev, mesh_mpi **out) {
    *out = NULL;
    int rank, size, rc = meshlm_mpi_world(&rank, &size);
    if (rc) return rc;
    if (rows < 1 || cols < 1 || rows > size || cols > size || rows * cols != size)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mpi: mesh %dx%d needs %d ranks, the job has %d", rows, cols,
                           rows > 0 && cols > 0 && rows <= size && cols <= size ? rows * cols : -1, size);
    mesh_mpi *m = new_endpoint(opts);
    if (!m) return meshlm_fail(MESHLM_ERR_NOMEM, "mpi: out of memory");
    *dev = (meshlm_device){.mesh = NULL, .id = rank, .row = rank / cols, .col = rank % cols, .cpu = -1};
    /* Every rank takes part in both splits, so a failure here is seen by all of them. */
    if ((rc = split(m, 0, dev->col, dev->row)) || (rc = split(m, 1, dev->row, dev->col))) {
        mesh_mpi_free(m);
        return rc;
    }
    return alloc_scratch(m, rows, cols, opts, out);
}

static const char *thread_level_name(int level) {
    return level == MPI_THREAD_SINGLE       ? "MPI_THREAD_SINGLE"
           : level == MPI_THREAD_FUNNELED   ? "MPI_THREAD_FUNNELED"
           : level == MPI_THREAD_SERIALIZED ? "MPI_THREAD_SERIALIZED"
                                            : "MPI_THREAD_MULTIPLE";
}

int mesh_mpi_hybrid_row(int rows, int *row) {
    int rank, size, provided = MPI_THREAD_SINGLE, rc = meshlm_mpi_world(&rank, &size);
    if (rc) return rc;
    if (rows != size)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mpi: a hybrid mesh of %d rows needs %d ranks (one per row), "
                                                   "the job has %d", rows, rows, size);
    MPI_TRY(MPI_Query_thread(&provided), "MPI_Query_thread");
    if (provided < MPI_THREAD_MULTIPLE)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "mpi: a hybrid mesh needs MPI_THREAD_MULTIPLE (device threads "
                                                   "call MPI at once), but this MPI library provides only %s; "
                                                   "initialize MPI with meshlm_mpi_init and use an MPI built with "
                                                   "thread support", thread_level_name(provided));
    *row = rank;
    return MESHLM_OK;
}

int mesh_mpi_create_column(int rows, int cols, int col, const meshlm_ccl_options *opts, mesh_mpi **out) {
    *out = NULL;
    int rank, size, rc = meshlm_mpi_world(&rank, &size);
    if (rc) return rc;
    mesh_mpi *m = new_endpoint(opts);
    if (!m) return meshlm_fail(MESHLM_ERR_NOMEM, "mpi: out of memory");
    if ((rc = split(m, 0, 0, rank))) {
        mesh_mpi_free(m);
        return rc;
    }
    m->g[1] = cols;
    m->r[1] = col;
    return alloc_scratch(m, rows, cols, opts, out);
}

int mesh_mpi_axis_size(const mesh_mpi *m, int axis) { return m->g[axis]; }

static int ring_mod(int a, int g) { return ((a % g) + g) % g; }

/* Waits for n requests. A blocking MPI call would wait for ever on a peer whose host or link
 * went down; polling lets the deadline turn that into an error naming this rank and host.
 * It spins first (collectives in a step follow each other closely), then sleeps between
 * polls. */
static int settle(mesh_mpi *m, MPI_Request *req, int n, const char *what) {
    double start = seconds();
    for (long polls = 0;; polls++) {
        int done = 0;
        MPI_TRY(MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE), what);
        if (done) return MESHLM_OK;
        if (polls < 20000) continue;
        if (m->timeout_s > 0 && seconds() - start > m->timeout_s) {
            char host[MPI_MAX_PROCESSOR_NAME] = "?";
            int len = 0;
            MPI_Get_processor_name(host, &len);
            return meshlm_fail(MESHLM_ERR_IO,
                               "mpi: rank %d on host %s: %s had no answer from its peers for %.1f s "
                               "(a peer's host or link is down, or a peer hung)",
                               m->world_rank, host, what, m->timeout_s);
        }
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

/* A non-blocking call's status, then its wait. */
static int settle1(mesh_mpi *m, int err, MPI_Request *req, const char *what) {
    if (err != MPI_SUCCESS) return mpi_fail(err, what);
    return settle(m, req, 1, what);
}

/* MPI_Sendrecv of floats, under the deadline. */
static int sendrecv(mesh_mpi *m, int axis, const float *sbuf, size_t sn, int to, float *rbuf, size_t rn, int from,
                    const char *what) {
    MPI_Request req[2];
    MPI_TRY(MPI_Irecv(rbuf, (int)rn, MPI_FLOAT, from, 0, m->comm[axis], &req[0]), what);
    MPI_TRY(MPI_Isend(sbuf, (int)sn, MPI_FLOAT, to, 0, m->comm[axis], &req[1]), what);
    return settle(m, req, 2, what);
}

static size_t clamp_piece(size_t len, size_t po, size_t per) {
    return len > po ? (len - po < per ? len - po : per) : 0;
}

static int too_big(size_t n) {
    return meshlm_fail(MESHLM_ERR_RANGE, "mpi: %zu floats exceed one MPI message (at most %d)", n, INT_MAX);
}

/* Linear: gather a piece of every rank's buffer, then sum it in rank order. */
static int linear_all_reduce(mesh_mpi *m, int axis, float *x, size_t n) {
    const int g = m->g[axis];
    for (size_t po = 0; po < n; po += m->per) {
        const size_t pl = n - po < m->per ? n - po : m->per;
        MPI_Request q;
        int rc = settle1(
            m, MPI_Iallgather(x + po, (int)pl, MPI_FLOAT, m->scratch, (int)pl, MPI_FLOAT, m->comm[axis], &q), &q,
            "all_reduce (MPI_Iallgather)");
        if (rc) return rc;
        float *d = x + po;
        memcpy(d, m->scratch, pl * sizeof *d);
        for (int k = 1; k < g; k++) {
            const float *s = m->scratch + (size_t)k * pl;
            for (size_t i = 0; i < pl; i++) d[i] += s[i];
        }
    }
    return MESHLM_OK;
}

/* Linear: each rank receives its own chunk from every peer (a piece at a time), then sums
 * in rank order. */
static int linear_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out) {
    const int g = m->g[axis], r = m->r[axis];
    int *scnt = m->cnt, *rcnt = m->cnt + g, *sdsp = m->dsp, *rdsp = m->dsp + g;
    size_t roff, rlen;
    meshlm_ccl_chunk(n, g, r, &roff, &rlen);
    const size_t longest = (n + (size_t)g - 1) / (size_t)g;
    for (size_t po = 0; po < longest; po += m->per) {
        const size_t pl = clamp_piece(rlen, po, m->per);
        for (int k = 0; k < g; k++) {
            size_t off, len;
            meshlm_ccl_chunk(n, g, k, &off, &len);
            scnt[k] = (int)clamp_piece(len, po, m->per);
            sdsp[k] = (int)(off + po < n ? off + po : 0);
            rcnt[k] = (int)pl;
            rdsp[k] = (int)((size_t)k * m->per);
        }
        MPI_Request q;
        int rc = settle1(
            m, MPI_Ialltoallv(in, scnt, sdsp, MPI_FLOAT, m->scratch, rcnt, rdsp, MPI_FLOAT, m->comm[axis], &q), &q,
            "reduce_scatter (MPI_Ialltoallv)");
        if (rc) return rc;
        float *d = out + (pl ? po : 0);
        memcpy(d, m->scratch, pl * sizeof *d);
        for (int k = 1; k < g; k++) {
            const float *s = m->scratch + (size_t)k * m->per;
            for (size_t i = 0; i < pl; i++) d[i] += s[i];
        }
    }
    return MESHLM_OK;
}

static int linear_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts) {
    const int g = m->g[axis];
    size_t off = 0;
    for (int k = 0; k < g; k++) {
        m->cnt[k] = (int)counts[k];
        m->dsp[k] = (int)off;
        off += counts[k];
    }
    MPI_Request q;
    return settle1(
        m, MPI_Iallgatherv(in, m->cnt[m->r[axis]], MPI_FLOAT, out, m->cnt, m->dsp, MPI_FLOAT, m->comm[axis], &q), &q,
        "all_gather (MPI_Iallgatherv)");
}

/* Ring, in place: at reduce step u rank r sends chunk r-u-1 (its partial from the step
 * before) right and adds the partial of chunk r-u-2 from the left to its own; after g-1 steps
 * it holds chunk r in full, and g-1 gather steps pass the finished chunks around. */
static int ring_all_reduce(mesh_mpi *m, int axis, float *x, size_t n) {
    const int g = m->g[axis], r = m->r[axis];
    const int left = ring_mod(r - 1, g), right = ring_mod(r + 1, g);
    const size_t longest = (n + (size_t)g - 1) / (size_t)g;
    for (int u = 0; u < 2 * g - 2; u++) {
        const bool reduce = u < g - 1;
        const int t = reduce ? u : u - (g - 1);
        const int cs = reduce ? ring_mod(r - u - 1, g) : ring_mod(r - t, g);
        const int cr = reduce ? ring_mod(r - u - 2, g) : ring_mod(r - 1 - t, g);
        size_t soff, slen, roff, rlen;
        meshlm_ccl_chunk(n, g, cs, &soff, &slen);
        meshlm_ccl_chunk(n, g, cr, &roff, &rlen);
        for (size_t po = 0; po < longest; po += m->per) {
            const size_t sl = clamp_piece(slen, po, m->per), rl = clamp_piece(rlen, po, m->per);
            float *d = x + roff + (rl ? po : 0);
            int rc = sendrecv(m, axis, x + soff + (sl ? po : 0), sl, right,
                              reduce ? m->scratch : x + roff + (rl ? po : 0), rl, left, "all_reduce (ring step)");
            if (rc) return rc;
            if (reduce)
                for (size_t i = 0; i < rl; i++) d[i] = m->scratch[i] + d[i];
        }
    }
    return MESHLM_OK;
}

/* Ring over a read-only input: partial sums travel through scratch (what is sent, then what
 * arrives); the last step writes the finished chunk to out. */
static int ring_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out) {
    const int g = m->g[axis], r = m->r[axis];
    const int left = ring_mod(r - 1, g), right = ring_mod(r + 1, g);
    float *send = m->scratch, *recv = m->scratch + m->per;
    const size_t longest = (n + (size_t)g - 1) / (size_t)g;
    for (size_t po = 0; po < longest; po += m->per) {
        for (int s = 0; s < g - 1; s++) {
            const int cs = ring_mod(r - s - 1, g), cr = ring_mod(r - s - 2, g);
            size_t soff, slen, roff, rlen;
            meshlm_ccl_chunk(n, g, cs, &soff, &slen);
            meshlm_ccl_chunk(n, g, cr, &roff, &rlen);
            const size_t sl = clamp_piece(slen, po, m->per), rl = clamp_piece(rlen, po, m->per);
            const float *src = s == 0 ? in + soff + (sl ? po : 0) : send;
            int rc = sendrecv(m, axis, src, sl, right, recv, rl, left, "reduce_scatter (ring step)");
            if (rc) return rc;
            float *d = s == g - 2 ? out + (rl ? po : 0) : send;
            const float *own = in + roff + (rl ? po : 0);
            for (size_t i = 0; i < rl; i++) d[i] = recv[i] + own[i];
        }
    }
    return MESHLM_OK;
}

static int ring_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts) {
    const int g = m->g[axis], r = m->r[axis];
    const int left = ring_mod(r - 1, g), right = ring_mod(r + 1, g);
    size_t roff = 0;
    for (int k = 0; k < r; k++) roff += counts[k];
    memcpy(out + roff, in, counts[r] * sizeof *out);
    for (int t = 0; t < g - 1; t++) {
        const int cs = ring_mod(r - t, g), cr = ring_mod(r - 1 - t, g);
        size_t so = 0, ro = 0;
        for (int k = 0; k < cs; k++) so += counts[k];
        for (int k = 0; k < cr; k++) ro += counts[k];
        int rc = sendrecv(m, axis, out + so, counts[cs], right, out + ro, counts[cr], left, "all_gather (ring step)");
        if (rc) return rc;
    }
    return MESHLM_OK;
}

/* The offsets of g blocks of counts floats laid end to end, into dsp (as ints for MPI); 0
 * when every offset and count fits, else the error. */
static int block_offsets(const size_t *counts, int g, int *cnt, int *dsp) {
    size_t off = 0;
    for (int k = 0; k < g; k++) {
        if (off > INT_MAX || counts[k] > INT_MAX) return too_big(off + counts[k]);
        cnt[k] = (int)counts[k];
        dsp[k] = (int)off;
        off += counts[k];
    }
    return MESHLM_OK;
}

/* Linear: one MPI_Alltoallv moves every block at once. */
static int linear_all_to_all(mesh_mpi *m, int axis, const float *in, const size_t *send, float *out,
                             const size_t *recv) {
    const int g = m->g[axis];
    int *scnt = m->cnt, *rcnt = m->cnt + g, *sdsp = m->dsp, *rdsp = m->dsp + g;
    int rc = block_offsets(send, g, scnt, sdsp);
    if (!rc) rc = block_offsets(recv, g, rcnt, rdsp);
    if (rc) return rc;
    MPI_Request q;
    return settle1(m, MPI_Ialltoallv(in, scnt, sdsp, MPI_FLOAT, out, rcnt, rdsp, MPI_FLOAT, m->comm[axis], &q), &q,
                   "all_to_all (MPI_Ialltoallv)");
}

/* Ring: after the own block, g - 1 steps; at step t rank r sends its block for r + t and
 * receives the block of r - t, one message each way per step. */
static int ring_all_to_all(mesh_mpi *m, int axis, const float *in, const size_t *send, float *out,
                           const size_t *recv) {
    const int g = m->g[axis], r = m->r[axis];
    int *scnt = m->cnt, *rcnt = m->cnt + g, *sdsp = m->dsp, *rdsp = m->dsp + g;
    int rc = block_offsets(send, g, scnt, sdsp);
    if (!rc) rc = block_offsets(recv, g, rcnt, rdsp);
    if (rc) return rc;
    memcpy(out + rdsp[r], in + sdsp[r], send[r] * sizeof *out);
    for (int t = 1; t < g; t++) {
        const int to = ring_mod(r + t, g), from = ring_mod(r - t, g);
        rc = sendrecv(m, axis, in + sdsp[to], send[to], to, out + rdsp[from], recv[from], from,
                      "all_to_all (ring step)");
        if (rc) return rc;
    }
    return MESHLM_OK;
}

int mesh_mpi_all_to_all(mesh_mpi *m, int axis, const float *in, const size_t *send, float *out, const size_t *recv) {
    return m->topology == MESHLM_TOPOLOGY_RING ? ring_all_to_all(m, axis, in, send, out, recv)
                                               : linear_all_to_all(m, axis, in, send, out, recv);
}

int mesh_mpi_all_reduce(mesh_mpi *m, int axis, float *buf, size_t n) {
    if (n > INT_MAX) return too_big(n);
    if (m->g[axis] == 1) return MESHLM_OK;
    return m->topology == MESHLM_TOPOLOGY_RING ? ring_all_reduce(m, axis, buf, n) : linear_all_reduce(m, axis, buf, n);
}

int mesh_mpi_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out) {
    if (n > INT_MAX) return too_big(n);
    if (m->g[axis] == 1) {
        memcpy(out, in, n * sizeof *out);
        return MESHLM_OK;
    }
    return m->topology == MESHLM_TOPOLOGY_RING ? ring_reduce_scatter(m, axis, in, n, out)
                                               : linear_reduce_scatter(m, axis, in, n, out);
}

int mesh_mpi_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts) {
    size_t n = 0;
    for (int k = 0; k < m->g[axis]; k++) n += counts[k];
    if (n > INT_MAX) return too_big(n);
    return m->topology == MESHLM_TOPOLOGY_RING ? ring_all_gather(m, axis, in, out, counts)
                                               : linear_all_gather(m, axis, in, out, counts);
}

#else

static int no_mpi(void) {
    return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "mpi: this meshlm was built without MPI (configure with MPI "
                                               "installed, e.g. libopenmpi-dev, and -DMESHLM_MPI=ON)");
}

int meshlm_mpi_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return no_mpi();
}

int meshlm_mpi_finalize(void) { return MESHLM_OK; }

int meshlm_mpi_world(int *rank, int *size) {
    *rank = 0;
    *size = 1;
    return no_mpi();
}

int meshlm_mpi_bcast(void *buf, size_t n) {
    (void)buf;
    (void)n;
    return no_mpi();
}

int meshlm_mpi_bcast_idle(void *buf, size_t n, double timeout_s) {
    (void)timeout_s;
    return meshlm_mpi_bcast(buf, n);
}

int mesh_mpi_create(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev, mesh_mpi **out) {
    (void)rows;
    (void)cols;
    (void)opts;
    (void)dev;
    *out = NULL;
    return no_mpi();
}

int mesh_mpi_hybrid_row(int rows, int *row) {
    (void)rows;
    *row = 0;
    return no_mpi();
}

int mesh_mpi_create_column(int rows, int cols, int col, const meshlm_ccl_options *opts, mesh_mpi **out) {
    (void)rows, (void)cols, (void)col, (void)opts;
    *out = NULL;
    return no_mpi();
}

void mesh_mpi_free(mesh_mpi *m) { (void)m; }

int mesh_mpi_axis_size(const mesh_mpi *m, int axis) {
    (void)m;
    (void)axis;
    return 1;
}

int mesh_mpi_all_reduce(mesh_mpi *m, int axis, float *buf, size_t n) {
    (void)m, (void)axis, (void)buf, (void)n;
    return no_mpi();
}

int mesh_mpi_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out) {
    (void)m, (void)axis, (void)in, (void)n, (void)out;
    return no_mpi();
}

int mesh_mpi_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts) {
    (void)m, (void)axis, (void)in, (void)out, (void)counts;
    return no_mpi();
}

int mesh_mpi_all_to_all(mesh_mpi *m, int axis, const float *in, const size_t *send, float *out, const size_t *recv) {
    (void)m, (void)axis, (void)in, (void)send, (void)out, (void)recv;
    return no_mpi();
}

#endif

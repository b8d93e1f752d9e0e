/* The mesh layer: R×C devices (worker threads, each pinned to a core when there are enough
 * cores) and the collectives (CCL) among the devices of one mesh axis.
 *
 * Axes follow the seed's cluster_axis: axis 0 groups the devices of one column (rank = row),
 * axis 1 groups the devices of one row (rank = column).
 *
 * Chunking rule, shared by reduce_scatter and the default all_gather layout: n floats split
 * among g ranks give chunk i the range [i*(n/g) + min(i, n%g), +n/g + (i < n%g)), so the
 * first n%g chunks hold one extra float and chunks may be empty when n < g.
 *
 * Determinism: every collective sums in a fixed order, so a result is bitwise identical run
 * to run for a given topology and group size, and identical on every rank of the group.
 * Linear sums each element in rank order 0, 1, ..., g-1; ring sums chunk c in ring order
 * c+1, c+2, ..., c (mod g). The two orders differ, so linear and ring results agree only
 * within float reassociation (exactly for g <= 2, where both are one commutative add). */
#ifndef MESHLM_MESH_MESH_H
#define MESHLM_MESH_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds that keep a typo such as "1x100000" from spawning a thread storm. */
#define MESHLM_MESH_MAX_DEVICES 1024

typedef struct meshlm_mesh meshlm_mesh;
typedef struct meshlm_ccl meshlm_ccl;

/* One device as its own thread sees it. */
typedef struct meshlm_device {
    meshlm_mesh *mesh;
    int id;       /* row * cols + col, global: the same device numbering in every process */
    int row, col; /* global coordinates */
    int cpu; /* the core it is pinned to, or -1 when unpinned */
} meshlm_device;

typedef void (*meshlm_device_fn)(void *ctx, const meshlm_device *dev);

/* Parses "RxC" (e.g. "1x8", "8x4"); on error returns MESHLM_ERR_INVALID_ARG with a message
 * naming the text and what is wrong. */
int meshlm_mesh_parse(const char *text, int *rows, int *cols);

/* Starts rows×cols device threads; pins device i to the i-th allowed core when there are at
 * least as many allowed cores as devices, else leaves them all unpinned. */
int meshlm_mesh_create(int rows, int cols, meshlm_mesh **out);
/* Starts only the cols device threads of one row of a rows×cols mesh (the process's share of
 * a mesh spread over processes, see meshlm_ccl_create_hybrid). Its devices carry their global
 * coordinates: row = row, col = 0..cols-1, id = row*cols + col. */
int meshlm_mesh_create_row(int rows, int cols, int row, meshlm_mesh **out);
void meshlm_mesh_free(meshlm_mesh *m);

/* Shape queries describe the GLOBAL mesh, also on a mesh that hosts one row: rows, cols,
 * size = rows*cols (so every dev->id is below it and arrays indexed by id fit) and the axis
 * sizes. Only meshlm_mesh_local_size and meshlm_mesh_first_id describe the devices this
 * process hosts and meshlm_mesh_run runs: ids first_id .. first_id+local_size-1 (the whole
 * mesh, 0 .. size-1, for meshlm_mesh_create; one row, row*cols .. row*cols+cols-1, for
 * meshlm_mesh_create_row). */
int meshlm_mesh_rows(const meshlm_mesh *m);
int meshlm_mesh_cols(const meshlm_mesh *m);
int meshlm_mesh_size(const meshlm_mesh *m);
int meshlm_mesh_local_size(const meshlm_mesh *m);
int meshlm_mesh_first_id(const meshlm_mesh *m);
bool meshlm_mesh_pinned(const meshlm_mesh *m);
/* The number of devices in one group along axis (rows for axis 0, cols for axis 1). */
int meshlm_mesh_axis_size(const meshlm_mesh *m, int axis);
/* A device's rank inside its group along axis (its row for axis 0, its column for axis 1). */
int meshlm_mesh_rank(const meshlm_device *dev, int axis);

/* Runs fn(ctx, dev) once on every device thread of this process (local_size of them) and
 * returns when all have finished.
 * Not reentrant: one run at a time per mesh, and never from a device thread. */
void meshlm_mesh_run(meshlm_mesh *m, meshlm_device_fn fn, void *ctx);

typedef enum meshlm_topology {
    MESHLM_TOPOLOGY_LINEAR, /* every rank reads every peer, then sums in rank order */
    MESHLM_TOPOLOGY_RING,   /* reduce-scatter then all-gather around the ring */
} meshlm_topology;

/* How bytes move between devices: threads share memory inside one process; MPI runs one
 * device per rank (process), or one row of devices per rank (hybrid), with the same
 * collective entry points and bitwise-equal results for the same mesh and topology. */
typedef enum meshlm_transport {
    MESHLM_TRANSPORT_THREADS,
    MESHLM_TRANSPORT_MPI,
} meshlm_transport;

typedef struct meshlm_ccl_options {
    meshlm_topology topology;
    meshlm_transport transport;
    int links;            /* chunks in flight per ring step / staging segment; >= 1 */
    size_t staging_bytes; /* per device; larger messages are moved in pieces of this size */
    /* MPI: seconds a collective may wait for its peers before it fails, naming this rank and
     * its host (a peer's host or link down, a peer hung); 0 waits for ever. The endpoint is
     * unusable after such a failure: the job should end. */
    double timeout_s;
} meshlm_ccl_options;

/* timeout_s from a user's setting: 0 takes the default of 60 s, below 0 waits for ever. */
static inline double meshlm_ccl_timeout(float seconds) {
    return seconds == 0 ? 60.0 : seconds < 0 ? 0.0 : seconds;
}

/* MPI. Without MPI in the build, each returns MESHLM_ERR_UNSUPPORTED with a message saying so.
 * Errors of MPI calls come back as MESHLM_ERR_IO with the MPI error string (communicators use
 * MPI_ERRORS_RETURN). When a rank dies, OpenMPI's mpirun terminates every rank of the job, so
 * no survivor waits forever in a collective.
 *
 * meshlm_mpi_init requests MPI_THREAD_MULTIPLE; it succeeds with any level the library grants
 * (one device per rank needs none), and meshlm_ccl_create_hybrid fails if it is less. */
int meshlm_mpi_init(int *argc, char ***argv);
int meshlm_mpi_finalize(void);
/* This process's rank in MPI_COMM_WORLD and the number of ranks. */
int meshlm_mpi_world(int *rank, int *size);
/* Copies n bytes from rank 0's buf into every other rank's (all ranks call it): how rank 0
 * shares what only it reads, such as a chat's input lines or a server's next step. A rank
 * that waits spins briefly, then sleeps between polls instead of spinning a core. With
 * timeout_s > 0, a rank whose broadcast has not ended after that long fails, naming itself
 * and its host; meshlm_mpi_bcast waits for ever. */
int meshlm_mpi_bcast_idle(void *buf, size_t n, double timeout_s);
int meshlm_mpi_bcast(void *buf, size_t n);

/* The MPI counterpart of meshlm_mesh_create + meshlm_ccl_create: a rows×cols mesh over
 * exactly rows*cols ranks, rank = device id. Fills *dev with this rank's device (mesh NULL,
 * cpu -1) to pass to the collectives. The transport field of opts is ignored. */
int meshlm_ccl_create_mpi(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev,
                          meshlm_ccl **out);

/* A rows×cols mesh over exactly rows ranks (nodes × cores): rank r hosts row r as cols device
 * threads. *local is that row's mesh (meshlm_mesh_create_row(rows, cols, r): global shape
 * queries, global device coordinates, meshlm_mesh_run runs the row's cols devices); *out is
 * its ccl. Axis 1 (within the row) moves through shared memory between the rank's threads;
 * axis 0 (a column, across ranks) through MPI, one communicator per column, so this needs
 * MPI_THREAD_MULTIPLE (MESHLM_ERR_UNSUPPORTED naming the granted level otherwise). Results
 * are bitwise equal to the threads transport on a rows×cols meshlm_mesh_create mesh with the
 * same topology. Collective over MPI_COMM_WORLD; call it from the main thread of every rank.
 * A job size other than rows is MESHLM_ERR_INVALID_ARG. Free *out before *local. The
 * transport field of opts is ignored. */
int meshlm_ccl_create_hybrid(int rows, int cols, const meshlm_ccl_options *opts, meshlm_mesh **local,
                             meshlm_ccl **out);

/* Parses "linear" or "ring". */
int meshlm_topology_parse(const char *text, meshlm_topology *out);
const char *meshlm_topology_name(meshlm_topology t);

/* Allocates the staging buffers (each first-touched by its own device thread) and the flags.
 * Must not be called while the mesh is running a job. */
int meshlm_ccl_create(meshlm_mesh *m, const meshlm_ccl_options *opts, meshlm_ccl **out);
void meshlm_ccl_free(meshlm_ccl *c);

/* The chunk of n floats that rank i of g owns (the rule above). */
void meshlm_ccl_chunk(size_t n, int g, int i, size_t *off, size_t *len);

/* Collectives: called from a device thread by every device of the group along axis, with
 * the same n (and counts). They never allocate or lock, and return only when no peer will
 * touch the caller's buffers again. Errors (bad axis) are detected identically on all ranks.
 *
 * all_reduce: buf[0..n) becomes the element-wise sum over the group, on every rank.
 * reduce_scatter: in[0..n) is this rank's contribution; out receives the sum of this
 *   rank's chunk (meshlm_ccl_chunk), len floats.
 * all_gather: in holds counts[rank] floats; out (sum of counts floats) receives every rank's
 *   contribution in rank order. A NULL counts means the chunking rule applied to n. */
int meshlm_ccl_all_reduce(meshlm_ccl *c, const meshlm_device *dev, int axis, float *buf, size_t n);
int meshlm_ccl_reduce_scatter(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, size_t n,
                              float *out);
int meshlm_ccl_all_gather(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, float *out,
                          size_t n, const size_t *counts);
/* all_to_all: in holds g blocks end to end, block k (send[k] floats) for rank k; out
 * receives g blocks end to end, block k (recv[k] floats) from rank k, the own block
 * included. recv[k] must equal rank k's send[rank] (callers that route the same rows know
 * every count). Linear moves every block at once; ring takes g - 1 steps, at step t sending
 * to rank + t and receiving from rank - t, one block each way. */
int meshlm_ccl_all_to_all(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, const size_t *send,
                          float *out, const size_t *recv);

/* ---- A reduce-scatter fused into the matmul that produces its input ----
 * The input is rows x ld floats and chunk j is columns [bounds[j], bounds[j+1]) of every
 * row (bounds: g + 1 offsets, or NULL for meshlm_ccl_chunk(ld, g, j)). Each rank produces its input chunk by chunk, its partners' chunks first and its own
 * last (the k-th is meshlm_ccl_rs_chunk(rank + 1 + k)), announcing each with _ready, and each
 * rank sums its own chunk over the group in rank order as soon as every partner has
 * announced it: the reduction overlaps the partners' remaining work. Shared-memory axes
 * only (meshlm_ccl_axis_shared); the sums are those of the linear reduce_scatter. */
typedef struct meshlm_ccl_rs {
    meshlm_ccl *c;
    int axis, g, r;
    size_t rows, ld;
    const int64_t *bounds;
    unsigned base; /* the caller's progress flag when it began */
    int row, col;
} meshlm_ccl_rs;

/* True when axis moves through shared memory for this device (threads; a hybrid's axis 1). */
bool meshlm_ccl_axis_shared(const meshlm_ccl *c, int axis);

/* Publishes in (rows x ld, read by partners until _end returns) and fills rs. */
int meshlm_ccl_rs_begin(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, size_t rows, size_t ld,
                        const int64_t *bounds, meshlm_ccl_rs *rs);
/* Chunk j's columns under bounds (as above). */
void meshlm_ccl_cols(size_t ld, int g, const int64_t *bounds, int j, size_t *off, size_t *len);
/* The chunk this rank produces k-th. */
int meshlm_ccl_rs_chunk(const meshlm_ccl_rs *rs, int k);
/* The k-th chunk of the input is written. */
void meshlm_ccl_rs_ready(meshlm_ccl_rs *rs, int k);
/* After the last _ready: out (rows x the own chunk's width) receives the own chunk summed
 * over the group; returns when no partner reads this rank's input any more. */
int meshlm_ccl_rs_end(meshlm_ccl_rs *rs, float *out);

/* The other half: in holds rows x the own chunk's width (chunks as above); out (rows x ld)
 * receives every rank's chunk in its columns. Shared-memory axes only. */
int meshlm_ccl_all_gather_cols(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, float *out,
                               size_t rows, size_t ld, const int64_t *bounds);

#endif

/* The MPI transport, run under mpiexec (one device per rank): for every mesh shape the job
 * size allows, both axes and both topologies, each collective must give exactly the bits of
 * a naive sum in the topology's documented order, and so must the threads transport on the
 * same mesh, which makes the two transports bitwise equal. Staging is small so large
 * messages move in pieces. With --kill, rank 1 dies mid-run (see ccl_mpi_kill.sh); with
 * --stall, it stops answering (ccl_mpi_stall.sh). */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mesh/mesh.h"
#include "meshlm.h"
#include "t.h"

#include "ccl_ref.h"

/* Runs op on one device with its own inputs; the result lands in out. */
static int run_op(meshlm_ccl *c, const meshlm_device *dev, int axis, int g, int op, size_t n, float *in, float *out) {
    for (size_t i = 0; i < n; i++) in[i] = value(dev->id, n, i);
    switch (op) {
    case OP_ALL_REDUCE: memcpy(out, in, n * sizeof *out); return meshlm_ccl_all_reduce(c, dev, axis, out, n);
    case OP_REDUCE_SCATTER: return meshlm_ccl_reduce_scatter(c, dev, axis, in, n, out);
    case OP_ALL_TO_ALL: {
        size_t send[MESHLM_MESH_MAX_DEVICES], recv[MESHLM_MESH_MAX_DEVICES];
        a2a_counts(n, g, meshlm_mesh_rank(dev, axis), send, recv);
        return meshlm_ccl_all_to_all(c, dev, axis, in, send, out, recv);
    }
    default: return meshlm_ccl_all_gather(c, dev, axis, in, out, n, NULL);
    }
}

typedef struct threads_job {
    meshlm_ccl *ccl;
    int axis, g, op, want_id, rc;
    size_t n;
    float *in, *out; /* [device][MAX_N] */
    float *result;   /* the want_id device's output */
} threads_job;

static void threads_device(void *ctx, const meshlm_device *dev) {
    threads_job *J = ctx;
    float *in = J->in + (size_t)dev->id * MAX_N, *out = J->out + (size_t)dev->id * MAX_N;
    int rc = run_op(J->ccl, dev, J->axis, J->g, J->op, J->n, in, out);
    if (dev->id == J->want_id) {
        J->rc = rc;
        memcpy(J->result, out, J->n * sizeof(float));
    }
}

static void test_shape(shape s, int rank) {
    static float in[MAX_N], got[MAX_N], want[MAX_N], thr[MAX_N];
    meshlm_mesh *mesh = NULL;
    CHECK_MSG(meshlm_mesh_create(s.rows, s.cols, &mesh) == MESHLM_OK, "%s", meshlm_last_error());
    if (!mesh) return;
    const int devices = s.rows * s.cols;
    threads_job J = {.want_id = rank, .result = thr};
    J.in = malloc((size_t)devices * MAX_N * sizeof(float));
    J.out = malloc((size_t)devices * MAX_N * sizeof(float));
    CHECK(J.in && J.out);
    for (int t = 0; t < 2 && J.in && J.out; t++) {
        meshlm_ccl_options opts = {.topology = (meshlm_topology)t, .links = 1, .staging_bytes = STAGING};
        meshlm_ccl *mc = NULL, *tc = NULL;
        meshlm_device dev;
        CHECK_MSG(meshlm_ccl_create_mpi(s.rows, s.cols, &opts, &dev, &mc) == MESHLM_OK, "%s", meshlm_last_error());
        CHECK(meshlm_ccl_create(mesh, &opts, &tc) == MESHLM_OK);
        if (!mc || !tc) {
            meshlm_ccl_free(mc);
            meshlm_ccl_free(tc);
            continue;
        }
        CHECK(dev.id == rank && dev.row == rank / s.cols && dev.col == rank % s.cols);
        J.ccl = tc;
        for (int axis = 0; axis < 2; axis++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
                for (int op = 0; op < N_OPS; op++) {
                    const size_t n = sizes[si];
                    size_t len = reference(s, dev.row, dev.col, axis, opts.topology, op, n, want);
                    const int g = axis == 0 ? s.rows : s.cols;
                    CHECK_MSG(run_op(mc, &dev, axis, g, op, n, in, got) == MESHLM_OK, "%s", meshlm_last_error());
                    J.axis = axis;
                    J.g = g;
                    J.op = op;
                    J.n = n;
                    meshlm_mesh_run(mesh, threads_device, &J);
                    CHECK(J.rc == MESHLM_OK);
                    CHECK_MSG(!memcmp(got, want, len * sizeof(float)), "rank %d mesh %dx%d %s axis %d %s n=%zu: mpi",
                              rank, s.rows, s.cols, meshlm_topology_name(opts.topology), axis, op_names[op], n);
                    CHECK_MSG(!memcmp(thr, want, len * sizeof(float)),
                              "rank %d mesh %dx%d %s axis %d %s n=%zu: threads", rank, s.rows, s.cols,
                              meshlm_topology_name(opts.topology), axis, op_names[op], n);
                }
        /* An empty message and a bad axis return at once, on every rank alike. */
        CHECK(meshlm_ccl_all_reduce(mc, &dev, 1, got, 0) == MESHLM_OK);
        CHECK(meshlm_ccl_all_reduce(mc, &dev, 2, got, 1) == MESHLM_ERR_INVALID_ARG);
        meshlm_ccl_free(mc);
        meshlm_ccl_free(tc);
    }
    free(J.in);
    free(J.out);
    meshlm_mesh_free(mesh);
}

/* Rank 1 dies (kill) or stops answering (stall: it sleeps, alive, in no collective) while
 * every other rank is in a collective with it. Stalled, the others must give up after the
 * 2 s deadline with an error naming their rank and host. */
static int fault_run(int rank, int size, bool stall) {
    meshlm_ccl_options opts = {.topology = MESHLM_TOPOLOGY_RING, .links = 1, .staging_bytes = STAGING,
                               .timeout_s = stall ? 2.0 : 0};
    meshlm_ccl *c = NULL;
    meshlm_device dev;
    static float buf[MAX_N];
    if (size < 2 || meshlm_ccl_create_mpi(1, size, &opts, &dev, &c)) {
        fprintf(stderr, "kill: needs 2+ ranks: %s\n", meshlm_last_error());
        return 2;
    }
    for (long it = 0;; it++) {
        if (rank == 1 && it == 100 && !stall) raise(SIGKILL);
        if (rank == 1 && it == 100) sleep(600);
        if (meshlm_ccl_all_reduce(c, &dev, 1, buf, MAX_N)) {
            fprintf(stderr, "rank %d: %s\n", rank, meshlm_last_error());
            meshlm_ccl_free(c);
            return 1;
        }
    }
}

int main(int argc, char **argv) {
    int rc = meshlm_mpi_init(&argc, &argv);
    if (rc == MESHLM_ERR_UNSUPPORTED) {
        printf("skip: %s\n", meshlm_last_error());
        return 77;
    }
    int rank = 0, size = 1;
    CHECK_MSG(rc == MESHLM_OK && meshlm_mpi_world(&rank, &size) == MESHLM_OK, "%s", meshlm_last_error());
    if (argc > 1 && !strcmp(argv[1], "--kill")) return fault_run(rank, size, false);
    if (argc > 1 && !strcmp(argv[1], "--stall")) return fault_run(rank, size, true);
    meshlm_ccl_options opts = {.topology = MESHLM_TOPOLOGY_LINEAR, .links = 1, .staging_bytes = STAGING};
    meshlm_ccl *c = NULL;
    meshlm_device dev;
    CHECK(meshlm_ccl_create_mpi(size + 1, 1, &opts, &dev, &c) == MESHLM_ERR_INVALID_ARG && !c);
    for (int rows = 1; rows <= size; rows++)
        if (size % rows == 0) test_shape((shape){rows, size / rows}, rank);
    rc = t_done();
    meshlm_mpi_finalize();
    return rc;
}

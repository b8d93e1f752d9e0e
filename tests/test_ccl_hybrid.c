/* The hybrid mesh, run under mpiexec: R ranks host an R×C mesh, one row of C device threads
 * each. For every C given on the command line (default 1 2 3), both topologies, both axes
 * and every collective, each device must hold exactly the bits of a naive sum in the
 * topology's documented order, and exactly what the same device holds on an R×C threads
 * mesh in this process. Staging is small so large messages move in pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh.h"
#include "meshlm.h"
#include "t.h"

#include "ccl_ref.h"

enum { MAX_COLS = 16 };

/* One collective on every device a mesh hosts; buffers are indexed by the device's place
 * among them, so the same job serves a whole threads mesh and one hybrid row. */
typedef struct job {
    meshlm_ccl *ccl;
    int axis, op;
    size_t n;
    float *in, *out; /* [local device][MAX_N] */
    int *rc;         /* [local device] */
} job;

static void device(void *ctx, const meshlm_device *dev) {
    job *J = ctx;
    const int k = dev->id - meshlm_mesh_first_id(dev->mesh);
    float *in = J->in + (size_t)k * MAX_N, *out = J->out + (size_t)k * MAX_N;
    for (size_t i = 0; i < J->n; i++) in[i] = value(dev->id, J->n, i);
    switch (J->op) {
    case OP_ALL_REDUCE:
        memcpy(out, in, J->n * sizeof *out);
        J->rc[k] = meshlm_ccl_all_reduce(J->ccl, dev, J->axis, out, J->n);
        break;
    case OP_REDUCE_SCATTER: J->rc[k] = meshlm_ccl_reduce_scatter(J->ccl, dev, J->axis, in, J->n, out); break;
    case OP_ALL_TO_ALL: {
        size_t send[MESHLM_MESH_MAX_DEVICES], recv[MESHLM_MESH_MAX_DEVICES];
        a2a_counts(J->n, meshlm_mesh_axis_size(dev->mesh, J->axis), meshlm_mesh_rank(dev, J->axis), send, recv);
        J->rc[k] = meshlm_ccl_all_to_all(J->ccl, dev, J->axis, in, send, out, recv);
        break;
    }
    default: J->rc[k] = meshlm_ccl_all_gather(J->ccl, dev, J->axis, in, out, J->n, NULL); break;
    }
}

static bool job_alloc(job *J, int devices) {
    J->in = malloc((size_t)devices * MAX_N * sizeof(float));
    J->out = malloc((size_t)devices * MAX_N * sizeof(float));
    J->rc = calloc((size_t)devices, sizeof(int));
    return J->in && J->out && J->rc;
}

static void job_free(job *J) {
    free(J->in);
    free(J->out);
    free(J->rc);
}

static void test_shape(shape s, int rank, meshlm_topology topo) {
    static float want[MAX_N];
    meshlm_ccl_options opts = {.topology = topo, .links = 1, .staging_bytes = STAGING};
    meshlm_mesh *local = NULL, *tmesh = NULL;
    meshlm_ccl *hc = NULL, *tc = NULL;
    job H = {0}, T = {0};
    CHECK_MSG(meshlm_ccl_create_hybrid(s.rows, s.cols, &opts, &local, &hc) == MESHLM_OK, "%s",
              meshlm_last_error());
    CHECK_MSG(meshlm_mesh_create(s.rows, s.cols, &tmesh) == MESHLM_OK, "%s", meshlm_last_error());
    if (tmesh) CHECK(meshlm_ccl_create(tmesh, &opts, &tc) == MESHLM_OK);
    const bool ok = local && hc && tc && job_alloc(&H, s.cols) && job_alloc(&T, s.rows * s.cols);
    CHECK(ok);
    if (!ok) goto out;
    CHECK(meshlm_mesh_rows(local) == s.rows && meshlm_mesh_cols(local) == s.cols);
    CHECK(meshlm_mesh_size(local) == s.rows * s.cols && meshlm_mesh_local_size(local) == s.cols);
    CHECK(meshlm_mesh_first_id(local) == rank * s.cols);
    CHECK(meshlm_mesh_axis_size(local, 0) == s.rows && meshlm_mesh_axis_size(local, 1) == s.cols);
    H.ccl = hc;
    T.ccl = tc;
    for (int axis = 0; axis < 2; axis++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int op = 0; op < N_OPS; op++) {
                H.axis = T.axis = axis;
                H.op = T.op = op;
                H.n = T.n = sizes[si];
                meshlm_mesh_run(local, device, &H);
                meshlm_mesh_run(tmesh, device, &T);
                for (int col = 0; col < s.cols; col++) {
                    const int id = rank * s.cols + col;
                    const size_t len = reference(s, rank, col, axis, topo, op, H.n, want);
                    const float *got = H.out + (size_t)col * MAX_N, *thr = T.out + (size_t)id * MAX_N;
                    CHECK_MSG(H.rc[col] == MESHLM_OK && T.rc[id] == MESHLM_OK, "%s", meshlm_last_error());
                    CHECK_MSG(!memcmp(got, want, len * sizeof(float)), "rank %d mesh %dx%d col %d %s axis %d %s n=%zu",
                              rank, s.rows, s.cols, col, meshlm_topology_name(topo), axis, op_names[op], H.n);
                    CHECK_MSG(!memcmp(got, thr, len * sizeof(float)),
                              "rank %d mesh %dx%d col %d %s axis %d %s n=%zu: differs from threads", rank, s.rows,
                              s.cols, col, meshlm_topology_name(topo), axis, op_names[op], H.n);
                }
            }
    /* An empty message and a bad axis return at once, before any peer is involved. */
    meshlm_device d = {.mesh = local, .id = rank * s.cols, .row = rank, .col = 0, .cpu = -1};
    CHECK(meshlm_ccl_all_reduce(hc, &d, 0, want, 0) == MESHLM_OK);
    CHECK(meshlm_ccl_all_reduce(hc, &d, 2, want, 1) == MESHLM_ERR_INVALID_ARG);
out:
    job_free(&H);
    job_free(&T);
    meshlm_ccl_free(hc);
    meshlm_ccl_free(tc);
    meshlm_mesh_free(local);
    meshlm_mesh_free(tmesh);
}

int main(int argc, char **argv) {
    meshlm_ccl_options opts = {.topology = MESHLM_TOPOLOGY_LINEAR, .links = 1, .staging_bytes = STAGING};
    meshlm_mesh *local = NULL;
    meshlm_ccl *c = NULL;
    int rc = meshlm_mpi_init(&argc, &argv);
    if (rc == MESHLM_ERR_UNSUPPORTED) {
        CHECK(meshlm_ccl_create_hybrid(1, 2, &opts, &local, &c) == MESHLM_ERR_UNSUPPORTED && !local && !c);
        printf("skip: %s\n", meshlm_last_error());
        return t_failed ? 1 : 77;
    }
    int rank = 0, size = 1;
    CHECK_MSG(rc == MESHLM_OK && meshlm_mpi_world(&rank, &size) == MESHLM_OK, "%s", meshlm_last_error());
    rc = meshlm_ccl_create_hybrid(size + 1, 2, &opts, &local, &c);
    CHECK_MSG(rc == MESHLM_ERR_INVALID_ARG && !local && !c, "%s", meshlm_last_error());
    int cols[MAX_COLS] = {1, 2, 3}, n_cols = 3;
    if (argc > 1) {
        n_cols = 0;
        for (int i = 1; i < argc && n_cols < MAX_COLS; i++) cols[n_cols++] = atoi(argv[i]);
    }
    for (int i = 0; i < n_cols; i++)
        for (int t = 0; t < 2; t++) test_shape((shape){size, cols[i]}, rank, (meshlm_topology)t);
    rc = t_done();
    meshlm_mpi_finalize();
    return rc;
}

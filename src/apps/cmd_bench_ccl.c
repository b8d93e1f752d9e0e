/* meshlm bench-ccl: times all_reduce, reduce_scatter, all_gather and all_to_all over a size
 * sweep, in the manner of nccl-tests. Bus bandwidth scales algorithm bandwidth by the
 * fraction of the data each link must carry in an optimal algorithm: 2(n-1)/n for
 * all_reduce and (n-1)/n for the others, so it is comparable across group sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "mesh/mesh.h"
#include "meshlm.h"

static const char usage[] =
    "usage: meshlm bench-ccl [--mesh RxC] [--topology linear|ring|both] [--axis 0|1] [--links N]\n"
    "                        [--min-bytes N] [--max-bytes N] [--step 2|4] [--iters N] [--transport threads|mpi]\n"
    "\n"
    "Times each collective among the devices of one mesh axis over a size sweep.\n"
    "  --mesh RxC            devices as rows x columns (default 1x2)\n"
    "  --topology T          linear, ring or both (default both)\n"
    "  --axis A              0: devices of a column, 1: devices of a row (default 1)\n"
    "  --links N             chunks in flight (default 1)\n"
    "  --min-bytes N         smallest message (default 1024)\n"
    "  --max-bytes N         largest message (default 67108864)\n"
    "  --step F              size multiplier between rows (default 4)\n"
    "  --iters N             timed iterations per row, after 2 warm-up ones (default 20)\n"
    "  --transport T         threads (default) or mpi: one device per rank, run under\n"
    "                        mpiexec -n R*C; rank 0 prints the table\n";

/* Larger messages move through staging in pieces; this bounds the memory of big meshes. */
#define STAGING_CAP ((size_t)16 << 20)

enum { OP_ALL_REDUCE, OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_ALL_TO_ALL, N_OPS };
static const char *const op_names[N_OPS] = {"all_reduce", "reduce_scatter", "all_gather", "all_to_all"};

typedef struct bench_opts {
    const char *mesh;
    int topologies[2], n_topologies;
    int axis, links, step, iters;
    bool mpi;
    size_t min_bytes, max_bytes;
} bench_opts;

typedef struct bench {
    meshlm_ccl *ccl;
    int axis, op, iters, g; /* g: devices per group */
    size_t cap, n;
    float *in[MESHLM_MESH_MAX_DEVICES], *out[MESHLM_MESH_MAX_DEVICES];
    double secs[MESHLM_MESH_MAX_DEVICES];
    int rc[MESHLM_MESH_MAX_DEVICES];
} bench;

static bool parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    return meshlm_arg_int("bench-ccl", flag, s, lo, hi, out);
}

/* Applies one flag with a value; false (message printed) on a bad value. */
static bool apply(bench_opts *o, const char *flag, const char *v) {
    int64_t x = 0;
    if (!strcmp(flag, "--mesh")) {
        o->mesh = v;
    } else if (!strcmp(flag, "--topology")) {
        meshlm_topology t;
        if (!strcmp(v, "both")) {
            o->topologies[0] = MESHLM_TOPOLOGY_LINEAR;
            o->topologies[1] = MESHLM_TOPOLOGY_RING;
            o->n_topologies = 2;
        } else if (meshlm_topology_parse(v, &t) == MESHLM_OK) {
            o->topologies[0] = t;
            o->n_topologies = 1;
        } else {
            fprintf(stderr, "meshlm bench-ccl: --topology: '%s' is not linear, ring or both\n", v);
            return false;
        }
    } else if (!strcmp(flag, "--transport")) {
        if (strcmp(v, "threads") && strcmp(v, "mpi")) {
            fprintf(stderr, "meshlm bench-ccl: --transport: 'threads' or 'mpi', not '%s'\n", v);
            return false;
        }
        o->mpi = !strcmp(v, "mpi");
    } else if (!strcmp(flag, "--axis")) {
        if (!parse_int(flag, v, 0, 1, &x)) return false;
        o->axis = (int)x;
    } else if (!strcmp(flag, "--links")) {
        if (!parse_int(flag, v, 1, 64, &x)) return false;
        o->links = (int)x;
    } else if (!strcmp(flag, "--step")) {
        if (!parse_int(flag, v, 2, 4, &x) || x == 3) {
            if (x == 3) fprintf(stderr, "meshlm bench-ccl: --step: 2 or 4\n");
            return false;
        }
        o->step = (int)x;
    } else if (!strcmp(flag, "--iters")) {
        if (!parse_int(flag, v, 1, 1000000, &x)) return false;
        o->iters = (int)x;
    } else {
        if (!parse_int(flag, v, 4, (int64_t)1 << 34, &x)) return false;
        *(!strcmp(flag, "--min-bytes") ? &o->min_bytes : &o->max_bytes) = (size_t)x;
    }
    return true;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, bench_opts *o) {
    static const char *const flags[] = {"--mesh",      "--topology",  "--axis", "--links", "--min-bytes",
                                        "--max-bytes", "--step",      "--iters", "--transport"};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        bool known = false;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0] && !known; f++) {
            const char *v = NULL;
            bool missing = false;
            if (!meshlm_arg_take(argc, argv, &i, flags[f], NULL, &v, &missing)) continue;
            known = true;
            if (missing) {
                fprintf(stderr, "meshlm bench-ccl: %s needs a value\n", argv[i]);
                return 2;
            }
            if (!apply(o, flags[f], v)) return 2;
        }
        if (!known) {
            fprintf(stderr, "meshlm bench-ccl: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (o->min_bytes > o->max_bytes) {
        fprintf(stderr, "meshlm bench-ccl: --min-bytes %zu is above --max-bytes %zu\n", o->min_bytes, o->max_bytes);
        return 2;
    }
    return -1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each device allocates and writes its own buffers, so they are real pages local to its core
 * (calloc could leave them mapped to the shared zero page, which reads unrealistically fast);
 * zeros keep repeated in-place sums free of overflow and denormals. */
static void alloc_buffers(void *ctx, const meshlm_device *dev) {
    bench *b = ctx;
    float *in = malloc(b->cap * sizeof(float)), *out = malloc(b->cap * sizeof(float));
    if (in) memset(in, 0, b->cap * sizeof(float));
    if (out) memset(out, 0, b->cap * sizeof(float));
    b->in[dev->id] = in;
    b->out[dev->id] = out;
}

static void free_buffers(void *ctx, const meshlm_device *dev) {
    bench *b = ctx;
    free(b->in[dev->id]);
    free(b->out[dev->id]);
}

/* all_to_all: each device's n floats as g equal blocks, one for every device of the group. */
static int all_to_all(bench *b, const meshlm_device *dev, const float *in, float *out) {
    size_t counts[MESHLM_MESH_MAX_DEVICES];
    for (int k = 0; k < b->g; k++) counts[k] = b->n / (size_t)b->g;
    return meshlm_ccl_all_to_all(b->ccl, dev, b->axis, in, counts, out, counts);
}

static int run_op(bench *b, const meshlm_device *dev) {
    float *in = b->in[dev->id], *out = b->out[dev->id];
    switch (b->op) {
    case OP_ALL_TO_ALL: return all_to_all(b, dev, in, out);
    case OP_ALL_REDUCE: return meshlm_ccl_all_reduce(b->ccl, dev, b->axis, in, b->n);
    case OP_REDUCE_SCATTER: return meshlm_ccl_reduce_scatter(b->ccl, dev, b->axis, in, b->n, out);
    default: return meshlm_ccl_all_gather(b->ccl, dev, b->axis, in, out, b->n, NULL);
    }
}

static void time_op(void *ctx, const meshlm_device *dev) {
    bench *b = ctx;
    int rc = MESHLM_OK;
    for (int i = 0; i < 2 && !rc; i++) rc = run_op(b, dev);
    double t0 = now();
    for (int i = 0; i < b->iters && !rc; i++) rc = run_op(b, dev);
    b->secs[dev->id] = (now() - t0) / b->iters;
    b->rc[dev->id] = rc;
}

static double bus_factor(int op, int g) {
    if (g < 2) return 0;
    return (op == OP_ALL_REDUCE ? 2.0 : 1.0) * (g - 1) / g;
}

static void print_header(void) {
    printf("%12s %12s %15s %9s %11s %12s %12s\n", "size(B)", "count", "op", "topology", "time(us)", "algbw(GB/s)",
           "busbw(GB/s)");
}

static void print_row(size_t n, int op, int topology, double t, int g) {
    size_t bytes = n * sizeof(float);
    double algbw = (double)bytes / t / 1e9;
    printf("%12zu %12zu %15s %9s %11.2f %12.3f %12.3f\n", bytes, n, op_names[op],
           meshlm_topology_name((meshlm_topology)topology), t * 1e6, algbw, algbw * bus_factor(op, g));
    fflush(stdout);
}

/* One table row: the slowest device's time, since a collective ends when its last rank does. */
static int bench_row(meshlm_mesh *m, bench *b, int topology) {
    meshlm_mesh_run(m, time_op, b);
    double t = 0;
    for (int i = 0; i < meshlm_mesh_size(m); i++) {
        if (b->rc[i]) {
            fprintf(stderr, "meshlm bench-ccl: %s\n", meshlm_last_error());
            return 1;
        }
        if (b->secs[i] > t) t = b->secs[i];
    }
    print_row(b->n, b->op, topology, t, meshlm_mesh_axis_size(m, b->axis));
    return 0;
}

static int sweep(meshlm_mesh *m, const bench_opts *o, meshlm_ccl *const *ccls, bench *b) {
    b->g = meshlm_mesh_axis_size(m, b->axis);
    for (b->op = 0; b->op < N_OPS; b->op++)
        for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->step)
            for (int t = 0; t < o->n_topologies; t++) {
                b->ccl = ccls[t];
                b->n = bytes / sizeof(float);
                if (bench_row(m, b, o->topologies[t])) return 1;
            }
    return 0;
}

/* MPI: the slowest rank's time, gathered along each axis in turn so every rank sees it. */
static int slowest(meshlm_ccl *c, const meshlm_device *dev, const int g[2], double *secs) {
    size_t ones[MESHLM_MESH_MAX_DEVICES];
    float all[MESHLM_MESH_MAX_DEVICES];
    for (int k = 0; k < MESHLM_MESH_MAX_DEVICES; k++) ones[k] = 1;
    for (int axis = 0; axis < 2; axis++) {
        float t = (float)*secs;
        int rc = meshlm_ccl_all_gather(c, dev, axis, &t, all, (size_t)g[axis], ones);
        if (rc) return rc;
        for (int k = 0; k < g[axis]; k++)
            if (all[k] > *secs) *secs = all[k];
    }
    return MESHLM_OK;
}

/* MPI: this process is one device of the mesh; every rank runs the same sweep in step. */
static int sweep_mpi(const bench_opts *o, meshlm_ccl *const *ccls, const meshlm_device *dev, const int g[2],
                     float *in, float *out) {
    for (int op = 0; op < N_OPS; op++)
        for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->step)
            for (int t = 0; t < o->n_topologies; t++) {
                bench b = {.ccl = ccls[t], .axis = o->axis, .op = op, .iters = o->iters, .n = bytes / sizeof(float),
                           .g = g[o->axis]};
                b.in[dev->id] = in;
                b.out[dev->id] = out;
                time_op(&b, dev);
                double secs = b.secs[dev->id];
                int rc = b.rc[dev->id] ? b.rc[dev->id] : slowest(ccls[t], dev, g, &secs);
                if (rc) {
                    fprintf(stderr, "meshlm bench-ccl: rank %d: %s\n", dev->id, meshlm_last_error());
                    return 1;
                }
                if (dev->id == 0) print_row(b.n, op, o->topologies[t], secs, g[o->axis]);
            }
    return 0;
}

static int bench_mpi(const bench_opts *o, int rows, int cols) {
    int rank, size, code = 1;
    meshlm_ccl *ccls[2] = {NULL, NULL};
    meshlm_device dev;
    float *in = NULL, *out = NULL;
    if (meshlm_mpi_init(NULL, NULL) || meshlm_mpi_world(&rank, &size)) {
        fprintf(stderr, "meshlm bench-ccl: %s\n", meshlm_last_error());
        meshlm_mpi_finalize();
        return 2;
    }
    for (int t = 0; t < o->n_topologies; t++) {
        meshlm_ccl_options co = {.topology = (meshlm_topology)o->topologies[t], .transport = MESHLM_TRANSPORT_MPI,
                                 .links = o->links,
                                 .staging_bytes = o->max_bytes < STAGING_CAP ? o->max_bytes : STAGING_CAP};
        if (meshlm_ccl_create_mpi(rows, cols, &co, &dev, &ccls[t])) {
            fprintf(stderr, "meshlm bench-ccl: rank %d: %s\n", rank, meshlm_last_error());
            goto done;
        }
    }
    /* Written, as in alloc_buffers, so every page is real and sums stay finite. */
    in = malloc(o->max_bytes / sizeof(float) * sizeof(float));
    out = malloc(o->max_bytes / sizeof(float) * sizeof(float));
    if (!in || !out) {
        fprintf(stderr, "meshlm bench-ccl: rank %d: out of memory for 2 x %zu bytes\n", rank, o->max_bytes);
        goto done;
    }
    memset(in, 0, o->max_bytes / sizeof(float) * sizeof(float));
    memset(out, 0, o->max_bytes / sizeof(float) * sizeof(float));
    const int g[2] = {rows, cols};
    if (rank == 0) {
        printf("# meshlm bench-ccl: mesh %dx%d, axis %d (%d devices per group), transport mpi (%d ranks), "
               "%d iters\n#\n",
               rows, cols, o->axis, g[o->axis], size, o->iters);
        print_header();
    }
    code = sweep_mpi(o, ccls, &dev, g, in, out);
done:
    for (int t = 0; t < 2; t++) meshlm_ccl_free(ccls[t]);
    free(in);
    free(out);
    meshlm_mpi_finalize();
    return code;
}

int meshlm_cmd_bench_ccl(int argc, char **argv) {
    bench_opts o = {.mesh = "1x2", .topologies = {MESHLM_TOPOLOGY_LINEAR, MESHLM_TOPOLOGY_RING},
                    .n_topologies = 2, .axis = 1, .links = 1, .step = 4, .iters = 20,
                    .min_bytes = 1024, .max_bytes = (size_t)64 << 20};
    int code = parse_args(argc, argv, &o);
    if (code >= 0) return code;
    int rows, cols;
    meshlm_mesh *m = NULL;
    if (meshlm_mesh_parse(o.mesh, &rows, &cols)) {
        fprintf(stderr, "meshlm bench-ccl: %s\n", meshlm_last_error());
        return 2;
    }
    if (o.mpi) return bench_mpi(&o, rows, cols);
    if (meshlm_mesh_create(rows, cols, &m)) {
        fprintf(stderr, "meshlm bench-ccl: %s\n", meshlm_last_error());
        return 2;
    }
    bench *b = calloc(1, sizeof *b);
    meshlm_ccl *ccls[2] = {NULL, NULL};
    code = 1;
    if (!b) goto done;
    for (int t = 0; t < o.n_topologies; t++) {
        meshlm_ccl_options co = {.topology = (meshlm_topology)o.topologies[t], .transport = MESHLM_TRANSPORT_THREADS,
                                 .links = o.links, .staging_bytes = o.max_bytes < STAGING_CAP ? o.max_bytes : STAGING_CAP};
        if (meshlm_ccl_create(m, &co, &ccls[t])) {
            fprintf(stderr, "meshlm bench-ccl: %s\n", meshlm_last_error());
            goto done;
        }
    }
    b->axis = o.axis;
    b->iters = o.iters;
    b->cap = o.max_bytes / sizeof(float);
    meshlm_mesh_run(m, alloc_buffers, b);
    bool ok = true;
    for (int i = 0; i < meshlm_mesh_size(m); i++) ok = ok && b->in[i] && b->out[i];
    if (!ok) {
        fprintf(stderr, "meshlm bench-ccl: out of memory for %d devices x 2 x %zu bytes\n", meshlm_mesh_size(m),
                o.max_bytes);
    } else {
        printf("# meshlm bench-ccl: mesh %dx%d, axis %d (%d devices per group), transport threads, links %d, "
               "%s, %d iters\n#\n",
               rows, cols, o.axis, meshlm_mesh_axis_size(m, o.axis), o.links,
               meshlm_mesh_pinned(m) ? "pinned" : "unpinned", o.iters);
        print_header();
        code = sweep(m, &o, ccls, b);
    }
    meshlm_mesh_run(m, free_buffers, b);
done:
    for (int t = 0; t < 2; t++) meshlm_ccl_free(ccls[t]);
    free(b);
    meshlm_mesh_free(m);
    return code;
}

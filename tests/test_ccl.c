/* The mesh and its collectives: every collective against a double-precision reference on
 * many mesh shapes, both axes, both topologies, links 1 and 2, odd sizes and sizes smaller
 * than the group; bitwise repeatability; equal results on every rank; mesh-string errors. */
#include <stdint.h>
#include <string.h>

#include "mesh/mesh.h"
#include "meshlm.h"
#include "t.h"

enum { MAX_N = 4097 + 16 * 32, N_SIZES = 6 };

typedef struct suite {
    meshlm_ccl *ccl;
    int fails[MESHLM_MESH_MAX_DEVICES];
    /* Running hashes of each rank's all_reduce and all_gather results, per axis: equal on
     * every rank of a group when the collective leaves them all the same bits. */
    uint64_t hash[2][MESHLM_MESH_MAX_DEVICES];
} suite;

/* A reproducible value in [-1, 1) for element i of rank k's contribution. */
static float value(int axis, int other, int k, size_t n, size_t i) {
    uint64_t z = ((uint64_t)axis << 60) ^ ((uint64_t)other << 48) ^ ((uint64_t)k << 36) ^ ((uint64_t)n << 20) ^ i;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

static uint64_t mix(uint64_t h, const float *x, size_t n) {
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof *x; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define DEV_CHECK(S, dev, cond, ...)                                                      \
    do {                                                                                  \
        if (!(cond) && (S)->fails[(dev)->id]++ < 3) {                                     \
            fprintf(stderr, "device %d (%d,%d): %s: ", (dev)->id, (dev)->row, (dev)->col, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

typedef struct job {
    suite *s;
    int axis, g, r, other;
    float *a, *b, *c;
} job;

static void fill(const job *J, int k, size_t n, float *x, size_t count, size_t from) {
    for (size_t i = 0; i < count; i++) x[i] = value(J->axis, J->other, k, n, from + i);
}

/* Checks got[0..len) against the double sum over ranks of elements [from, from+len). */
static bool near_sum(const job *J, size_t n, const float *got, size_t from, size_t len) {
    for (size_t i = 0; i < len; i++) {
        double sum = 0, mag = 0;
        for (int k = 0; k < J->g; k++) {
            double v = value(J->axis, J->other, k, n, from + i);
            sum += v;
            mag += fabs(v);
        }
        if (fabs(got[i] - sum) > 1e-6 * J->g * mag + 1e-30) return false;
    }
    return true;
}

static void check_all_reduce(job *J, const meshlm_device *dev, size_t n) {
    suite *S = J->s;
    fill(J, J->r, n, J->a, n, 0);
    DEV_CHECK(S, dev, meshlm_ccl_all_reduce(S->ccl, dev, J->axis, J->a, n) == MESHLM_OK, "n=%zu", n);
    DEV_CHECK(S, dev, near_sum(J, n, J->a, 0, n), "all_reduce axis %d n=%zu", J->axis, n);
    fill(J, J->r, n, J->b, n, 0);
    meshlm_ccl_all_reduce(S->ccl, dev, J->axis, J->b, n);
    DEV_CHECK(S, dev, !memcmp(J->a, J->b, n * sizeof(float)), "all_reduce not repeatable, n=%zu", n);
    S->hash[J->axis][dev->id] = mix(S->hash[J->axis][dev->id], J->a, n);
}

static void check_reduce_scatter(job *J, const meshlm_device *dev, size_t n) {
    suite *S = J->s;
    size_t off, len;
    meshlm_ccl_chunk(n, J->g, J->r, &off, &len);
    fill(J, J->r, n, J->a, n, 0);
    DEV_CHECK(S, dev, meshlm_ccl_reduce_scatter(S->ccl, dev, J->axis, J->a, n, J->b) == MESHLM_OK, "n=%zu", n);
    DEV_CHECK(S, dev, near_sum(J, n, J->b, off, len), "reduce_scatter axis %d n=%zu", J->axis, n);
    meshlm_ccl_reduce_scatter(S->ccl, dev, J->axis, J->a, n, J->c);
    DEV_CHECK(S, dev, !memcmp(J->b, J->c, len * sizeof(float)), "reduce_scatter not repeatable, n=%zu", n);
}

/* Uneven counts when uneven is set (some zero), else the default chunking (counts NULL). */
static void check_all_gather(job *J, const meshlm_device *dev, size_t n, bool uneven) {
    suite *S = J->s;
    size_t counts[64], total = n, mine, off;
    if (uneven) {
        total = 0;
        for (int k = 0; k < J->g; k++) total += counts[k] = (n + 5 * (size_t)k) % 13;
        mine = counts[J->r];
    } else {
        meshlm_ccl_chunk(n, J->g, J->r, &off, &mine);
    }
    fill(J, J->r, total, J->a, mine, 0);
    memset(J->b, 0xff, total * sizeof(float));
    int rc = meshlm_ccl_all_gather(S->ccl, dev, J->axis, J->a, J->b, total, uneven ? counts : NULL);
    DEV_CHECK(S, dev, rc == MESHLM_OK, "n=%zu", total);
    size_t pos = 0;
    bool ok = true;
    for (int k = 0; k < J->g; k++) {
        size_t len = uneven ? counts[k] : 0;
        if (!uneven) meshlm_ccl_chunk(total, J->g, k, &off, &len);
        fill(J, k, total, J->c, len, 0);
        ok = ok && !memcmp(J->b + pos, J->c, len * sizeof(float));
        pos += len;
    }
    DEV_CHECK(S, dev, ok, "all_gather axis %d n=%zu uneven=%d", J->axis, total, uneven);
    S->hash[J->axis][dev->id] = mix(S->hash[J->axis][dev->id], J->b, total);
}

/* Floats rank k sends rank j in the all_to_all of size class n (some zero). */
static size_t a2a_count(size_t n, int k, int j) { return (n + 3 * (size_t)k + 7 * (size_t)j) % 11; }

/* Every rank's block for every other, of uneven sizes, lands whole in order; the same
 * exchange again gives the same bits. */
static void check_all_to_all(job *J, const meshlm_device *dev, size_t n) {
    suite *S = J->s;
    size_t send[64], recv[64], in_at = 0, out_len = 0;
    for (int k = 0; k < J->g; k++) {
        send[k] = a2a_count(n, J->r, k);
        recv[k] = a2a_count(n, k, J->r);
        fill(J, J->r * 64 + k, n, J->a + in_at, send[k], 0);
        in_at += send[k];
        out_len += recv[k];
    }
    memset(J->b, 0xff, out_len * sizeof(float));
    int rc = meshlm_ccl_all_to_all(S->ccl, dev, J->axis, J->a, send, J->b, recv);
    DEV_CHECK(S, dev, rc == MESHLM_OK, "all_to_all n=%zu", n);
    bool ok = true;
    for (int k = 0, pos = 0; k < J->g; pos += (int)recv[k], k++) {
        fill(J, k * 64 + J->r, n, J->c, recv[k], 0);
        ok = ok && !memcmp(J->b + pos, J->c, recv[k] * sizeof(float));
    }
    DEV_CHECK(S, dev, ok, "all_to_all axis %d n=%zu", J->axis, n);
}

static void run_suite(void *ctx, const meshlm_device *dev) {
    suite *S = ctx;
    job J = {.s = S};
    J.a = malloc(MAX_N * sizeof(float));
    J.b = malloc(MAX_N * sizeof(float));
    J.c = malloc(MAX_N * sizeof(float));
    for (J.axis = 0; J.axis < 2; J.axis++) {
        J.g = meshlm_mesh_axis_size(dev->mesh, J.axis);
        J.r = meshlm_mesh_rank(dev, J.axis);
        J.other = J.axis == 0 ? dev->col : dev->row;
        const size_t sizes[N_SIZES] = {1, 7, 1000, 4097, (size_t)(J.g > 1 ? J.g - 1 : 2), 0};
        for (int i = 0; i < N_SIZES; i++) {
            check_all_reduce(&J, dev, sizes[i]);
            check_reduce_scatter(&J, dev, sizes[i]);
            check_all_gather(&J, dev, sizes[i], false);
            if (J.g <= 64) check_all_gather(&J, dev, sizes[i], true);
            if (J.g <= 64) check_all_to_all(&J, dev, sizes[i]);
        }
    }
    free(J.a);
    free(J.b);
    free(J.c);
}

/* Runs the suite on one mesh with one CCL configuration; returns the suite for hashes. */
static void run_config(meshlm_mesh *m, meshlm_topology topo, int links, suite *S) {
    memset(S, 0, sizeof *S);
    /* Tiny staging, so long messages take the multi-piece paths. */
    meshlm_ccl_options o = {.topology = topo, .transport = MESHLM_TRANSPORT_THREADS, .links = links};
    CHECK(meshlm_ccl_create(m, &o, &S->ccl) == MESHLM_OK);
    if (!S->ccl) return;
    meshlm_mesh_run(m, run_suite, S);
    int fails = 0;
    for (int i = 0; i < meshlm_mesh_size(m); i++) fails += S->fails[i];
    CHECK_MSG(fails == 0, "mesh %dx%d %s links %d: %d failures", meshlm_mesh_rows(m), meshlm_mesh_cols(m),
              meshlm_topology_name(topo), links, fails);
    int rows = meshlm_mesh_rows(m), cols = meshlm_mesh_cols(m);
    bool same = true;
    for (int i = 0; i < rows * cols; i++) {
        same = same && S->hash[0][i] == S->hash[0][i % cols];  /* column peers equal row 0 */
        same = same && S->hash[1][i] == S->hash[1][i / cols * cols]; /* row peers equal col 0 */
    }
    CHECK_MSG(same, "mesh %dx%d %s links %d: ranks disagree", rows, cols, meshlm_topology_name(topo), links);
    meshlm_ccl_free(S->ccl);
}

static void test_mesh(int rows, int cols) {
    meshlm_mesh *m;
    CHECK(meshlm_mesh_create(rows, cols, &m) == MESHLM_OK);
    if (!m) return;
    static suite by_config[4];
    for (int t = 0; t < 2; t++)
        for (int links = 1; links <= 2; links++)
            run_config(m, t ? MESHLM_TOPOLOGY_RING : MESHLM_TOPOLOGY_LINEAR, links, &by_config[t * 2 + links - 1]);
    /* Links only reshape the pipeline, never the summation order. */
    CHECK(!memcmp(by_config[0].hash, by_config[1].hash, sizeof by_config[0].hash));
    CHECK(!memcmp(by_config[2].hash, by_config[3].hash, sizeof by_config[2].hash));
    /* Groups of one or two add in the same order under both topologies. */
    if (rows <= 2 && cols <= 2) CHECK(!memcmp(by_config[0].hash, by_config[2].hash, sizeof by_config[0].hash));
    meshlm_mesh_free(m);
}

static void test_parse(void) {
    int r = 0, c = 0;
    CHECK(meshlm_mesh_parse("8x4", &r, &c) == MESHLM_OK && r == 8 && c == 4);
    CHECK(meshlm_mesh_parse("1x1", &r, &c) == MESHLM_OK && r == 1 && c == 1);
    const char *bad[] = {"0x2", "2x", "axb", "1x100000", "", "x2", "2x0", "-1x2", "2x3x", " 1x2", "64x64"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(meshlm_mesh_parse(bad[i], &r, &c) == MESHLM_ERR_INVALID_ARG, "'%s' accepted", bad[i]);
        CHECK_MSG(strstr(meshlm_last_error(), bad[i]) != NULL, "'%s': %s", bad[i], meshlm_last_error());
    }
    CHECK(meshlm_mesh_parse("1x100000", &r, &c) < 0 && strstr(meshlm_last_error(), "more than"));
    CHECK(meshlm_mesh_parse("0x2", &r, &c) < 0 && strstr(meshlm_last_error(), "at least 1"));
}

/* Argument errors are found before any synchronization, so one thread may provoke them. */
static void test_bad_args(void) {
    meshlm_mesh *m;
    meshlm_ccl *c;
    CHECK(meshlm_mesh_create(1, 2, &m) == MESHLM_OK);
    meshlm_ccl_options o = {.topology = MESHLM_TOPOLOGY_RING, .links = 0};
    CHECK(meshlm_ccl_create(m, &o, &c) == MESHLM_ERR_INVALID_ARG);
    o.links = 1;
    CHECK(meshlm_ccl_create(m, &o, &c) == MESHLM_OK);
    meshlm_device d = {.mesh = m, .cpu = -1};
    float x[4] = {0};
    size_t counts[2] = {1, 1};
    CHECK(meshlm_ccl_all_reduce(c, &d, 2, x, 4) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_ccl_all_gather(c, &d, 1, x, x, 3, counts) == MESHLM_ERR_INVALID_ARG);
    meshlm_topology t;
    CHECK(meshlm_topology_parse("ring", &t) == MESHLM_OK && t == MESHLM_TOPOLOGY_RING);
    CHECK(meshlm_topology_parse("tree", &t) == MESHLM_ERR_INVALID_ARG);
    meshlm_ccl_free(c);
    meshlm_mesh_free(m);
}

static void test_chunk(void) {
    size_t off, len, next = 0;
    for (int i = 0; i < 3; i++) {
        meshlm_ccl_chunk(7, 3, i, &off, &len);
        CHECK(off == next && len == (i == 0 ? 3u : 2u));
        next = off + len;
    }
    meshlm_ccl_chunk(2, 4, 3, &off, &len);
    CHECK(off == 2 && len == 0);
}

int main(void) {
    test_parse();
    test_chunk();
    test_bad_args();
    const int shapes[][2] = {{1, 1}, {1, 2}, {1, 3}, {2, 2}, {1, 8}, {2, 4}, {4, 2}, {8, 4}, {1, 32}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_mesh(shapes[i][0], shapes[i][1]);
    return t_done();
}

/* What the CCL tests under mpiexec check against: reproducible inputs, and the bits each
 * device must hold after each collective, summed in the order the topology documents. */
#ifndef MESHLM_TEST_CCL_REF_H
#define MESHLM_TEST_CCL_REF_H

#include <stdint.h>

#include "mesh/mesh.h"

enum { MAX_N = 4099, STAGING = 1024 };
static const size_t sizes[] = {1, 3, 70, 1000, MAX_N};

enum { OP_ALL_REDUCE, OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_ALL_TO_ALL, N_OPS };
static const char *const op_names[N_OPS] = {"all_reduce", "reduce_scatter", "all_gather", "all_to_all"};

/* A reproducible value in [-1, 1) for element i of device id's contribution. */
static float value(int id, size_t n, size_t i) {
    uint64_t z = ((uint64_t)id << 48) ^ ((uint64_t)n << 24) ^ i;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

typedef struct shape {
    int rows, cols;
} shape;

static int member(shape s, int row, int col, int axis, int k) { return axis == 0 ? k * s.cols + col : row * s.cols + k; }

/* Element i of the sum over the group, in the order the topology promises. */
static float ref_sum(shape s, int row, int col, int axis, meshlm_topology topo, size_t n, size_t i) {
    const int g = axis == 0 ? s.rows : s.cols;
    if (topo == MESHLM_TOPOLOGY_LINEAR || g == 1) {
        float sum = value(member(s, row, col, axis, 0), n, i);
        for (int k = 1; k < g; k++) sum += value(member(s, row, col, axis, k), n, i);
        return sum;
    }
    int c = 0;
    for (size_t off, len;; c++) {
        meshlm_ccl_chunk(n, g, c, &off, &len);
        if (i < off + len) break;
    }
    float sum = value(member(s, row, col, axis, (c + 1) % g), n, i);
    for (int k = 2; k <= g; k++) sum = sum + value(member(s, row, col, axis, (c + k) % g), n, i);
    return sum;
}

/* The all_to_all of size class n over g ranks: the first n / g floats of each input, cut
 * by meshlm_ccl_chunk into g blocks, block k for rank k; fills send and recv for rank r. */
static void a2a_counts(size_t n, int g, int r, size_t *send, size_t *recv) {
    size_t off, len;
    for (int k = 0; k < g; k++) {
        meshlm_ccl_chunk(n / (size_t)g, g, k, &off, &send[k]);
        meshlm_ccl_chunk(n / (size_t)g, g, r, &off, &len);
        recv[k] = len;
    }
}

/* Fills want with what the device at (row, col) must hold after op; returns its length. */
static size_t reference(shape s, int row, int col, int axis, meshlm_topology topo, int op, size_t n, float *want) {
    const int g = axis == 0 ? s.rows : s.cols, r = axis == 0 ? row : col;
    size_t off, len;
    if (op == OP_ALL_REDUCE) {
        for (size_t i = 0; i < n; i++) want[i] = ref_sum(s, row, col, axis, topo, n, i);
        return n;
    }
    if (op == OP_REDUCE_SCATTER) {
        meshlm_ccl_chunk(n, g, r, &off, &len);
        for (size_t i = 0; i < len; i++) want[i] = ref_sum(s, row, col, axis, topo, n, off + i);
        return len;
    }
    if (op == OP_ALL_TO_ALL) {
        meshlm_ccl_chunk(n / (size_t)g, g, r, &off, &len);
        for (int k = 0; k < g; k++)
            for (size_t i = 0; i < len; i++) want[(size_t)k * len + i] = value(member(s, row, col, axis, k), n, off + i);
        return (size_t)g * len;
    }
    for (int k = 0; k < g; k++) {
        meshlm_ccl_chunk(n, g, k, &off, &len);
        for (size_t i = 0; i < len; i++) want[off + i] = value(member(s, row, col, axis, k), n, i);
    }
    return n;
}

#endif

/* The mesh: its shape, its device threads, and the fork-join launcher that runs one function
 * on every device. Device threads live as long as the mesh, so what a device first-touches
 * stays on its core's memory node for the mesh's whole life. */
#include "mesh/mesh.h"

#include <ctype.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/sync.h"

struct meshlm_mesh {
    int rows, cols; /* the global shape */
    int n;          /* device threads in this process */
    int first;      /* global id of the first of them (hosted devices are consecutive) */
    bool pinned;
    meshlm_device *devs;
    pthread_t *threads;
    int n_started;
    /* Launcher state: fn, ctx and stopping are written before go is bumped and read after,
     * so the flag's release/acquire orders them. */
    meshlm_flag go;   /* job generation */
    meshlm_flag done; /* device completions, n per job */
    uint32_t generation;
    meshlm_device_fn fn;
    void *ctx;
    bool stopping;
};

/* Reads a positive decimal at *p, advancing it; false when there are no digits or the
 * value exceeds limit (stops early so huge strings cannot overflow). */
static bool read_dim(const char **p, long limit, long *out) {
    const char *s = *p;
    long v = 0;
    if (!isdigit((unsigned char)*s)) return false;
    while (isdigit((unsigned char)*s)) {
        if (v <= limit) v = v * 10 + (*s - '0');
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

int meshlm_mesh_parse(const char *text, int *rows, int *cols) {
    if (!text) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh: no shape given (expected RxC, e.g. 1x8)");
    const char *p = text;
    long r, c;
    const long limit = MESHLM_MESH_MAX_DEVICES;
    if (!read_dim(&p, limit, &r) || (*p != 'x' && *p != 'X'))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh '%s': expected RxC with whole numbers, e.g. 1x8 or 8x4",
                           text);
    p++;
    if (!read_dim(&p, limit, &c) || *p)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh '%s': expected RxC with whole numbers, e.g. 1x8 or 8x4",
                           text);
    if (r < 1 || c < 1)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh '%s': rows and columns must be at least 1", text);
    if (r > limit || c > limit || r * c > limit)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh '%s': more than %d devices", text,
                           MESHLM_MESH_MAX_DEVICES);
    *rows = (int)r;
    *cols = (int)c;
    return MESHLM_OK;
}

static void *device_main(void *arg) {
    meshlm_device *d = arg;
    meshlm_mesh *m = d->mesh;
    if (d->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(d->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    for (uint32_t gen = 1;; gen++) {
        meshlm_flag_wait(&m->go, gen);
        if (m->stopping) break;
        m->fn(m->ctx, d);
        meshlm_flag_add(&m->done);
    }
    return NULL;
}

/* Gives device i the i-th allowed core when every device can have its own; otherwise
 * pinning would stack devices unevenly, so the scheduler places them. */
static void assign_cores(meshlm_mesh *m) {
    cpu_set_t set;
    m->pinned = false;
    for (int i = 0; i < m->n; i++) m->devs[i].cpu = -1;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < m->n) return;
    int i = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && i < m->n; cpu++)
        if (CPU_ISSET(cpu, &set)) m->devs[i++].cpu = cpu;
    m->pinned = true;
}

static void stop_threads(meshlm_mesh *m) {
    m->stopping = true;
    meshlm_flag_set(&m->go, ++m->generation);
    for (int i = 0; i < m->n_started; i++) pthread_join(m->threads[i], NULL);
    m->n_started = 0;
}

static int check_shape(int rows, int cols) {
    if (rows < 1 || cols < 1 || (long)rows * cols > MESHLM_MESH_MAX_DEVICES)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh %dx%d: need 1..%d devices", rows, cols,
                           MESHLM_MESH_MAX_DEVICES);
    return MESHLM_OK;
}

/* Hosts the devices first .. first+n-1 of a rows×cols mesh whose shape is already checked. */
static int create(int rows, int cols, int first, int n, meshlm_mesh **out) {
    meshlm_mesh *m = calloc(1, sizeof *m);
    if (!m) return meshlm_fail(MESHLM_ERR_NOMEM, "mesh %dx%d: out of memory", rows, cols);
    m->rows = rows;
    m->cols = cols;
    m->n = n;
    m->first = first;
    m->devs = calloc((size_t)m->n, sizeof *m->devs);
    m->threads = calloc((size_t)m->n, sizeof *m->threads);
    if (!m->devs || !m->threads) {
        meshlm_mesh_free(m);
        return meshlm_fail(MESHLM_ERR_NOMEM, "mesh %dx%d: out of memory", rows, cols);
    }
    for (int i = 0; i < m->n; i++) {
        const int id = first + i;
        m->devs[i] = (meshlm_device){.mesh = m, .id = id, .row = id / cols, .col = id % cols};
    }
    assign_cores(m);
    for (int i = 0; i < m->n; i++) {
        int rc = pthread_create(&m->threads[i], NULL, device_main, &m->devs[i]);
        if (rc) {
            meshlm_mesh_free(m);
            return meshlm_fail(MESHLM_ERR_NOMEM, "mesh %dx%d: cannot start device thread %d: %s", rows, cols, i,
                               strerror(rc));
        }
        m->n_started++;
    }
    *out = m;
    return MESHLM_OK;
}

int meshlm_mesh_create(int rows, int cols, meshlm_mesh **out) {
    *out = NULL;
    int rc = check_shape(rows, cols);
    return rc ? rc : create(rows, cols, 0, rows * cols, out);
}

int meshlm_mesh_create_row(int rows, int cols, int row, meshlm_mesh **out) {
    *out = NULL;
    int rc = check_shape(rows, cols);
    if (rc) return rc;
    if (row < 0 || row >= rows) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh %dx%d: no row %d", rows, cols, row);
    return create(rows, cols, row * cols, cols, out);
}

void meshlm_mesh_free(meshlm_mesh *m) {
    if (!m) return;
    if (m->n_started) stop_threads(m);
    free(m->threads);
    free(m->devs);
    free(m);
}

int meshlm_mesh_rows(const meshlm_mesh *m) { return m->rows; }
int meshlm_mesh_cols(const meshlm_mesh *m) { return m->cols; }
int meshlm_mesh_size(const meshlm_mesh *m) { return m->rows * m->cols; }
int meshlm_mesh_local_size(const meshlm_mesh *m) { return m->n; }
int meshlm_mesh_first_id(const meshlm_mesh *m) { return m->first; }
bool meshlm_mesh_pinned(const meshlm_mesh *m) { return m->pinned; }

int meshlm_mesh_axis_size(const meshlm_mesh *m, int axis) { return axis == 0 ? m->rows : m->cols; }

int meshlm_mesh_rank(const meshlm_device *dev, int axis) { return axis == 0 ? dev->row : dev->col; }

void meshlm_mesh_run(meshlm_mesh *m, meshlm_device_fn fn, void *ctx) {
    m->fn = fn;
    m->ctx = ctx;
    m->generation++;
    meshlm_flag_set(&m->go, m->generation);
    meshlm_flag_wait(&m->done, m->generation * (uint32_t)m->n);
}

/* Collectives among the devices of one mesh axis, over shared memory between device threads.
 *
 * Each device owns one slot per axis: a progress flag that only grows and the buffer pointers
 * it publishes for the current collective. A device never writes a peer's memory; it pulls
 * from a peer once that peer's flag says the data is there, and before it overwrites
 * anything a peer reads it waits for that peer's flag to say the read is done. Every rank
 * of a group advances its flag by the same number of units per collective, so all ranks
 * agree on the flag values without exchanging them. A collective returns only after its
 * readers are done, so callers may reuse their buffers at once. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "mesh/ccl_mpi.h"
#include "mesh/mesh.h"
#include "core/sync.h"

/* Staging must hold at least this many floats per group member, so a ring piece moves
 * enough data per flag handshake to be worth it. */
enum { MIN_STAGING_PER_RANK = 64 };

typedef struct slot {
    alignas(64) meshlm_flag flag;
    const float *src; /* the contribution a peer may read */
    float *dst;       /* the result buffer a peer may read (in-place and gather paths) */
    const size_t *counts; /* all_to_all: how many floats of src go to each rank */
} slot;

typedef struct group {
    meshlm_ccl *c;
    int axis, g, r;
    int row, col; /* the caller's coordinates, to find peers */
    slot *self;
    uint32_t base; /* this device's flag at the start of the collective */
} group;

typedef struct transport {
    int (*all_reduce)(group *G, float *buf, size_t n);
    int (*reduce_scatter)(group *G, const float *in, size_t n, float *out);
    int (*all_gather)(group *G, const float *in, float *out, const size_t *counts);
    int (*all_to_all)(group *G, const float *in, const size_t *send, float *out, const size_t *recv);
} transport;

struct meshlm_ccl {
    meshlm_mesh *mesh;
    meshlm_ccl_options opt;
    const transport *tp;
    /* MPI endpoints: one (mesh NULL) replaces tp, slots and staging for a device per rank;
     * in a hybrid mesh, one per column carries axis 0 while axis 1 stays on the threads. */
    mesh_mpi **mpi;
    int n_mpi;
    size_t staging_floats;
    slot *slots;     /* [local device][axis] */
    float **staging; /* per local device, first-touched by its thread */
};

void meshlm_ccl_chunk(size_t n, int g, int i, size_t *off, size_t *len) {
    size_t q = n / (size_t)g, rem = n % (size_t)g, ui = (size_t)i;
    *off = ui * q + (ui < rem ? ui : rem);
    *len = q + (ui < rem);
}

/* The peer's index among this process's devices (its global id less the first hosted one). */
static int peer_id(const group *G, int rank) {
    int cols = meshlm_mesh_cols(G->c->mesh);
    return (G->axis == 0 ? rank * cols + G->col : G->row * cols + rank) - meshlm_mesh_first_id(G->c->mesh);
}

static slot *peer_slot(const group *G, int rank) { return &G->c->slots[peer_id(G, rank) * 2 + G->axis]; }

static float *peer_staging(const group *G, int rank) { return G->c->staging[peer_id(G, rank)]; }

static int ring_mod(int a, int g) { return ((a % g) + g) % g; }

/* Flag value after unit u of a collective (unit 0 is the publish). */
static uint32_t unit(const group *G, uint32_t u) { return G->base + u + 1; }

static void wait_all(const group *G, uint32_t target) {
    for (int k = 0; k < G->g; k++)
        if (k != G->r) meshlm_flag_wait(&peer_slot(G, k)->flag, target);
}

/* Linear all_reduce: each piece of the message is copied into staging segment by segment
 * (links segments, so readers start on early segments while later ones are copied), then
 * every rank sums all stagings in rank order into its own buffer. */
static int linear_all_reduce(group *G, float *x, size_t n) {
    const int links = G->c->opt.links;
    const size_t cap = G->c->staging_floats;
    if (G->g == 1) return MESHLM_OK;
    float *mine = peer_staging(G, G->r);
    uint32_t u = 0;
    for (size_t po = 0; po < n; po += cap) {
        size_t pl = n - po < cap ? n - po : cap;
        for (int j = 0; j < links; j++) {
            size_t so, sl;
            meshlm_ccl_chunk(pl, links, j, &so, &sl);
            memcpy(mine + so, x + po + so, sl * sizeof *x);
            meshlm_flag_set(&G->self->flag, unit(G, u + (uint32_t)j));
        }
        for (int j = 0; j < links; j++) {
            size_t so, sl;
            meshlm_ccl_chunk(pl, links, j, &so, &sl);
            wait_all(G, unit(G, u + (uint32_t)j));
            float *out = x + po + so;
            memcpy(out, peer_staging(G, 0) + so, sl * sizeof *x);
            for (int k = 1; k < G->g; k++) {
                const float *s = peer_staging(G, k) + so;
                for (size_t i = 0; i < sl; i++) out[i] += s[i];
            }
        }
        u += (uint32_t)links;
        meshlm_flag_set(&G->self->flag, unit(G, u));
        wait_all(G, unit(G, u));
        u++;
    }
    return MESHLM_OK;
}

/* Linear reduce_scatter: each rank sums its own chunk straight from the peers' inputs. */
static int linear_reduce_scatter(group *G, const float *in, size_t n, float *out) {
    size_t off, len;
    meshlm_ccl_chunk(n, G->g, G->r, &off, &len);
    G->self->src = in;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    wait_all(G, unit(G, 0));
    const float *first = G->r == 0 ? in : peer_slot(G, 0)->src;
    memcpy(out, first + off, len * sizeof *out);
    for (int k = 1; k < G->g; k++) {
        const float *s = (k == G->r ? in : peer_slot(G, k)->src) + off;
        for (size_t i = 0; i < len; i++) out[i] += s[i];
    }
    meshlm_flag_set(&G->self->flag, unit(G, 1));
    wait_all(G, unit(G, 1));
    return MESHLM_OK;
}

/* Linear all_gather: each rank copies every peer's contribution from the peer's input. */
static int linear_all_gather(group *G, const float *in, float *out, const size_t *counts) {
    G->self->src = in;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    wait_all(G, unit(G, 0));
    size_t off = 0;
    for (int k = 0; k < G->g; k++) {
        const float *s = k == G->r ? in : peer_slot(G, k)->src;
        memcpy(out + off, s, counts[k] * sizeof *out);
        off += counts[k];
    }
    meshlm_flag_set(&G->self->flag, unit(G, 1));
    wait_all(G, unit(G, 1));
    return MESHLM_OK;
}

/* Where rank k's block of an all_to_all input starts: the blocks before it, end to end. */
static size_t block_at(const size_t *counts, int k) {
    size_t off = 0;
    for (int j = 0; j < k; j++) off += counts[j];
    return off;
}

/* Copies the block peer k's published input holds for this rank into out at its place. */
static void pull_block(group *G, int k, const float *in, const size_t *send, float *out, const size_t *recv) {
    const slot *p = k == G->r ? NULL : peer_slot(G, k);
    const float *src = p ? p->src : in;
    const size_t *cnt = p ? p->counts : send;
    memcpy(out + block_at(recv, k), src + block_at(cnt, G->r), recv[k] * sizeof *out);
}

/* Linear all_to_all: every rank publishes its input, then copies its block from every
 * peer's at once. */
static int linear_all_to_all(group *G, const float *in, const size_t *send, float *out, const size_t *recv) {
    G->self->src = in;
    G->self->counts = send;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    wait_all(G, unit(G, 0));
    for (int k = 0; k < G->g; k++) pull_block(G, k, in, send, out, recv);
    meshlm_flag_set(&G->self->flag, unit(G, 1));
    wait_all(G, unit(G, 1));
    return MESHLM_OK;
}

/* Ring all_to_all: g - 1 steps after the own block; at step t rank r takes its block from
 * rank r - t, once that one rank has published, so each step loads one link per rank. */
static int ring_all_to_all(group *G, const float *in, const size_t *send, float *out, const size_t *recv) {
    const int g = G->g, r = G->r;
    G->self->src = in;
    G->self->counts = send;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    pull_block(G, r, in, send, out, recv);
    for (int t = 1; t < g; t++) {
        const int k = ring_mod(r - t, g);
        meshlm_flag_wait(&peer_slot(G, k)->flag, unit(G, 0));
        pull_block(G, k, in, send, out, recv);
    }
    meshlm_flag_set(&G->self->flag, unit(G, 1));
    wait_all(G, unit(G, 1));
    return MESHLM_OK;
}

/* Ring all_reduce, in place: g-1 reduce-scatter steps then g-1 all-gather steps, each split
 * into links sub-chunks. At step u rank r pulls the sub-chunk its left neighbour finished at
 * step u-1. Partial sums live in the user buffers themselves, so no staging is needed; before
 * overwriting a partial during the gather, a rank waits until its right neighbour has read it. */
static int ring_all_reduce(group *G, float *x, size_t n) {
    const int g = G->g, r = G->r, links = G->c->opt.links;
    if (g == 1) return MESHLM_OK;
    slot *left = peer_slot(G, ring_mod(r - 1, g)), *right = peer_slot(G, ring_mod(r + 1, g));
    G->self->dst = x;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    meshlm_flag_wait(&left->flag, unit(G, 0));
    const float *lx = left->dst;
    for (int u = 0; u < 2 * g - 2; u++) {
        const bool reduce = u < g - 1;
        const int t = reduce ? u : u - (g - 1);
        const int c = reduce ? ring_mod(r - u - 2, g) : ring_mod(r - 1 - t, g);
        size_t off, len;
        meshlm_ccl_chunk(n, g, c, &off, &len);
        for (int j = 0; j < links; j++) {
            size_t so, sl;
            meshlm_ccl_chunk(len, links, j, &so, &sl);
            if (u > 0) meshlm_flag_wait(&left->flag, unit(G, 1 + (uint32_t)((u - 1) * links + j)));
            if (!reduce) meshlm_flag_wait(&right->flag, unit(G, 1 + (uint32_t)(t * links + j)));
            float *d = x + off + so;
            const float *s = lx + off + so;
            if (reduce)
                for (size_t i = 0; i < sl; i++) d[i] = s[i] + d[i];
            else
                memcpy(d, s, sl * sizeof *d);
            meshlm_flag_set(&G->self->flag, unit(G, 1 + (uint32_t)(u * links + j)));
        }
    }
    meshlm_flag_wait(&right->flag, unit(G, (uint32_t)((2 * g - 2) * links)));
    return MESHLM_OK;
}

/* Ring reduce_scatter: like the reduce half of the ring all_reduce, but inputs are read-only,
 * so partial sums go to staging. A message larger than staging moves in pieces, each piece
 * taking the same slice of every chunk so a rank's result lands in its own chunk. */
static int ring_reduce_scatter(group *G, const float *in, size_t n, float *out) {
    const int g = G->g, r = G->r, links = G->c->opt.links;
    size_t roff, rlen;
    meshlm_ccl_chunk(n, g, r, &roff, &rlen);
    if (g == 1) {
        memcpy(out, in, n * sizeof *out);
        return MESHLM_OK;
    }
    const int lr = ring_mod(r - 1, g);
    slot *left = peer_slot(G, lr), *right = peer_slot(G, ring_mod(r + 1, g));
    float *mine = peer_staging(G, r);
    const float *lstage = peer_staging(G, lr);
    G->self->src = in;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    meshlm_flag_wait(&left->flag, unit(G, 0));
    const float *lin = left->src;
    const size_t per = G->c->staging_floats / (size_t)g, longest = (n + (size_t)g - 1) / (size_t)g;
    uint32_t u = 1;
    for (size_t po = 0; po < longest; po += per) {
        for (int s = 0; s < g - 1; s++) {
            const int c = ring_mod(r - s - 2, g);
            size_t off, len;
            meshlm_ccl_chunk(n, g, c, &off, &len);
            size_t pl = len > po ? (len - po < per ? len - po : per) : 0;
            for (int j = 0; j < links; j++) {
                size_t so, sl;
                meshlm_ccl_chunk(pl, links, j, &so, &sl);
                if (s > 0) meshlm_flag_wait(&left->flag, unit(G, u + (uint32_t)((s - 1) * links + j)));
                const float *a = s == 0 ? lin + off + po + so : lstage + (size_t)c * per + so;
                const float *b = in + off + po + so;
                float *d = s == g - 2 ? out + po + so : mine + (size_t)c * per + so;
                for (size_t i = 0; i < sl; i++) d[i] = a[i] + b[i];
                meshlm_flag_set(&G->self->flag, unit(G, u + (uint32_t)(s * links + j)));
            }
        }
        u += (uint32_t)((g - 1) * links);
        meshlm_flag_wait(&right->flag, unit(G, u - 1));
    }
    return MESHLM_OK;
}

/* Ring all_gather: each rank places its own contribution, then pulls one chunk per step
 * from its left neighbour's output, the chunk that neighbour received the step before. */
static int ring_all_gather(group *G, const float *in, float *out, const size_t *counts) {
    const int g = G->g, r = G->r, links = G->c->opt.links;
    size_t roff = 0;
    for (int k = 0; k < r; k++) roff += counts[k];
    memcpy(out + roff, in, counts[r] * sizeof *out);
    if (g == 1) return MESHLM_OK;
    slot *left = peer_slot(G, ring_mod(r - 1, g)), *right = peer_slot(G, ring_mod(r + 1, g));
    G->self->dst = out;
    meshlm_flag_set(&G->self->flag, unit(G, 0));
    meshlm_flag_wait(&left->flag, unit(G, 0));
    const float *lout = left->dst;
    for (int t = 0; t < g - 1; t++) {
        const int c = ring_mod(r - 1 - t, g);
        size_t off = 0;
        for (int k = 0; k < c; k++) off += counts[k];
        for (int j = 0; j < links; j++) {
            size_t so, sl;
            meshlm_ccl_chunk(counts[c], links, j, &so, &sl);
            if (t > 0) meshlm_flag_wait(&left->flag, unit(G, 1 + (uint32_t)((t - 1) * links + j)));
            memcpy(out + off + so, lout + off + so, sl * sizeof *out);
            meshlm_flag_set(&G->self->flag, unit(G, 1 + (uint32_t)(t * links + j)));
        }
    }
    meshlm_flag_wait(&right->flag, unit(G, (uint32_t)((g - 1) * links)));
    return MESHLM_OK;
}

static const transport threads_linear = {linear_all_reduce, linear_reduce_scatter, linear_all_gather,
                                         linear_all_to_all};
static const transport threads_ring = {ring_all_reduce, ring_reduce_scatter, ring_all_gather, ring_all_to_all};

int meshlm_topology_parse(const char *text, meshlm_topology *out) {
    if (text && !strcmp(text, "linear")) *out = MESHLM_TOPOLOGY_LINEAR;
    else if (text && !strcmp(text, "ring")) *out = MESHLM_TOPOLOGY_RING;
    else return meshlm_fail(MESHLM_ERR_INVALID_ARG, "topology '%s': expected linear or ring", text ? text : "");
    return MESHLM_OK;
}

const char *meshlm_topology_name(meshlm_topology t) { return t == MESHLM_TOPOLOGY_RING ? "ring" : "linear"; }

/* Each device zeroes its own staging so the pages land on its memory node. */
static void touch_staging(void *ctx, const meshlm_device *dev) {
    meshlm_ccl *c = ctx;
    memset(c->staging[dev->id - meshlm_mesh_first_id(c->mesh)], 0, c->staging_floats * sizeof(float));
}

int meshlm_ccl_create(meshlm_mesh *m, const meshlm_ccl_options *opts, meshlm_ccl **out) {
    *out = NULL;
    if (opts->links < 1 || opts->links > 64)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl: links must be in 1..64, got %d", opts->links);
    if (opts->transport != MESHLM_TRANSPORT_THREADS)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl: a thread mesh needs the threads transport; "
                                                   "use meshlm_ccl_create_mpi for MPI");
    if (opts->topology != MESHLM_TOPOLOGY_LINEAR && opts->topology != MESHLM_TOPOLOGY_RING)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl: unknown topology %d", (int)opts->topology);
    meshlm_ccl *c = calloc(1, sizeof *c);
    if (!c) return meshlm_fail(MESHLM_ERR_NOMEM, "ccl: out of memory");
    const int n = meshlm_mesh_local_size(m);
    int widest = meshlm_mesh_rows(m) > meshlm_mesh_cols(m) ? meshlm_mesh_rows(m) : meshlm_mesh_cols(m);
    size_t floor_floats = (size_t)widest * MIN_STAGING_PER_RANK;
    c->mesh = m;
    c->opt = *opts;
    c->tp = opts->topology == MESHLM_TOPOLOGY_RING ? &threads_ring : &threads_linear;
    c->staging_floats = opts->staging_bytes / sizeof(float);
    if (c->staging_floats < floor_floats) c->staging_floats = floor_floats;
    c->slots = aligned_alloc(alignof(slot), (size_t)n * 2 * sizeof *c->slots);
    c->staging = calloc((size_t)n, sizeof *c->staging);
    if (!c->slots || !c->staging) {
        meshlm_ccl_free(c);
        return meshlm_fail(MESHLM_ERR_NOMEM, "ccl: out of memory");
    }
    memset(c->slots, 0, (size_t)n * 2 * sizeof *c->slots);
    size_t bytes = (c->staging_floats * sizeof(float) + 63) / 64 * 64;
    for (int i = 0; i < n; i++) {
        c->staging[i] = aligned_alloc(64, bytes);
        if (!c->staging[i]) {
            meshlm_ccl_free(c);
            return meshlm_fail(MESHLM_ERR_NOMEM, "ccl: cannot allocate %zu bytes of staging for %d devices", bytes,
                               n);
        }
    }
    meshlm_mesh_run(m, touch_staging, c);
    *out = c;
    return MESHLM_OK;
}

int meshlm_ccl_create_mpi(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev,
                          meshlm_ccl **out) {
    *out = NULL;
    if (opts->topology != MESHLM_TOPOLOGY_LINEAR && opts->topology != MESHLM_TOPOLOGY_RING)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl: unknown topology %d", (int)opts->topology);
    meshlm_ccl *c = calloc(1, sizeof *c);
    if (c) c->mpi = calloc(1, sizeof *c->mpi);
    if (!c || !c->mpi) {
        free(c);
        return meshlm_fail(MESHLM_ERR_NOMEM, "ccl: out of memory");
    }
    c->opt = *opts;
    c->opt.transport = MESHLM_TRANSPORT_MPI;
    c->n_mpi = 1;
    int rc = mesh_mpi_create(rows, cols, opts, dev, &c->mpi[0]);
    if (rc) {
        meshlm_ccl_free(c);
        return rc;
    }
    *out = c;
    return MESHLM_OK;
}

/* The MPI endpoints come first: creating them is collective, so a rank that fails later, on
 * its own threads or memory, leaves no peer blocked inside the setup. */
int meshlm_ccl_create_hybrid(int rows, int cols, const meshlm_ccl_options *opts, meshlm_mesh **local,
                             meshlm_ccl **out) {
    *local = NULL;
    *out = NULL;
    int row, rc = mesh_mpi_hybrid_row(rows, &row);
    if (rc) return rc;
    if (cols < 1 || (long)rows * cols > MESHLM_MESH_MAX_DEVICES)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "mesh %dx%d: need 1..%d devices", rows, cols,
                           MESHLM_MESH_MAX_DEVICES);
    mesh_mpi **eps = calloc((size_t)cols, sizeof *eps);
    if (!eps) return meshlm_fail(MESHLM_ERR_NOMEM, "ccl: out of memory");
    for (int col = 0; col < cols && !rc; col++) rc = mesh_mpi_create_column(rows, cols, col, opts, &eps[col]);
    meshlm_ccl_options topts = *opts;
    topts.transport = MESHLM_TRANSPORT_THREADS;
    if (!rc) rc = meshlm_mesh_create_row(rows, cols, row, local);
    if (!rc) rc = meshlm_ccl_create(*local, &topts, out);
    if (rc) {
        for (int col = 0; col < cols; col++) mesh_mpi_free(eps[col]);
        free(eps);
        meshlm_mesh_free(*local);
        *local = NULL;
        return rc;
    }
    (*out)->mpi = eps;
    (*out)->n_mpi = cols;
    (*out)->opt.transport = MESHLM_TRANSPORT_MPI;
    return MESHLM_OK;
}

void meshlm_ccl_free(meshlm_ccl *c) {
    if (!c) return;
    for (int i = 0; i < c->n_mpi; i++) mesh_mpi_free(c->mpi[i]);
    free(c->mpi);
    if (c->staging)
        for (int i = 0; i < meshlm_mesh_local_size(c->mesh); i++) free(c->staging[i]);
    free(c->staging);
    free(c->slots);
    free(c);
}

/* Fills the caller's view of its group and picks the MPI endpoint that carries it (NULL
 * when the threads do). An empty message returns before any handshake in every entry point:
 * all ranks agree on n, so none of them waits for the others. */
static int enter(meshlm_ccl *c, const meshlm_device *dev, int axis, group *G, mesh_mpi **ep) {
    *ep = !c->mpi ? NULL : !c->mesh ? c->mpi[0] : axis == 0 ? c->mpi[dev->col] : NULL;
    if (axis != 0 && axis != 1) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl: axis must be 0 or 1, got %d", axis);
    G->c = c;
    G->axis = axis;
    G->g = c->mesh ? meshlm_mesh_axis_size(c->mesh, axis) : mesh_mpi_axis_size(*ep, axis);
    G->r = meshlm_mesh_rank(dev, axis);
    G->row = dev->row;
    G->col = dev->col;
    if (*ep) return MESHLM_OK;
    G->self = &c->slots[(dev->id - meshlm_mesh_first_id(c->mesh)) * 2 + axis];
    G->base = atomic_load_explicit(&G->self->flag.value, memory_order_relaxed);
    return MESHLM_OK;
}

int meshlm_ccl_all_reduce(meshlm_ccl *c, const meshlm_device *dev, int axis, float *buf, size_t n) {
    group G;
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc || !n) return rc;
    return ep ? mesh_mpi_all_reduce(ep, axis, buf, n) : c->tp->all_reduce(&G, buf, n);
}

int meshlm_ccl_reduce_scatter(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, size_t n,
                              float *out) {
    group G;
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc || !n) return rc;
    return ep ? mesh_mpi_reduce_scatter(ep, axis, in, n, out) : c->tp->reduce_scatter(&G, in, n, out);
}

/* Counts are caller memory, read-only here; the default layout fills a stack array so the
 * call still allocates nothing. */
int meshlm_ccl_all_gather(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, float *out,
                          size_t n, const size_t *counts) {
    group G;
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc) return rc;
    size_t even[MESHLM_MESH_MAX_DEVICES];
    if (!counts) {
        for (int k = 0; k < G.g; k++) {
            size_t off;
            meshlm_ccl_chunk(n, G.g, k, &off, &even[k]);
        }
        counts = even;
    } else {
        size_t total = 0;
        for (int k = 0; k < G.g; k++) total += counts[k];
        if (total != n)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "ccl all_gather: counts add up to %zu, not n = %zu", total, n);
    }
    if (!n) return MESHLM_OK;
    return ep ? mesh_mpi_all_gather(ep, axis, in, out, counts) : c->tp->all_gather(&G, in, out, counts);
}

int meshlm_ccl_all_to_all(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, const size_t *send,
                          float *out, const size_t *recv) {
    group G;
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc) return rc;
    /* No early return when this rank moves nothing: its counts say nothing of its peers'. */
    return ep ? mesh_mpi_all_to_all(ep, axis, in, send, out, recv) : c->tp->all_to_all(&G, in, send, out, recv);
}

/* ---- the reduce-scatter fused into its producer, and its column all-gather ---- */

bool meshlm_ccl_axis_shared(const meshlm_ccl *c, int axis) { return !c->mpi || (c->mesh && axis != 0); }

void meshlm_ccl_cols(size_t ld, int g, const int64_t *bounds, int j, size_t *off, size_t *len) {
    if (!bounds) {
        meshlm_ccl_chunk(ld, g, j, off, len);
        return;
    }
    *off = (size_t)bounds[j];
    *len = (size_t)(bounds[j + 1] - bounds[j]);
}

int meshlm_ccl_rs_begin(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, size_t rows, size_t ld,
                        const int64_t *bounds, meshlm_ccl_rs *rs) {
    group G = {0};
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc) return rc;
    if (ep) return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "ccl: the fused reduce-scatter needs a shared-memory axis");
    *rs = (meshlm_ccl_rs){.c = c, .axis = axis, .g = G.g, .r = G.r, .rows = rows, .ld = ld, .bounds = bounds,
                          .base = G.base, .row = G.row, .col = G.col};
    G.self->src = in;
    return MESHLM_OK;
}

int meshlm_ccl_rs_chunk(const meshlm_ccl_rs *rs, int k) { return ring_mod(rs->r + 1 + k, rs->g); }

/* The group view of rs, for the slot helpers. */
static group rs_group(const meshlm_ccl_rs *rs) {
    group G = {.c = rs->c, .axis = rs->axis, .g = rs->g, .r = rs->r, .row = rs->row, .col = rs->col,
               .base = rs->base};
    G.self = peer_slot(&G, rs->r);
    return G;
}

void meshlm_ccl_rs_ready(meshlm_ccl_rs *rs, int k) {
    group G = rs_group(rs);
    meshlm_flag_set(&G.self->flag, unit(&G, (uint32_t)k));
}

int meshlm_ccl_rs_end(meshlm_ccl_rs *rs, float *out) {
    group G = rs_group(rs);
    size_t off, len;
    meshlm_ccl_cols(rs->ld, G.g, rs->bounds, G.r, &off, &len);
    for (int p = 0; p < G.g; p++) {
        /* rank p makes this rank's chunk as its k-th, once unit k of its flag is set */
        const float *s = p == G.r ? G.self->src : NULL;
        if (!s) {
            slot *ps = peer_slot(&G, p);
            meshlm_flag_wait(&ps->flag, unit(&G, (uint32_t)ring_mod(G.r - p - 1, G.g)));
            s = ps->src;
        }
        for (size_t t = 0; t < rs->rows; t++) {
            const float *a = s + t * rs->ld + off;
            float *o = out + t * len;
            if (p == 0)
                memcpy(o, a, len * sizeof *o);
            else
                for (size_t i = 0; i < len; i++) o[i] += a[i];
        }
    }
    meshlm_flag_set(&G.self->flag, unit(&G, (uint32_t)G.g));
    wait_all(&G, unit(&G, (uint32_t)G.g));
    return MESHLM_OK;
}

int meshlm_ccl_all_gather_cols(meshlm_ccl *c, const meshlm_device *dev, int axis, const float *in, float *out,
                               size_t rows, size_t ld, const int64_t *bounds) {
    group G = {0};
    mesh_mpi *ep;
    int rc = enter(c, dev, axis, &G, &ep);
    if (rc) return rc;
    if (ep) return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "ccl: the column all-gather needs a shared-memory axis");
    G.self->src = in;
    meshlm_flag_set(&G.self->flag, unit(&G, 0));
    wait_all(&G, unit(&G, 0));
    for (int p = 0; p < G.g; p++) {
        size_t off, len;
        meshlm_ccl_cols(ld, G.g, bounds, p, &off, &len);
        const float *s = p == G.r ? in : peer_slot(&G, p)->src;
        for (size_t t = 0; t < rows; t++) memcpy(out + t * ld + off, s + t * len, len * sizeof *out);
    }
    meshlm_flag_set(&G.self->flag, unit(&G, 1));
    wait_all(&G, unit(&G, 1));
    return MESHLM_OK;
}

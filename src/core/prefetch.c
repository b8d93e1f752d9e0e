#include "core/prefetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/status.h"
#include "core/sync.h"

enum { CACHE_LINE = 64 };

struct meshlm_prefetch {
    meshlm_prefetch_region *regions;
    uint64_t *prefix; /* prefix[i] = bytes of regions [0, i); prefix[n] = one pass */
    int n;
    meshlm_prefetch_params params;
    size_t page;
    meshlm_flag cursor; /* where compute is; set only by the compute thread */
    _Atomic uint32_t progress;
    _Atomic bool stop;
    bool started;
    pthread_t thread;
};

/* Bytes from the start of pass 0 to global index g, so the distance between two global
 * indices is a subtraction whatever passes they fall in. */
static uint64_t offset_of(const meshlm_prefetch *pf, uint32_t g) {
    return (uint64_t)(g / (uint32_t)pf->n) * pf->prefix[pf->n] + pf->prefix[g % (uint32_t)pf->n];
}

/* Brings one region in: WILLNEED starts the kernel's readahead for the whole range at
 * once, the page reads then wait for it page by page, so compute finds the pages mapped. */
static void visit(const meshlm_prefetch *pf, const meshlm_prefetch_region *r) {
    if (r->bytes == 0) return;
    uintptr_t lo = (uintptr_t)r->data & ~(uintptr_t)(pf->page - 1);
    uintptr_t hi = (uintptr_t)r->data + r->bytes;
    (void)madvise((void *)lo, hi - lo, MADV_WILLNEED); /* advice only: failure changes nothing */
    const volatile char *p = r->data;
    for (size_t off = 0; off < r->bytes; off += pf->page) (void)p[off];
    if (pf->params.mode == MESHLM_PREFETCH_LINES)
        for (size_t off = 0; off < r->bytes; off += CACHE_LINE) __builtin_prefetch((const char *)r->data + off, 0, 1);
}

static void *prefetch_main(void *arg) {
    meshlm_prefetch *pf = arg;
    uint32_t g = 0;
    while (!atomic_load_explicit(&pf->stop, memory_order_acquire)) {
        uint32_t at = meshlm_flag_get(&pf->cursor);
        if ((int32_t)(g - at) < 0) g = at; /* compute overtook us: nothing behind it is useful */
        if (!pf->params.cyclic && g >= (uint32_t)pf->n) break;
        if (offset_of(pf, g) - offset_of(pf, at) > pf->params.window && g != at) {
            meshlm_flag_wait(&pf->cursor, at + 1);
            continue;
        }
        visit(pf, &pf->regions[g % (uint32_t)pf->n]);
        g++;
        atomic_store_explicit(&pf->progress, g, memory_order_release);
    }
    return NULL;
}

int meshlm_prefetch_start(const meshlm_prefetch_region *regions, int n, const meshlm_prefetch_params *p,
                          meshlm_prefetch **out) {
    *out = NULL;
    if (!regions || n < 1 || !p)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "prefetch: needs at least one region (got %d)", n);
    meshlm_prefetch *pf = calloc(1, sizeof *pf);
    if (!pf) return meshlm_fail(MESHLM_ERR_NOMEM, "prefetch: out of memory");
    pf->regions = malloc((size_t)n * sizeof *pf->regions);
    pf->prefix = malloc(((size_t)n + 1) * sizeof *pf->prefix);
    if (!pf->regions || !pf->prefix) {
        meshlm_prefetch_stop(pf);
        return meshlm_fail(MESHLM_ERR_NOMEM, "prefetch: out of memory for %d regions", n);
    }
    memcpy(pf->regions, regions, (size_t)n * sizeof *regions);
    pf->prefix[0] = 0;
    for (int i = 0; i < n; i++) pf->prefix[i + 1] = pf->prefix[i] + regions[i].bytes;
    pf->n = n;
    pf->params = *p;
    long page = sysconf(_SC_PAGESIZE);
    pf->page = page > 0 ? (size_t)page : 4096;
    if (pthread_create(&pf->thread, NULL, prefetch_main, pf) != 0) {
        meshlm_prefetch_stop(pf);
        return meshlm_fail(MESHLM_ERR_INTERNAL, "prefetch: cannot start its thread");
    }
    pf->started = true;
    *out = pf;
    return MESHLM_OK;
}

void meshlm_prefetch_at(meshlm_prefetch *pf, uint32_t g) {
    if (pf && g != meshlm_flag_get(&pf->cursor)) meshlm_flag_set(&pf->cursor, g);
}

uint32_t meshlm_prefetch_progress(meshlm_prefetch *pf) {
    return atomic_load_explicit(&pf->progress, memory_order_acquire);
}

void meshlm_prefetch_stop(meshlm_prefetch *pf) {
    if (!pf) return;
    if (pf->started) {
        atomic_store_explicit(&pf->stop, true, memory_order_release);
        /* A jump far ahead wakes a prefetcher waiting for compute; it then sees stop. */
        meshlm_flag_set(&pf->cursor, meshlm_flag_get(&pf->cursor) + (1u << 30));
        pthread_join(pf->thread, NULL);
    }
    free(pf->regions);
    free(pf->prefix);
    free(pf);
}

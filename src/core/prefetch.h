/* The weight prefetcher: a thread that walks the weights in the order a forward pass reads
 * them and brings each region into memory before compute gets there, the CPU form of the
 * seed's DRAM prefetcher. Compute announces where it is; the prefetcher stays at most a
 * window of bytes ahead, so a model larger than the page cache is streamed rather than
 * thrashed, and a cold mmap'd file is read while the first layers already compute. */
#ifndef MESHLM_CORE_PREFETCH_H
#define MESHLM_CORE_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct meshlm_prefetch meshlm_prefetch;

typedef struct meshlm_prefetch_region {
    const void *data;
    size_t bytes;
} meshlm_prefetch_region;

typedef enum meshlm_prefetch_mode {
    /* madvise(WILLNEED) then read one byte per page: faults pages in (cold start, page
     * cache misses) without pulling the data through the caches. */
    MESHLM_PREFETCH_PAGES = 0,
    /* Also issue a prefetch for every cache line, streaming the region toward the shared
     * cache just ahead of compute (warm runs; costs bandwidth compute may need). */
    MESHLM_PREFETCH_LINES = 1,
} meshlm_prefetch_mode;

typedef struct meshlm_prefetch_params {
    meshlm_prefetch_mode mode;
    size_t window; /* bytes the prefetcher may run ahead of the region compute is at */
    bool cyclic;   /* after the last region, start over (one forward pass after another) */
} meshlm_prefetch_params;

/* Copies regions[0..n) (n >= 1) and starts the thread. Regions are visited in order;
 * region i of pass k has the global index k * n + i. MESHLM_ERR_INVALID_ARG / NOMEM /
 * INTERNAL (thread creation). */
int meshlm_prefetch_start(const meshlm_prefetch_region *regions, int n, const meshlm_prefetch_params *p,
                          meshlm_prefetch **out);

/* Compute is now at global index g (non-decreasing; call from one thread). Cheap: one
 * atomic store, and a wake only when the prefetcher sleeps. */
void meshlm_prefetch_at(meshlm_prefetch *pf, uint32_t g);

/* Global index of the next region the prefetcher will visit (all before it are done). */
uint32_t meshlm_prefetch_progress(meshlm_prefetch *pf);

/* Stops and joins the thread, frees pf (NULL is fine). Returns promptly even when the
 * prefetcher is waiting for compute. */
void meshlm_prefetch_stop(meshlm_prefetch *pf);

#endif

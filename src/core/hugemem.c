#include "core/hugemem.h"

#include <stdlib.h>
#include <sys/mman.h>

void *meshlm_alloc_weights(size_t bytes) {
    void *p = NULL;
    /* Small buffers start on a cache line, where the panel layouts align their loads. */
    if (bytes < MESHLM_HUGE_PAGE) return posix_memalign(&p, 64, bytes ? bytes : 1) ? NULL : p;
    if (posix_memalign(&p, MESHLM_HUGE_PAGE, bytes)) return NULL;
    /* The advice covers this buffer's whole huge pages only, wherever malloc placed it; a
     * failed madvise (no THP) leaves small pages. */
    (void)madvise(p, bytes / MESHLM_HUGE_PAGE * MESHLM_HUGE_PAGE, MADV_HUGEPAGE);
    return p;
}

/* Buffers for weights a forward pass streams, on transparent huge pages where the kernel
 * allows it. Decode reads every matrix once per token: on 4 KiB pages that is a TLB miss
 * every 4 KiB (two-level walks under a hypervisor), on 2 MiB pages one every 2 MiB. */
#ifndef MESHLM_CORE_HUGEMEM_H
#define MESHLM_CORE_HUGEMEM_H

#include <stddef.h>

enum { MESHLM_HUGE_PAGE = 2 << 20 };

/* bytes of memory, freed with free(): 64-byte aligned, and from 2 MiB up 2 MiB aligned with
 * its whole 2 MiB pages advised MADV_HUGEPAGE; the tail stays on small pages, so no huge
 * page is faulted in for a few bytes. The advice is a hint: with THP off the buffer is
 * still good. NULL when out of memory. */
void *meshlm_alloc_weights(size_t bytes);

#endif

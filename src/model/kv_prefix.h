/* The prefix index of a paged KV pool: full pages registered under their place in a chain
 * (the entry of the page before them, 0 for a sequence's first page) and the page_size
 * token ids they hold, so a later sequence whose prompt starts with the same tokens can
 * find and share their KV instead of computing it again.
 *
 * Exactness. Each registration gets a fresh 64-bit entry id, never reused; a page is found
 * under (parent entry id, its tokens), compared in full after the hash matches. By induction
 * a chain of found pages holds exactly the KV of the tokens looked up: the first page's
 * tokens equal ours, and each next page was computed after exactly the entry found before
 * it. A page whose parent entry went away (evicted) is never found again; it only waits for
 * eviction. Hash collisions therefore cost a probe, never wrong KV.
 *
 * Everything is allocated at init, sized by the pool's page count: the table has at least
 * twice as many slots as there are pages, so probes stay short and it never fills. */
#ifndef MESHLM_MODEL_KV_PREFIX_H
#define MESHLM_MODEL_KV_PREFIX_H

#include <stdint.h>

typedef struct meshlm_kv_index {
    int32_t n_pages, page_size;
    uint32_t mask;     /* table slots - 1 (a power of two) */
    int32_t *table;    /* linear probing over page ids; -1 = empty */
    uint64_t *hash;    /* per page: hash of (parent, tokens), valid while registered */
    uint64_t *id;      /* per page: its entry id; 0 = not registered */
    uint64_t *parent;  /* per page: the entry id of the page before it; 0 = a first page */
    int32_t *tokens;   /* per page: its page_size token ids */
    uint64_t next_id;  /* the id the next registration gets (from 1) */
} meshlm_kv_index;

/* Allocates an empty index for n_pages pages of page_size tokens. MESHLM_ERR_NOMEM. */
int meshlm_kv_index_init(meshlm_kv_index *x, int32_t n_pages, int32_t page_size);
/* Frees the arrays (an index that failed init, or a zeroed one, is fine). */
void meshlm_kv_index_free(meshlm_kv_index *x);

/* The registered page holding tokens (page_size of them) right after the entry parent
 * (0 = at a sequence's start), or -1. */
int32_t meshlm_kv_index_find(const meshlm_kv_index *x, uint64_t parent, const int32_t *tokens);
/* Registers an unregistered page under (parent, tokens), which no page holds yet; returns
 * its new entry id. */
uint64_t meshlm_kv_index_add(meshlm_kv_index *x, int32_t page, uint64_t parent, const int32_t *tokens);
/* Unregisters a registered page: it is found no more, and neither are the pages after it. */
void meshlm_kv_index_remove(meshlm_kv_index *x, int32_t page);

#endif

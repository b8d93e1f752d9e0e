/* Paged KV cache: one pool of fixed-size pages per device, shared by every sequence, each
 * sequence holding a page table. Lets 32+ users share one memory budget without one long
 * sequence reserving a whole context's worth of cache up front.
 *
 * Page layout. A page holds page_size consecutive positions of one sequence, for every layer:
 *     page = [layer 0: K rows | V rows] [layer 1: K rows | V rows] ... [pad to 64 bytes]
 * where "K rows" is page_size rows of kv_dim values encoded in the pool's type, position-major
 * (meshlm_type_row_bytes(type, kv_dim) bytes each). Attention walks one layer's positions, so
 * the K rows it reads (and then the V rows) are contiguous within a page; pages start on a
 * cache line.
 *
 * Prefix caching. Pages are reference counted: a sequence's table may hold full pages that
 * other sequences hold too, read-only. A full page can be registered in the pool's prefix
 * index (kv_prefix.h) under the tokens it holds and the entry of the page before it; a later
 * sequence whose tokens start the same way maps those pages instead of computing them. A
 * registered page no sequence holds stays cached (its bytes kept, on an LRU list) until a
 * reserve needs it: reserves take free pages first, then evict the least recently used.
 *
 * Threads: reserve, release and register change the shared lists and must come from one
 * thread at a time (the scheduler). write, dot and axpy touch only a sequence's own pages: any number of
 * threads may call them at once on different (sequence, position) rows. */
#ifndef MESHLM_MODEL_KV_PAGED_H
#define MESHLM_MODEL_KV_PAGED_H

#include <stddef.h>
#include <stdint.h>

typedef struct meshlm_kv_params {
    int32_t n_layer;   /* layers held */
    int32_t kv_dim;    /* KV heads held x head_dim (all heads on one device, a slice on a mesh) */
    int32_t head_dim;  /* head size: kv_dim is a whole number of heads */
    int32_t page_size; /* positions per page, e.g. 16..256 */
    int type;          /* meshlm_type: F32, F16, BF16 or Q8_0. Q8_0 encodes blocks of 32 values,
                        * so it needs head_dim % 32 == 0 (a block never mixes two heads). */
    size_t mem_bytes;  /* budget: capacity = mem_bytes / meshlm_kv_page_bytes, allocated at create */
} meshlm_kv_params;

/* The pages, the free list and the params; one per device. */
typedef struct meshlm_kv_pool meshlm_kv_pool;

/* A sequence's page table: pages[i] holds positions [i * page_size, (i + 1) * page_size).
 * len positions are reserved (n_pages = ceil(len / page_size)), at most max_len; unused
 * entries are -1. max_pages = ceil(max_len / page_size) is the table's size. The first
 * n_dropped pages were given back early (meshlm_kv_drop): their entries are -1 too. */
typedef struct meshlm_kv_seq {
    int32_t *pages;
    int32_t n_pages, max_pages, len, max_len, n_dropped;
} meshlm_kv_seq;

/* A KV type by name ("f32", "f16", "bf16", "q8_0", any case; NULL = F32), or
 * MESHLM_ERR_INVALID_ARG naming the choices. */
int meshlm_kv_type_parse(const char *name, int *type);

/* Bytes of one page with these params (all layers, K and V, padded to 64), or 0 if they
 * are invalid or overflow; for `info` and for sizing a budget. */
size_t meshlm_kv_page_bytes(const meshlm_kv_params *p);

/* Validates p and allocates every page the budget holds, once (first-touched by the calling
 * thread: create it on the device's own thread). MESHLM_ERR_INVALID_ARG / UNSUPPORTED / NOMEM. */
int meshlm_kv_pool_create(const meshlm_kv_params *p, meshlm_kv_pool **out);
/* Frees the pool and its pages (NULL is fine). Sequences still holding pages must not be
 * used afterwards, except for meshlm_kv_seq_free. */
void meshlm_kv_pool_free(meshlm_kv_pool *kv);

/* Capacity in pages (fixed at create). */
int32_t meshlm_kv_pool_pages(const meshlm_kv_pool *kv);
/* Pages on the free list now. */
int32_t meshlm_kv_pool_free_pages(const meshlm_kv_pool *kv);
/* Cached pages: registered, held by no sequence, evicted when a reserve needs them. Pages
 * free + cached are what a reserve may take; the rest are held. */
int32_t meshlm_kv_pool_cached_pages(const meshlm_kv_pool *kv);
/* Positions per page. */
int32_t meshlm_kv_pool_page_size(const meshlm_kv_pool *kv);

/* Empties s and allocates its page table for up to max_positions (>= 1), the only
 * allocation a sequence makes. MESHLM_ERR_INVALID_ARG / NOMEM. */
int meshlm_kv_seq_init(meshlm_kv_seq *s, int32_t max_positions, const meshlm_kv_pool *kv);
/* Frees the page table; release its pages to their pool first. */
void meshlm_kv_seq_free(meshlm_kv_seq *s);

/* Grows s to new_len reserved positions, taking the pages it lacks from the free list, then
 * from the least recently used cached pages (new_len <= len changes nothing). All or
 * nothing: on MESHLM_ERR_RANGE ("KV cache full" or beyond max_positions) neither s nor the
 * pool changes. No allocation. */
int meshlm_kv_reserve(meshlm_kv_pool *kv, meshlm_kv_seq *s, int32_t new_len);
/* Reserves new_len positions for the empty sequence s whose first tokens are tokens[0..n)
 * (n <= new_len): its first pages are the longest chain of registered pages holding
 * tokens[0..k * page_size) for k <= n / page_size, shared (their counts go up), the rest as
 * meshlm_kv_reserve takes them. *n_hit = k; *chain = the entry of the k-th page (0 if
 * none), for meshlm_kv_register of the pages after it. Positions below k * page_size hold
 * the tokens' KV already and must not be written. All or nothing as reserve; no allocation. */
int meshlm_kv_reserve_prefix(meshlm_kv_pool *kv, meshlm_kv_seq *s, const int32_t *tokens, int32_t n,
                             int32_t new_len, int32_t *n_hit, uint64_t *chain);
/* Registers page i of s, whose page_size positions are all written with the KV of tokens
 * following the entry chain (0 for page 0), so later sequences may share it. A page already
 * registered, or content some other page already holds, is kept as it is. Returns the entry
 * now standing for the prefix through page i: the chain argument for page i + 1. A dropped
 * page is not registered and gives 0: no page after it may be registered either. */
uint64_t meshlm_kv_register(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t i, uint64_t chain,
                            const int32_t *tokens);
/* Drops s's hold on each of its pages and sets len = 0 (a second call does nothing). A page
 * no sequence holds any more goes to the free list, or, if registered, stays cached as the
 * most recently used. The pages keep their bytes until another sequence writes them. */
void meshlm_kv_release(meshlm_kv_pool *kv, meshlm_kv_seq *s);

/* Gives back the pages of s wholly below position pos, as release does, for a model whose
 * every layer sees only a window of recent positions: nothing reads them again. Later
 * reserves keep growing s at its end; positions below n_dropped * page_size are gone (write
 * and read refuse them) until a release empties s. */
void meshlm_kv_drop(meshlm_kv_pool *kv, meshlm_kv_seq *s, int32_t pos);

/* Stores k and v (kv_dim floats each) at (layer, pos) of s, converted to the pool's type.
 * MESHLM_ERR_RANGE if layer or pos is outside the pool or the reserved length, or dropped. */
int meshlm_kv_write(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, const float *k,
                    const float *v);
/* Stores one slice [off, off + len) of the K and V rows at (layer, pos) (a head: the fused
 * QKV step writes each head as soon as it is roped); off and len are whole blocks of the
 * pool's type; k or v may be NULL (that row is left as it is). The same bytes as a
 * meshlm_kv_write of rows holding these values there. */
int meshlm_kv_write_slice(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, int32_t off,
                          int32_t len, const float *k, const float *v);
/* Decodes the stored K and V rows at (layer, pos) into k and v (kv_dim floats each; either
 * may be NULL). Same bounds as write, same errors. */
int meshlm_kv_read(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, float *k,
                   float *v);

/* The pool's element type (F32, F16, BF16 or Q8_0). */
int meshlm_kv_pool_type(const meshlm_kv_pool *kv);
/* Bytes from one position's K (or V) row to the next one's within a page. */
size_t meshlm_kv_pool_row_bytes(const meshlm_kv_pool *kv);
/* The stored K (which = 0) or V (which = 1) row at (layer, pos) of s, kv_dim values encoded
 * in the pool's type: lets attention run its own loops over F32 rows. Bounds as for dot/axpy
 * below (unchecked). */
const void *meshlm_kv_row(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, int which);


#endif

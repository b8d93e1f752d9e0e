#include "model/kv_paged.h"

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"
#include "model/kv_prefix.h"

#define PAGE_ALIGN 64

/* A page is in exactly one state: held (ref > 0, by that many sequences), cached (ref 0 but
 * registered in the prefix index, on the LRU list) or free (on the free stack). */
struct meshlm_kv_pool {
    meshlm_kv_params p;
    size_t row_bytes;  /* one K or V row of kv_dim values */
    size_t page_bytes; /* page stride, padded to PAGE_ALIGN */
    int32_t n_pages, n_free, n_cached;
    int32_t *free_ids; /* stack: free_ids[0..n_free) are free, the top is taken first */
    int32_t *ref;      /* per page: the sequences whose tables hold it */
    int32_t *prev, *next, lru_head, lru_tail; /* cached pages, least recently used first; -1 ends */
    meshlm_kv_index index;
    uint8_t *data;
};

static bool type_ok(int t) {
    return t == MESHLM_TYPE_F32 || t == MESHLM_TYPE_F16 || t == MESHLM_TYPE_BF16 || t == MESHLM_TYPE_Q8_0;
}

int meshlm_kv_type_parse(const char *name, int *type) {
    *type = name ? meshlm_type_from_name(name) : MESHLM_TYPE_F32;
    if (!type_ok(*type))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "KV type '%s' is not one of: f32, f16, bf16, q8_0", name);
    return MESHLM_OK;
}

/* 0 when a product would overflow, so callers report one error for both cases. */
static size_t mul_or_0(size_t a, size_t b) { return (a && b > SIZE_MAX / a) ? 0 : a * b; }

static size_t page_bytes_of(const meshlm_kv_params *p) {
    size_t row = meshlm_type_row_bytes(p->type, p->kv_dim);
    size_t raw = mul_or_0(mul_or_0(mul_or_0((size_t)p->n_layer, 2), (size_t)p->page_size), row);
    if (raw == 0 || raw > SIZE_MAX - PAGE_ALIGN) return 0;
    return (raw + PAGE_ALIGN - 1) / PAGE_ALIGN * PAGE_ALIGN;
}

static int check_params(const meshlm_kv_params *p) {
    if (p->n_layer < 1 || p->kv_dim < 1 || p->head_dim < 1 || p->page_size < 1)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "KV cache: n_layer %d, kv_dim %d, head_dim %d and page_size %d must all be >= 1",
                           p->n_layer, p->kv_dim, p->head_dim, p->page_size);
    if (p->kv_dim % p->head_dim)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "KV cache: kv_dim %d is not a whole number of heads of %d",
                           p->kv_dim, p->head_dim);
    if (!type_ok(p->type))
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "KV cache: type %s is not supported (F32, F16, BF16 or Q8_0)",
                           meshlm_type_name(p->type));
    int64_t be = meshlm_type_block_elems(p->type);
    if (p->head_dim % be)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "KV cache: type %s encodes blocks of %d values, so it needs a head size that is a "
                           "multiple of %d; head_dim is %d (use F16 or BF16)",
                           meshlm_type_name(p->type), (int)be, (int)be, p->head_dim);
    return MESHLM_OK;
}

size_t meshlm_kv_page_bytes(const meshlm_kv_params *p) {
    if (p->n_layer < 1 || p->kv_dim < 1 || p->page_size < 1 || !type_ok(p->type) ||
        p->kv_dim % meshlm_type_block_elems(p->type))
        return 0;
    return page_bytes_of(p);
}

int meshlm_kv_pool_create(const meshlm_kv_params *p, meshlm_kv_pool **out) {
    *out = NULL;
    int st = check_params(p);
    if (st) return st;
    size_t pb = page_bytes_of(p);
    if (pb == 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "KV cache: a page of %d layers x %d positions x %d values overflows",
                           p->n_layer, p->page_size, p->kv_dim);
    if (p->mem_bytes < pb)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "KV cache: budget of %zu bytes is smaller than one page (%zu bytes = %d layers x K,V x %d "
                           "positions x %d %s values)",
                           p->mem_bytes, pb, p->n_layer, p->page_size, p->kv_dim, meshlm_type_name(p->type));
    size_t n = p->mem_bytes / pb;
    if (n > INT32_MAX) n = INT32_MAX;

    meshlm_kv_pool *kv = calloc(1, sizeof *kv);
    if (!kv) return meshlm_fail(MESHLM_ERR_NOMEM, "KV cache: out of memory");
    kv->p = *p;
    kv->row_bytes = meshlm_type_row_bytes(p->type, p->kv_dim);
    kv->page_bytes = pb;
    kv->n_pages = kv->n_free = (int32_t)n;
    kv->lru_head = kv->lru_tail = -1;
    kv->free_ids = malloc(n * sizeof *kv->free_ids);
    kv->ref = calloc(n, sizeof *kv->ref);
    kv->prev = malloc(n * sizeof *kv->prev);
    kv->next = malloc(n * sizeof *kv->next);
    /* n * pb <= mem_bytes, so neither the size nor its rounding to PAGE_ALIGN overflows. */
    kv->data = aligned_alloc(PAGE_ALIGN, n * pb);
    if (!kv->free_ids || !kv->ref || !kv->prev || !kv->next || !kv->data) {
        meshlm_kv_pool_free(kv);
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV cache: cannot allocate %zu MiB (%zu pages of %zu bytes)",
                           n * pb >> 20, n, pb);
    }
    if ((st = meshlm_kv_index_init(&kv->index, (int32_t)n, p->page_size))) {
        meshlm_kv_pool_free(kv);
        return st;
    }
    /* Touching every page now commits the whole budget on this (the device's) thread and
     * makes reserved-but-unwritten positions read as zeros rather than indeterminate bytes. */
    memset(kv->data, 0, n * pb);
    for (size_t i = 0; i < n; i++) kv->free_ids[i] = (int32_t)(n - 1 - i);
    *out = kv;
    return MESHLM_OK;
}

void meshlm_kv_pool_free(meshlm_kv_pool *kv) {
    if (!kv) return;
    free(kv->data);
    free(kv->free_ids), free(kv->ref), free(kv->prev), free(kv->next);
    meshlm_kv_index_free(&kv->index);
    free(kv);
}

int32_t meshlm_kv_pool_pages(const meshlm_kv_pool *kv) { return kv->n_pages; }
int32_t meshlm_kv_pool_free_pages(const meshlm_kv_pool *kv) { return kv->n_free; }
int32_t meshlm_kv_pool_cached_pages(const meshlm_kv_pool *kv) { return kv->n_cached; }
int32_t meshlm_kv_pool_page_size(const meshlm_kv_pool *kv) { return kv->p.page_size; }

int meshlm_kv_seq_init(meshlm_kv_seq *s, int32_t max_positions, const meshlm_kv_pool *kv) {
    memset(s, 0, sizeof *s);
    if (max_positions < 1)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "KV sequence: max_positions %d must be >= 1", max_positions);
    int32_t ps = kv->p.page_size;
    int32_t max_pages = max_positions / ps + (max_positions % ps != 0);
    s->pages = malloc((size_t)max_pages * sizeof *s->pages);
    if (!s->pages)
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV sequence: no memory for a page table of %d pages", max_pages);
    for (int32_t i = 0; i < max_pages; i++) s->pages[i] = -1;
    s->max_pages = max_pages;
    s->max_len = max_positions;
    return MESHLM_OK;
}

void meshlm_kv_seq_free(meshlm_kv_seq *s) {
    free(s->pages);
    memset(s, 0, sizeof *s);
}

/* Takes page out of the LRU list of cached pages. */
static void lru_unlink(meshlm_kv_pool *kv, int32_t page) {
    int32_t p = kv->prev[page], n = kv->next[page];
    *(p >= 0 ? &kv->next[p] : &kv->lru_head) = n;
    *(n >= 0 ? &kv->prev[n] : &kv->lru_tail) = p;
    kv->n_cached--;
}

/* A page for a sequence: a free one if any, else the least recently used cached one, which
 * leaves the prefix index. The caller has checked that one is there. */
static int32_t take_page(meshlm_kv_pool *kv) {
    int32_t page;
    if (kv->n_free > 0) {
        page = kv->free_ids[--kv->n_free];
    } else {
        page = kv->lru_head;
        lru_unlink(kv, page);
        meshlm_kv_index_remove(&kv->index, page);
    }
    kv->ref[page] = 1;
    return page;
}

/* The all-or-nothing check shared by both reserves: need pages more, of the available ones
 * (free, or cached and not claimed by the caller: claimed of them). */
static int check_room(const meshlm_kv_pool *kv, int32_t need, int32_t claimed) {
    int32_t avail = kv->n_free + kv->n_cached - claimed;
    if (need <= avail) return MESHLM_OK;
    return meshlm_fail(MESHLM_ERR_RANGE,
                       "KV cache full: needs %d more pages, %d free (budget %zu bytes = %d pages of %d positions, "
                       "%zu bytes each)",
                       need, avail, kv->p.mem_bytes, kv->n_pages, kv->p.page_size, kv->page_bytes);
}

int meshlm_kv_reserve(meshlm_kv_pool *kv, meshlm_kv_seq *s, int32_t new_len) {
    if (new_len <= s->len) return MESHLM_OK;
    if (new_len > s->max_len)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV sequence full: %d positions requested, max_positions is %d",
                           new_len, s->max_len);
    int32_t ps = kv->p.page_size;
    int32_t need = new_len / ps + (new_len % ps != 0) - s->n_pages;
    int st = check_room(kv, need, 0);
    if (st) return st;
    for (int32_t i = 0; i < need; i++) s->pages[s->n_pages++] = take_page(kv);
    s->len = new_len;
    return MESHLM_OK;
}

/* Admission with prefix caching: the shared pages are looked up first, so that the room
 * check counts only the pages still to take and no cached page it will share is evicted. */
int meshlm_kv_reserve_prefix(meshlm_kv_pool *kv, meshlm_kv_seq *s, const int32_t *tokens, int32_t n_tokens,
                             int32_t new_len, int32_t *n_hit, uint64_t *chain) {
    *n_hit = 0;
    *chain = 0;
    if (s->len > 0 || n_tokens < 0 || n_tokens > new_len)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "KV prefix reserve: needs an empty sequence (it holds %d) and 0 <= %d tokens <= %d",
                           s->len, n_tokens, new_len);
    if (new_len > s->max_len)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV sequence full: %d positions requested, max_positions is %d",
                           new_len, s->max_len);
    int32_t ps = kv->p.page_size, hit = 0, claimed = 0;
    uint64_t id = 0;
    /* The longest chain of cached pages, written into the table only once it all fits. */
    for (; hit < n_tokens / ps; hit++) {
        int32_t page = meshlm_kv_index_find(&kv->index, id, tokens + (size_t)hit * (size_t)ps);
        if (page < 0) break;
        s->pages[hit] = page;
        claimed += kv->ref[page] == 0;
        id = kv->index.id[page];
    }
    int32_t need = new_len / ps + (new_len % ps != 0) - hit;
    int st = check_room(kv, need, claimed);
    if (st) {
        for (int32_t i = 0; i < hit; i++) s->pages[i] = -1;
        return st;
    }
    for (int32_t i = 0; i < hit; i++)
        if (kv->ref[s->pages[i]]++ == 0) lru_unlink(kv, s->pages[i]);
    s->n_pages = hit;
    for (int32_t i = 0; i < need; i++) s->pages[s->n_pages++] = take_page(kv);
    s->len = new_len;
    *n_hit = hit;
    *chain = id;
    return MESHLM_OK;
}

/* Called as pages fill, so a page is shared as soon as it is complete, even while its
 * sequence still runs; the returned entry keeps the chain going past a duplicate. */
uint64_t meshlm_kv_register(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t i, uint64_t chain,
                            const int32_t *tokens) {
    int32_t page = s->pages[i];
    if (page < 0) return 0;
    if (kv->index.id[page]) return kv->index.id[page];
    int32_t same = meshlm_kv_index_find(&kv->index, chain, tokens);
    if (same >= 0) return kv->index.id[same];
    return meshlm_kv_index_add(&kv->index, page, chain, tokens);
}

/* Drops one hold on page: the last one sends it to the free list, or, if registered, to
 * the end of the LRU list of cached pages. */
static void unhold(meshlm_kv_pool *kv, int32_t page) {
    if (--kv->ref[page] > 0) return;
    if (!kv->index.id[page]) {
        kv->free_ids[kv->n_free++] = page;
        return;
    }
    kv->prev[page] = kv->lru_tail;
    kv->next[page] = -1;
    *(kv->lru_tail >= 0 ? &kv->next[kv->lru_tail] : &kv->lru_head) = page;
    kv->lru_tail = page;
    kv->n_cached++;
}

void meshlm_kv_release(meshlm_kv_pool *kv, meshlm_kv_seq *s) {
    /* In reverse, so that the sequence's first page is back on top and a sequence of the same
     * length that follows gets the same pages in the same order; cached pages likewise join
     * the LRU list last page first, so a chain is evicted from its end and its start, which
     * more prompts share, stays longest. */
    while (s->n_pages > s->n_dropped) {
        int32_t i = --s->n_pages, page = s->pages[i];
        s->pages[i] = -1;
        unhold(kv, page);
    }
    s->n_pages = s->n_dropped = 0;
    s->len = 0;
}

void meshlm_kv_drop(meshlm_kv_pool *kv, meshlm_kv_seq *s, int32_t pos) {
    while (s->n_dropped < s->n_pages && (int64_t)(s->n_dropped + 1) * kv->p.page_size <= pos) {
        unhold(kv, s->pages[s->n_dropped]);
        s->pages[s->n_dropped++] = -1;
    }
}

/* Row of K (which = 0) or V (which = 1) for (layer, pos); the page layout in kv_paged.h. */
static uint8_t *row_at(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, int which) {
    int32_t ps = kv->p.page_size;
    size_t page = (size_t)s->pages[pos / ps];
    size_t row = ((size_t)layer * 2 + (size_t)which) * (size_t)ps + (size_t)(pos % ps);
    return kv->data + page * kv->page_bytes + row * kv->row_bytes;
}

int meshlm_kv_pool_type(const meshlm_kv_pool *kv) { return kv->p.type; }
size_t meshlm_kv_pool_row_bytes(const meshlm_kv_pool *kv) { return kv->row_bytes; }

const void *meshlm_kv_row(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, int which) {
    return row_at(kv, s, layer, pos, which);
}

static int check_row(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos) {
    if (layer < 0 || layer >= kv->p.n_layer)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV cache: layer %d outside [0, %d)", layer, kv->p.n_layer);
    if (pos < 0 || pos >= s->len)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV cache: position %d outside the %d reserved", pos, s->len);
    if (pos < s->n_dropped * kv->p.page_size)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV cache: position %d was dropped (below %d, outside every window)",
                           pos, s->n_dropped * kv->p.page_size);
    return MESHLM_OK;
}

int meshlm_kv_write(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, const float *k,
                    const float *v) {
    int st = check_row(kv, s, layer, pos);
    if (st) return st;
    meshlm_quantize_row(kv->p.type, k, row_at(kv, s, layer, pos, 0), kv->p.kv_dim);
    meshlm_quantize_row(kv->p.type, v, row_at(kv, s, layer, pos, 1), kv->p.kv_dim);
    return MESHLM_OK;
}

int meshlm_kv_write_slice(meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, int32_t off,
                          int32_t len, const float *k, const float *v) {
    int st = check_row(kv, s, layer, pos);
    if (st) return st;
    int64_t blk = meshlm_type_block_elems(kv->p.type);
    if (off < 0 || len < 0 || off + len > kv->p.kv_dim || off % blk || len % blk)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "KV write: slice [%d, %d) of %d is not whole %s blocks", off,
                           off + len, kv->p.kv_dim, meshlm_type_name(kv->p.type));
    size_t at = meshlm_type_row_bytes(kv->p.type, off);
    if (k) meshlm_quantize_row(kv->p.type, k, row_at(kv, s, layer, pos, 0) + at, len);
    if (v) meshlm_quantize_row(kv->p.type, v, row_at(kv, s, layer, pos, 1) + at, len);
    return MESHLM_OK;
}

int meshlm_kv_read(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, int32_t layer, int32_t pos, float *k,
                   float *v) {
    int st = check_row(kv, s, layer, pos);
    if (st) return st;
    if (k) meshlm_dequantize_row(kv->p.type, row_at(kv, s, layer, pos, 0), k, kv->p.kv_dim);
    if (v) meshlm_dequantize_row(kv->p.type, row_at(kv, s, layer, pos, 1), v, kv->p.kv_dim);
    return MESHLM_OK;
}


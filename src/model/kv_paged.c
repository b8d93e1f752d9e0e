#include "model/kv_paged.h"

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"

#define PAGE_ALIGN 64

struct meshlm_kv_pool {
    meshlm_kv_params p;
    size_t row_bytes;  /* one K or V row of kv_dim values */
    size_t page_bytes; /* page stride, padded to PAGE_ALIGN */
    int32_t n_pages, n_free;
    int32_t *free_ids; /* stack: free_ids[0..n_free) are free, the top is taken first */
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
    kv->free_ids = malloc(n * sizeof *kv->free_ids);
    /* n * pb <= mem_bytes, so neither the size nor its rounding to PAGE_ALIGN overflows. */
    kv->data = aligned_alloc(PAGE_ALIGN, n * pb);
    if (!kv->free_ids || !kv->data) {
        meshlm_kv_pool_free(kv);
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV cache: cannot allocate %zu MiB (%zu pages of %zu bytes)",
                           n * pb >> 20, n, pb);
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
    free(kv->free_ids);
    free(kv);
}

int32_t meshlm_kv_pool_pages(const meshlm_kv_pool *kv) { return kv->n_pages; }
int32_t meshlm_kv_pool_free_pages(const meshlm_kv_pool *kv) { return kv->n_free; }
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

int meshlm_kv_reserve(meshlm_kv_pool *kv, meshlm_kv_seq *s, int32_t new_len) {
    if (new_len <= s->len) return MESHLM_OK;
    if (new_len > s->max_len)
        return meshlm_fail(MESHLM_ERR_RANGE, "KV sequence full: %d positions requested, max_positions is %d",
                           new_len, s->max_len);
    int32_t ps = kv->p.page_size;
    int32_t need = new_len / ps + (new_len % ps != 0) - s->n_pages;
    if (need > kv->n_free)
        return meshlm_fail(MESHLM_ERR_RANGE,
                           "KV cache full: needs %d more pages, %d free (budget %zu bytes = %d pages of %d positions, "
                           "%zu bytes each)",
                           need, kv->n_free, kv->p.mem_bytes, kv->n_pages, ps, kv->page_bytes);
    for (int32_t i = 0; i < need; i++) s->pages[s->n_pages++] = kv->free_ids[--kv->n_free];
    s->len = new_len;
    return MESHLM_OK;
}

void meshlm_kv_release(meshlm_kv_pool *kv, meshlm_kv_seq *s) {
    /* In reverse, so that the sequence's first page is back on top and a sequence of the same
     * length that follows gets the same pages in the same order. */
    while (s->n_pages > 0) {
        int32_t i = --s->n_pages;
        kv->free_ids[kv->n_free++] = s->pages[i];
        s->pages[i] = -1;
    }
    s->len = 0;
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


#include "model/kv_prefix.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* Everything at once, so that registering and evicting never allocate during a step. */
int meshlm_kv_index_init(meshlm_kv_index *x, int32_t n_pages, int32_t page_size) {
    memset(x, 0, sizeof *x);
    uint64_t slots = 2;
    while (slots < 2 * (uint64_t)n_pages) slots *= 2;
    if (slots > (uint64_t)1 << 32)
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV prefix index: %d pages are too many to index", n_pages);
    size_t n = (size_t)n_pages;
    x->n_pages = n_pages;
    x->page_size = page_size;
    x->mask = (uint32_t)(slots - 1);
    x->next_id = 1;
    x->table = malloc((size_t)slots * sizeof *x->table);
    x->hash = malloc(n * sizeof *x->hash);
    x->id = calloc(n, sizeof *x->id);
    x->parent = malloc(n * sizeof *x->parent);
    x->tokens = malloc(n * (size_t)page_size * sizeof *x->tokens);
    if (!x->table || !x->hash || !x->id || !x->parent || !x->tokens) {
        meshlm_kv_index_free(x);
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV prefix index: no memory for %d pages of %d tokens", n_pages,
                           page_size);
    }
    memset(x->table, 0xff, (size_t)slots * sizeof *x->table);
    return MESHLM_OK;
}

void meshlm_kv_index_free(meshlm_kv_index *x) {
    free(x->table), free(x->hash), free(x->id), free(x->parent), free(x->tokens);
    memset(x, 0, sizeof *x);
}

/* One hash for a (parent, tokens) key: FNV-1a over the parent id and the token ids, each a
 * 64-bit word, then a splitmix64 finish so that the low bits (the table slot) mix well. */
static uint64_t key_hash(uint64_t parent, const int32_t *tokens, int32_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    h = (h ^ parent) * 0x100000001b3u;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint64_t)(uint32_t)tokens[i]) * 0x100000001b3u;
    h ^= h >> 30, h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27, h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

/* A probe compares the whole key, so a hash collision costs a step, never a wrong page. */
int32_t meshlm_kv_index_find(const meshlm_kv_index *x, uint64_t parent, const int32_t *tokens) {
    int32_t ps = x->page_size;
    uint64_t h = key_hash(parent, tokens, ps);
    for (uint32_t i = (uint32_t)h & x->mask;; i = (i + 1) & x->mask) {
        int32_t p = x->table[i];
        if (p < 0) return -1;
        if (x->hash[p] == h && x->parent[p] == parent &&
            !memcmp(x->tokens + (size_t)p * (size_t)ps, tokens, (size_t)ps * sizeof *tokens))
            return p;
    }
}

/* Keeps the tokens beside the key: finds compare them, so the hash never decides alone. */
uint64_t meshlm_kv_index_add(meshlm_kv_index *x, int32_t page, uint64_t parent, const int32_t *tokens) {
    int32_t ps = x->page_size;
    uint64_t h = key_hash(parent, tokens, ps);
    uint32_t i = (uint32_t)h & x->mask;
    while (x->table[i] >= 0) i = (i + 1) & x->mask;
    x->table[i] = page;
    x->hash[page] = h;
    x->parent[page] = parent;
    x->id[page] = x->next_id++;
    memcpy(x->tokens + (size_t)page * (size_t)ps, tokens, (size_t)ps * sizeof *tokens);
    return x->id[page];
}

/* Linear probing's deletion without tombstones: the entries after the hole that may move
 * back into it (their home slot is not between the hole and them) are shifted back. */
void meshlm_kv_index_remove(meshlm_kv_index *x, int32_t page) {
    uint32_t hole = (uint32_t)x->hash[page] & x->mask;
    while (x->table[hole] != page) hole = (hole + 1) & x->mask;
    for (uint32_t j = (hole + 1) & x->mask; x->table[j] >= 0; j = (j + 1) & x->mask) {
        uint32_t home = (uint32_t)x->hash[x->table[j]] & x->mask;
        if (((j - home) & x->mask) >= ((j - hole) & x->mask)) {
            x->table[hole] = x->table[j];
            hole = j;
        }
    }
    x->table[hole] = -1;
    x->id[page] = 0;
}

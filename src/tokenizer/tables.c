/* The tokenizer's look-up structures: text and merge hash maps, the growable id list and
 * the binary heap that orders candidate merges. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

/* FNV-1a with a final avalanche: token texts are short, so a byte loop is cheap and the
 * mix keeps the low bits (the slot index) well spread. */
uint64_t tok_hash(const void *s, size_t len) {
    const unsigned char *p = s;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* A slot holds id + 1 in its low half (0 = empty) and the text's hash in its high half,
 * so most probes that miss are decided without touching the token texts. */
int32_t tok_find(const meshlm_tokenizer *t, const char *s, size_t len) {
    uint64_t h = tok_hash(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    uint32_t i = (uint32_t)h & t->map_mask;
    for (;;) {
        uint64_t v = t->map[i];
        uint32_t id1 = (uint32_t)v;
        if (id1 == 0) return -1;
        if ((uint32_t)(v >> 32) == tag) {
            size_t tl;
            const char *tt = tok_text(t, (int32_t)(id1 - 1), &tl);
            if (tl == len && memcmp(tt, s, len) == 0) return (int32_t)(id1 - 1);
        }
        i = (i + 1) & t->map_mask;
    }
}

const merge_slot *tok_merge(const meshlm_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges || left < 0 || right < 0) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t i = (uint32_t)mix64(key) & t->merge_mask;
    for (;;) {
        const merge_slot *m = &t->merges[i];
        if (m->rank < 0) return NULL;
        if (m->key == key) return m;
        i = (i + 1) & t->merge_mask;
    }
}

static uint32_t table_size(uint64_t n) {
    uint64_t size = 16;
    while (size < n * 2) size <<= 1;
    return (uint32_t)size;
}

int tok_build_map(meshlm_tokenizer *t) {
    uint32_t size = table_size((uint64_t)t->n);
    t->map = calloc(size, sizeof *t->map);
    if (!t->map) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for the token map");
    t->map_mask = size - 1;
    for (int32_t id = 0; id < t->n; id++) {
        size_t len;
        const char *s = tok_text(t, id, &len);
        if (len == 0) continue;
        uint64_t h = tok_hash(s, len);
        uint64_t slot = (h & 0xffffffff00000000ull) | ((uint64_t)id + 1);
        uint32_t i = (uint32_t)h & t->map_mask;
        for (;;) {
            uint64_t v = t->map[i];
            if (v == 0) break;
            size_t ol;
            const char *os = tok_text(t, (int32_t)((uint32_t)v - 1), &ol);
            if ((v >> 32) == (h >> 32) && ol == len && memcmp(os, s, len) == 0) break;
            i = (i + 1) & t->map_mask;
        }
        t->map[i] = slot;
    }
    return MESHLM_OK;
}

int tok_alloc_merges(meshlm_tokenizer *t, int32_t n_merges) {
    uint32_t size = table_size((uint64_t)n_merges);
    t->merges = malloc((size_t)size * sizeof *t->merges);
    if (!t->merges) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for merges");
    for (uint32_t i = 0; i < size; i++) t->merges[i].rank = -1;
    t->merge_mask = size - 1;
    return MESHLM_OK;
}

/* An earlier (better) merge of the same pair is kept, as the list is best first. */
void tok_add_merge(meshlm_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                   int32_t result) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t i = (uint32_t)mix64(key) & t->merge_mask;
    for (;;) {
        merge_slot *m = &t->merges[i];
        if (m->rank < 0) {
            m->key = key;
            m->rank = rank;
            m->result = result;
            return;
        }
        if (m->key == key) return;
        i = (i + 1) & t->merge_mask;
    }
}

int ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for ids");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return MESHLM_OK;
}

static bool bigram_before(const bigram *a, const bigram *b) {
    if (a->score != b->score) return a->score > b->score;
    if (a->rank != b->rank) return a->rank < b->rank;
    return a->left < b->left;
}

int bheap_push(bheap *h, bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for merges");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return MESHLM_OK;
}

bigram bheap_pop(bheap *h) {
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

int tok_push_bytes(const meshlm_tokenizer *t, const unsigned char *s, size_t n, ivec *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_tok[s[i]];
        if (id < 0) id = tok_find(t, (const char *)&s[i], 1);
        if (id < 0) id = t->unk;
        if (id < 0)
            return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                               "tokenizer: byte 0x%02X has no token and the vocabulary has no "
                               "unknown token", s[i]);
        int rc = ivec_push(out, id);
        if (rc) return rc;
    }
    return MESHLM_OK;
}

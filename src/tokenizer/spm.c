/* SentencePiece-style encoding: start from single characters and keep merging the
 * neighbouring pair whose union is the best-scoring token. */
#include <stdlib.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

/* Symbols are always adjacent in the text, so a pair's union is one contiguous span and
 * needs no copying to be looked up. */
static int try_pair(const meshlm_tokenizer *t, const char *s, const symbol *sym, int32_t l,
                    int32_t r, bheap *h) {
    if (l < 0 || r < 0) return MESHLM_OK;
    uint32_t len = sym[l].n + sym[r].n;
    int32_t id = tok_find(t, s + sym[l].off, len);
    if (id < 0) return MESHLM_OK;
    bigram b = {.score = t->scores ? t->scores[id] : 0.0f, .left = l, .right = r,
                .len = len, .id = id};
    return bheap_push(h, b);
}

static int merge_all(const meshlm_tokenizer *t, const char *s, symbol *sym, int32_t nsym,
                     bheap *h) {
    int rc = MESHLM_OK;
    for (int32_t i = 1; i < nsym && !rc; i++) rc = try_pair(t, s, sym, i - 1, i, h);
    while (!rc && h->n) {
        bigram b = bheap_pop(h);
        symbol *l = &sym[b.left], *r = &sym[b.right];
        /* Sizes only grow, so an unchanged sum means neither side merged since. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.len) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = try_pair(t, s, sym, l->prev, b.left, h);
        if (!rc) rc = try_pair(t, s, sym, b.left, l->next, h);
    }
    return rc;
}

int spm_encode(const meshlm_tokenizer *t, const char *s, size_t n, ivec *out) {
    if (n == 0) return MESHLM_OK;
    symbol *sym = malloc(n * sizeof *sym);
    if (!sym) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", n);
    int32_t nsym = 0;
    /* One symbol per character; a byte that does not start a valid character is a symbol
     * of its own, so it can never swallow the escaped space that follows it. */
    for (size_t off = 0; off < n;) {
        uint32_t cp;
        size_t len = utf8_get((const unsigned char *)s + off, n - off, &cp);
        if (len == 0) len = 1;
        sym[nsym] = (symbol){.off = (uint32_t)off, .n = (uint32_t)len, .prev = nsym - 1,
                             .next = off + len == n ? -1 : nsym + 1, .id = -1};
        nsym++;
        off += len;
    }
    bheap h = {0};
    int rc = merge_all(t, s, sym, nsym, &h);
    free(h.v);
    for (int32_t i = 0; !rc && i != -1; i = sym[i].next) {
        int32_t id = tok_find(t, s + sym[i].off, sym[i].n);
        if (id >= 0) rc = ivec_push(out, id);
        else rc = tok_push_bytes(t, (const unsigned char *)s + sym[i].off, sym[i].n, out);
    }
    free(sym);
    return rc;
}

/* Byte-level BPE: each pre-split word starts as one symbol per byte (its alphabet
 * character) and the pair with the lowest merge rank is merged until none is left. */
#include <stdlib.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

typedef struct word_ctx {
    const meshlm_tokenizer *t;
    ivec *out;
    symbol *sym;
    size_t sym_cap;
    char *enc;
    size_t enc_cap;
    bheap heap;
} word_ctx;

static int try_pair(word_ctx *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return MESHLM_OK;
    const merge_slot *m = tok_merge(w->t, w->sym[l].id, w->sym[r].id);
    if (!m) return MESHLM_OK;
    bigram b = {.rank = m->rank, .left = l, .right = r, .len = w->sym[l].n + w->sym[r].n,
                .id = m->result};
    return bheap_push(&w->heap, b);
}

/* The byte-level text of a whole word, for vocabularies that take a word found in the
 * vocabulary as one token without merging. */
static int32_t whole_word(word_ctx *w, const unsigned char *s, size_t n) {
    if (w->enc_cap < 2 * n) {
        char *e = realloc(w->enc, 2 * n);
        if (!e) return -2;
        w->enc = e;
        w->enc_cap = 2 * n;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += utf8_put(bpe_byte_to_cp(s[i]), w->enc + o);
    return tok_find(w->t, w->enc, o);
}

static int merge_word(word_ctx *w, int32_t nsym) {
    symbol *sym = w->sym;
    int rc = MESHLM_OK;
    w->heap.n = 0;
    for (int32_t i = 1; i < nsym && !rc; i++) rc = try_pair(w, i - 1, i);
    while (!rc && w->heap.n) {
        bigram b = bheap_pop(&w->heap);
        symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.len) continue;
        l->n += r->n;
        l->id = b.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        rc = try_pair(w, l->prev, b.left);
        if (!rc) rc = try_pair(w, b.left, l->next);
    }
    return rc;
}

static int encode_word(void *ctx, const char *s, size_t n) {
    word_ctx *w = ctx;
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return MESHLM_OK;
    if (w->t->ignore_merges) {
        int32_t id = whole_word(w, u, n);
        if (id == -2) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
        if (id >= 0) return ivec_push(w->out, id);
    }
    if (w->sym_cap < n) {
        symbol *p = realloc(w->sym, n * sizeof *p);
        if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
        w->sym = p;
        w->sym_cap = n;
    }
    int32_t nsym = (int32_t)n;
    for (int32_t i = 0; i < nsym; i++)
        w->sym[i] = (symbol){.off = (uint32_t)i, .n = 1, .prev = i - 1,
                             .next = i + 1 == nsym ? -1 : i + 1, .id = w->t->byte_tok[u[i]]};
    int rc = merge_word(w, nsym);
    for (int32_t i = 0; !rc && i != -1; i = w->sym[i].next) {
        const symbol *y = &w->sym[i];
        if (y->id >= 0) rc = ivec_push(w->out, y->id);
        else rc = tok_push_bytes(w->t, u + y->off, y->n, w->out);
    }
    return rc;
}

int bpe_encode(const meshlm_tokenizer *t, const char *s, size_t n, ivec *out) {
    word_ctx w = {.t = t, .out = out};
    int rc = pretok_split(t, s, n, encode_word, &w);
    free(w.sym);
    free(w.enc);
    free(w.heap.v);
    return rc;
}

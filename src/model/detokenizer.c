/* The public streaming detokenizer: a model's tokenizer's UTF-8-safe decoder, plus the
 * choice of showing control tokens, over a buffer it owns so callers need no size contract. */
#include <stdlib.h>

#include "core/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

struct meshlm_detokenizer {
    const meshlm_tokenizer *tok;
    meshlm_detok state;
    bool special;
    char *buf;
    size_t cap;
};

meshlm_status meshlm_detokenizer_create(const meshlm_model *m, bool special, meshlm_detokenizer **out) {
    if (!m || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detokenizer_create: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return meshlm_fail(MESHLM_ERR_NOMEM, "detokenizer: out of memory");
    (*out)->tok = m->tok;
    (*out)->special = special;
    return MESHLM_OK;
}

void meshlm_detokenizer_free(meshlm_detokenizer *d) {
    if (!d) return;
    free(d->buf);
    free(d);
}

/* Room for n decoded bytes: every byte of a piece and of the held-back prefix may turn
 * into a 3-byte U+FFFD. */
static int grow(meshlm_detokenizer *d, size_t n) {
    size_t need = 3 * (n + sizeof d->state.pending) + 1;
    if (need <= d->cap) return MESHLM_OK;
    char *p = realloc(d->buf, need);
    if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "detokenizer: out of memory");
    d->buf = p;
    d->cap = need;
    return MESHLM_OK;
}

meshlm_status meshlm_detokenizer_push(meshlm_detokenizer *d, int32_t id, const char **text, size_t *len) {
    if (!d || !text || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detokenizer_push: NULL argument");
    *text = "";
    *len = 0;
    const char *piece;
    size_t n;
    int rc = meshlm_tokenizer_piece(d->tok, id, &piece, &n);
    if (rc) return (meshlm_status)rc;
    if (!d->special && meshlm_tokenizer_token_type(d->tok, id) == MESHLM_TOKEN_CONTROL) return MESHLM_OK;
    if ((rc = grow(d, n)) || (rc = meshlm_detok_push(d->tok, &d->state, id, d->buf, d->cap - 1, len)))
        return (meshlm_status)rc;
    d->buf[*len] = '\0';
    *text = d->buf;
    return MESHLM_OK;
}

meshlm_status meshlm_detokenizer_flush(meshlm_detokenizer *d, const char **text, size_t *len) {
    if (!d || !text || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detokenizer_flush: NULL argument");
    int rc = grow(d, 0);
    if (!rc) rc = meshlm_detok_flush(&d->state, d->buf, d->cap - 1, len);
    if (rc) return (meshlm_status)rc;
    d->buf[*len] = '\0';
    *text = d->buf;
    return MESHLM_OK;
}

/* Text to ids: special-token texts are cut out first (leftmost, longest first), the
 * text between them goes to the SPM or BPE encoder, and BOS/EOS are added around it. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

enum { MAX_TEXT = 1 << 30 };

typedef struct enc_state {
    const meshlm_tokenizer *t;
    ivec *out;
    bool prev_special; /* SPM: the next text fragment gets the leading space */
    char *esc;
    size_t esc_cap;
} enc_state;

/* SPM sees spaces as U+2581 and, like SentencePiece, a leading space at the start of the
 * text and after every special token. */
static int encode_spm(enc_state *e, const char *s, size_t n) {
    const meshlm_tokenizer *t = e->t;
    bool prefix = t->add_space_prefix && e->prev_special;
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t need = n + 2 * spaces + (prefix ? 3 : 0);
    if (need > e->esc_cap) {
        char *p = realloc(e->esc, need);
        if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", need);
        e->esc = p;
        e->esc_cap = need;
    }
    size_t o = 0;
    if (prefix) {
        memcpy(e->esc, "\xE2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(e->esc + o, "\xE2\x96\x81", 3);
            o += 3;
        } else {
            e->esc[o++] = s[i];
        }
    }
    return spm_encode(t, e->esc, o, e->out);
}

static int encode_fragment(enc_state *e, const char *s, size_t n) {
    if (n == 0) return MESHLM_OK;
    int rc = e->t->kind == MESHLM_TOK_SPM ? encode_spm(e, s, n) : bpe_encode(e->t, s, n, e->out);
    e->prev_special = false;
    return rc;
}

/* The longest special token whose text starts at s, or -1. User-defined tokens are
 * ordinary added words and always match; control and unknown ones only on request. */
static int32_t special_at(const meshlm_tokenizer *t, const char *s, size_t n, bool parse_special) {
    unsigned char c = (unsigned char)s[0];
    for (uint32_t k = t->spec_start[c]; k < t->spec_start[c + 1]; k++) {
        int32_t id = t->spec[k];
        if (!parse_special && t->types[id] != MESHLM_TOKEN_USER_DEFINED) continue;
        size_t len;
        const char *tt = tok_text(t, id, &len);
        if (len <= n && memcmp(tt, s, len) == 0) return id;
    }
    return -1;
}

static int encode_text(enc_state *e, const char *s, size_t n, bool parse_special) {
    size_t start = 0;
    int rc = MESHLM_OK;
    for (size_t i = 0; i < n && !rc;) {
        int32_t id = special_at(e->t, s + i, n - i, parse_special);
        if (id < 0) {
            i++;
            continue;
        }
        rc = encode_fragment(e, s + start, i - start);
        if (!rc) rc = ivec_push(e->out, id);
        e->prev_special = true;
        i += e->t->text_off[id + 1] - e->t->text_off[id];
        start = i;
    }
    if (!rc) rc = encode_fragment(e, s + start, n - start);
    return rc;
}

int meshlm_tokenizer_encode(const meshlm_tokenizer *t, const char *text, size_t len,
                            bool add_special, bool parse_special, int32_t *out, int32_t cap,
                            int32_t *n_out) {
    if (!t || !n_out || (!text && len) || cap < 0 || (cap > 0 && !out))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenize: NULL argument or negative capacity");
    *n_out = 0;
    if (len >= MAX_TEXT)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenize: text of %zu bytes is too long (limit %d)",
                           len, MAX_TEXT);
    ivec v = {0};
    enc_state e = {.t = t, .out = &v, .prev_special = true};
    int rc = MESHLM_OK;
    if (add_special && t->add_bos && t->bos >= 0) rc = ivec_push(&v, t->bos);
    if (!rc && len) rc = encode_text(&e, text, len, parse_special);
    if (!rc && add_special && t->add_eos && t->eos >= 0) rc = ivec_push(&v, t->eos);
    free(e.esc);
    if (!rc) {
        *n_out = (int32_t)v.n;
        if (v.n > (size_t)cap)
            rc = meshlm_fail(MESHLM_ERR_RANGE, "tokenize: %zu tokens do not fit in %d", v.n, (int)cap);
        else if (v.n)
            memcpy(out, v.v, v.n * sizeof *out);
    }
    free(v.v);
    return rc;
}

/* Building a tokenizer from a vocabulary description: validation, the look-up tables,
 * the decoded pieces, and the accessors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

/* Texts that end a turn or a document in the families we run; such tokens stop
 * generation even when the file names no EOT id. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<|return|>", "<|call|>", "<end_of_utterance>",
};

/* Parses "<0xNN>" exactly: six bytes, two hex digits. */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int copy_texts(meshlm_tokenizer *t, const meshlm_vocab_desc *d) {
    size_t total = 0;
    for (int32_t i = 0; i < d->n_tokens; i++) {
        if (!d->tokens[i] && d->token_lens[i])
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer.ggml.tokens[%d] is NULL", (int)i);
        if (d->token_lens[i] > ((size_t)1 << 20))
            return meshlm_fail(MESHLM_ERR_FORMAT, "tokenizer.ggml.tokens[%d] is %zu bytes long",
                               (int)i, d->token_lens[i]);
        total += d->token_lens[i];
    }
    t->text = malloc(total ? total : 1);
    t->text_off = malloc(((size_t)d->n_tokens + 1) * sizeof *t->text_off);
    if (!t->text || !t->text_off) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
    size_t o = 0;
    for (int32_t i = 0; i < d->n_tokens; i++) {
        t->text_off[i] = o;
        if (d->token_lens[i]) memcpy(t->text + o, d->tokens[i], d->token_lens[i]);
        o += d->token_lens[i];
    }
    t->text_off[d->n_tokens] = o;
    return MESHLM_OK;
}

static int copy_types_scores(meshlm_tokenizer *t, const meshlm_vocab_desc *d) {
    t->types = malloc((size_t)t->n);
    t->flags = calloc((size_t)t->n, 1);
    t->scores = malloc((size_t)t->n * sizeof *t->scores);
    if (!t->types || !t->flags || !t->scores)
        return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n; i++) {
        int32_t ty = d->types ? d->types[i] : MESHLM_TOKEN_NORMAL;
        if (ty < 0 || ty > MESHLM_TOKEN_BYTE)
            return meshlm_fail(MESHLM_ERR_FORMAT,
                               "tokenizer.ggml.token_type[%d] = %d is not a token type (0..6)",
                               (int)i, (int)ty);
        t->types[i] = (uint8_t)(ty == 0 ? MESHLM_TOKEN_NORMAL : ty);
        float sc = d->scores ? d->scores[i] : 0.0f;
        if (isnan(sc))
            return meshlm_fail(MESHLM_ERR_FORMAT, "tokenizer.ggml.scores[%d] is NaN", (int)i);
        t->scores[i] = sc;
    }
    return MESHLM_OK;
}

static int check_specials(meshlm_tokenizer *t, const meshlm_vocab_desc *d) {
    const struct { const char *key; int32_t id; } ids[] = {
        {"bos_token_id", d->bos_id}, {"eos_token_id", d->eos_id}, {"eot_token_id", d->eot_id},
        {"eom_token_id", d->eom_id}, {"unknown_token_id", d->unk_id},
        {"padding_token_id", d->pad_id}, {"newline token", d->nl_id},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id < -1 || ids[i].id >= t->n)
            return meshlm_fail(MESHLM_ERR_FORMAT,
                               "tokenizer.ggml.%s = %d is out of range (vocabulary of %d tokens)",
                               ids[i].key, (int)ids[i].id, (int)t->n);
    t->bos = d->bos_id;
    t->eos = d->eos_id;
    t->eot = d->eot_id;
    t->eom = d->eom_id;
    t->unk = d->unk_id;
    t->pad = d->pad_id;
    t->nl = d->nl_id;
    return MESHLM_OK;
}

static int setup_bytes(meshlm_tokenizer *t) {
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    for (int32_t id = 0; id < t->n; id++) {
        if (t->types[id] != MESHLM_TOKEN_BYTE) continue;
        size_t len;
        const char *s = tok_text(t, id, &len);
        int v = parse_byte_token(s, len);
        if (v < 0) {
            char q[200];
            return meshlm_fail(MESHLM_ERR_FORMAT,
                               "tokenizer.ggml.tokens[%d] = %s: a byte token must read <0xNN>",
                               (int)id, tok_quote(q, sizeof q, s, len));
        }
        if (t->kind == MESHLM_TOK_SPM) t->byte_tok[v] = id;
    }
    if (t->kind == MESHLM_TOK_BPE) {
        for (int b = 0; b < 256; b++) {
            char u[4];
            size_t n = utf8_put(bpe_byte_to_cp((unsigned char)b), u);
            t->byte_tok[b] = tok_find(t, u, n);
        }
    }
    if (t->nl < 0) t->nl = t->byte_tok['\n'];
    return MESHLM_OK;
}

/* End-of-generation tokens are also made control tokens, so their text in a prompt is
 * only ever read as the token when special parsing is asked for. */
static void setup_eog(meshlm_tokenizer *t) {
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = tok_find(t, eog_texts[i], strlen(eog_texts[i]));
        if (id < 0) continue;
        t->flags[id] |= TOKF_EOG;
        t->types[id] = MESHLM_TOKEN_CONTROL;
        if (t->eot < 0 && strcmp(eog_texts[i], "<|eom_id|>") != 0) t->eot = id;
        if (t->eom < 0 && strcmp(eog_texts[i], "<|eom_id|>") == 0) t->eom = id;
    }
    const int32_t ids[] = {t->eos, t->eot, t->eom};
    for (size_t i = 0; i < 3; i++)
        if (ids[i] >= 0) t->flags[ids[i]] |= TOKF_EOG;
}

static int setup_merges(meshlm_tokenizer *t, const meshlm_vocab_desc *d) {
    if (d->n_merges < 0 || (d->n_merges > 0 && (!d->merges || !d->merge_lens)))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer.ggml.merges: %d merges without texts",
                           (int)d->n_merges);
    int rc = tok_alloc_merges(t, d->n_merges);
    if (rc) return rc;
    char *buf = NULL;
    size_t cap = 0;
    for (int32_t i = 0; i < d->n_merges && !rc; i++) {
        const char *m = d->merges[i];
        size_t n = d->merge_lens[i];
        char q[200];
        /* The separator is the first space after the first byte, so a left side may
         * itself be a space-like character but never empty. */
        const char *sp = n > 1 && m ? memchr(m + 1, ' ', n - 1) : NULL;
        if (!sp) {
            rc = meshlm_fail(MESHLM_ERR_FORMAT, "tokenizer.ggml.merges[%d] = %s is not two tokens "
                             "separated by a space", (int)i, tok_quote(q, sizeof q, m ? m : "", m ? n : 0));
            break;
        }
        size_t ln = (size_t)(sp - m), rn = n - ln - 1;
        int32_t l = tok_find(t, m, ln), r = tok_find(t, sp + 1, rn);
        if (l < 0 || r < 0) {
            char side[200];
            rc = meshlm_fail(MESHLM_ERR_FORMAT, "tokenizer.ggml.merges[%d] = %s: %s is not a token",
                             (int)i, tok_quote(q, sizeof q, m, n),
                             l < 0 ? tok_quote(side, sizeof side, m, ln)
                                   : tok_quote(side, sizeof side, sp + 1, rn));
            break;
        }
        if (cap < ln + rn) {
            char *nb = realloc(buf, ln + rn);
            if (!nb) {
                rc = meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            buf = nb;
            cap = ln + rn;
        }
        memcpy(buf, m, ln);
        memcpy(buf + ln, sp + 1, rn);
        tok_add_merge(t, l, r, i, tok_find(t, buf, ln + rn));
    }
    free(buf);
    return rc;
}

/* SPM pieces turn U+2581 into spaces; BPE pieces map the byte alphabet back to bytes
 * (characters outside it are kept as they are). Other token types read as their text. */
static size_t decode_normal(const meshlm_tokenizer *t, const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_get((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) {
            out[o++] = s[i++];
            continue;
        }
        int b = t->kind == MESHLM_TOK_BPE ? bpe_cp_to_byte(cp) : -1;
        if (t->kind == MESHLM_TOK_SPM && cp == 0x2581) out[o++] = ' ';
        else if (b >= 0) out[o++] = (char)b;
        else {
            memcpy(out + o, s + i, k);
            o += k;
        }
        i += k;
    }
    return o;
}

static int setup_pieces(meshlm_tokenizer *t) {
    t->piece = malloc(t->text_off[t->n] ? t->text_off[t->n] : 1);
    t->piece_off = malloc(((size_t)t->n + 1) * sizeof *t->piece_off);
    if (!t->piece || !t->piece_off) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
    size_t o = 0;
    for (int32_t id = 0; id < t->n; id++) {
        size_t len;
        const char *s = tok_text(t, id, &len);
        t->piece_off[id] = o;
        if (t->types[id] == MESHLM_TOKEN_NORMAL) {
            o += decode_normal(t, s, len, t->piece + o);
        } else if (t->types[id] == MESHLM_TOKEN_BYTE) {
            t->piece[o++] = (char)parse_byte_token(s, len);
        } else {
            memcpy(t->piece + o, s, len);
            o += len;
        }
    }
    t->piece_off[t->n] = o;
    return MESHLM_OK;
}

static _Thread_local const meshlm_tokenizer *sort_ctx;

static int spec_cmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx, ly;
    const char *sx = tok_text(sort_ctx, x, &lx), *sy = tok_text(sort_ctx, y, &ly);
    unsigned char fx = (unsigned char)sx[0], fy = (unsigned char)sy[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Control, user-defined and unknown tokens are matched as literal text before the normal
 * tokenizer runs; grouping by first byte makes the scan one table look-up per byte. */
static int setup_specials(meshlm_tokenizer *t) {
    int32_t count = 0;
    for (int32_t id = 0; id < t->n; id++) {
        uint8_t ty = t->types[id];
        if ((ty == MESHLM_TOKEN_CONTROL || ty == MESHLM_TOKEN_USER_DEFINED ||
             ty == MESHLM_TOKEN_UNKNOWN) && t->text_off[id + 1] > t->text_off[id])
            count++;
    }
    t->spec = malloc(((size_t)count + 1) * sizeof *t->spec);
    if (!t->spec) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
    int32_t k = 0;
    for (int32_t id = 0; id < t->n; id++) {
        uint8_t ty = t->types[id];
        if ((ty == MESHLM_TOKEN_CONTROL || ty == MESHLM_TOKEN_USER_DEFINED ||
             ty == MESHLM_TOKEN_UNKNOWN) && t->text_off[id + 1] > t->text_off[id])
            t->spec[k++] = id;
    }
    /* qsort has no context argument in C11; creation is not performance-critical, but
     * it must stay thread-safe, so the comparison reads a thread-local pointer. */
    sort_ctx = t;
    qsort(t->spec, (size_t)count, sizeof *t->spec, spec_cmp);
    memset(t->spec_start, 0, sizeof t->spec_start);
    for (int32_t i = 0; i < count; i++) t->spec_start[(unsigned char)t->text[t->text_off[t->spec[i]]] + 1]++;
    for (int b = 0; b < 256; b++) t->spec_start[b + 1] += t->spec_start[b];
    return MESHLM_OK;
}

static int check_desc(const meshlm_vocab_desc *d) {
    if (d->kind != MESHLM_TOK_SPM && d->kind != MESHLM_TOK_BPE)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer: unknown kind %d", (int)d->kind);
    if (d->n_tokens < 1)
        return meshlm_fail(MESHLM_ERR_FORMAT, "tokenizer.ggml.tokens: the vocabulary is empty");
    if (!d->tokens || !d->token_lens)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer: no token texts");
    if (d->pre && strlen(d->pre) >= sizeof(((meshlm_tokenizer *)0)->pre))
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "tokenizer.ggml.pre: name too long");
    return MESHLM_OK;
}

static int build(meshlm_tokenizer *t, const meshlm_vocab_desc *d) {
    t->kind = d->kind;
    t->n = d->n_tokens;
    snprintf(t->pre, sizeof t->pre, "%s", d->pre ? d->pre : "default");
    t->add_bos = d->add_bos;
    t->add_eos = d->add_eos;
    t->add_space_prefix = d->add_space_prefix;
    int rc = copy_texts(t, d);
    if (!rc) rc = copy_types_scores(t, d);
    if (!rc) rc = check_specials(t, d);
    if (!rc) rc = tok_build_map(t);
    if (!rc) rc = setup_bytes(t);
    if (!rc) setup_eog(t);
    if (!rc && t->kind == MESHLM_TOK_BPE) rc = setup_merges(t, d);
    if (!rc) rc = setup_pieces(t);
    if (!rc) rc = setup_specials(t);
    if (!rc && t->kind == MESHLM_TOK_BPE) rc = pretok_compile(t);
    return rc;
}

int meshlm_tokenizer_create(const meshlm_vocab_desc *d, meshlm_tokenizer **out) {
    if (!d || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer_create: NULL argument");
    *out = NULL;
    int rc = check_desc(d);
    if (rc) return rc;
    meshlm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
    rc = build(t, d);
    if (rc) {
        meshlm_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return MESHLM_OK;
}

void meshlm_tokenizer_free(meshlm_tokenizer *t) {
    if (!t) return;
    for (int k = 0; k < PRETOK_MAX_STAGES; k++) pcre2_code_free(t->re[k]);
    free(t->text);
    free(t->text_off);
    free(t->piece);
    free(t->piece_off);
    free(t->scores);
    free(t->types);
    free(t->flags);
    free(t->map);
    free(t->merges);
    free(t->spec);
    free(t);
}

meshlm_tok_kind meshlm_tokenizer_kind(const meshlm_tokenizer *t) { return t->kind; }
const char *meshlm_tokenizer_pre(const meshlm_tokenizer *t) { return t->pre; }
int32_t meshlm_tokenizer_n_vocab(const meshlm_tokenizer *t) { return t->n; }
int32_t meshlm_tokenizer_bos(const meshlm_tokenizer *t) { return t->bos; }
int32_t meshlm_tokenizer_eos(const meshlm_tokenizer *t) { return t->eos; }
int32_t meshlm_tokenizer_eot(const meshlm_tokenizer *t) { return t->eot; }
int32_t meshlm_tokenizer_nl(const meshlm_tokenizer *t) { return t->nl; }
bool meshlm_tokenizer_add_bos(const meshlm_tokenizer *t) { return t->add_bos; }
bool meshlm_tokenizer_add_eos(const meshlm_tokenizer *t) { return t->add_eos; }

bool meshlm_tokenizer_is_eog(const meshlm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n && (t->flags[id] & TOKF_EOG);
}

int meshlm_tokenizer_token_type(const meshlm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n ? t->types[id] : 0;
}

int32_t meshlm_tokenizer_find(const meshlm_tokenizer *t, const char *text, size_t len) {
    return text && len ? tok_find(t, text, len) : -1;
}

int meshlm_tokenizer_text(const meshlm_tokenizer *t, int32_t id, const char **text, size_t *len) {
    if (!t || !text || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer_text: NULL argument");
    if (id < 0 || id >= t->n)
        return meshlm_fail(MESHLM_ERR_RANGE, "token id %d is out of range [0, %d)", (int)id, (int)t->n);
    *text = tok_text(t, id, len);
    return MESHLM_OK;
}

int meshlm_tokenizer_piece(const meshlm_tokenizer *t, int32_t id, const char **bytes,
                           size_t *len) {
    if (!t || !bytes || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer_piece: NULL argument");
    if (id < 0 || id >= t->n)
        return meshlm_fail(MESHLM_ERR_RANGE, "token id %d is out of range [0, %d)", (int)id, (int)t->n);
    *bytes = t->piece + t->piece_off[id];
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return MESHLM_OK;
}

/* Reading tokenizer.ggml.* from a GGUF file into a vocabulary description, checking each
 * key's type and length before the tokenizer is built from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

#define KEY(x) "tokenizer.ggml." x

typedef struct gguf_vocab {
    meshlm_vocab_desc d;
    const char **tokens;
    size_t *token_lens;
    float *scores;
    int32_t *types;
    const char **merges;
    size_t *merge_lens;
    char pre[64];
} gguf_vocab;

static int read_str_array(const meshlm_gguf *g, const char *key, uint64_t n, const char ***s,
                          size_t **lens) {
    *s = malloc((size_t)(n ? n : 1) * sizeof **s);
    *lens = malloc((size_t)(n ? n : 1) * sizeof **lens);
    if (!*s || !*lens) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory", key);
    for (uint64_t i = 0; i < n; i++) {
        int rc = meshlm_gguf_get_arr_str(g, key, i, &(*s)[i], &(*lens)[i]);
        if (rc) return rc;
    }
    return MESHLM_OK;
}

/* An array key's element type and count; optional keys that are absent give n = 0. */
static int array_info(const meshlm_gguf *g, const char *key, int want_type, bool required,
                      uint64_t *n, const void **data) {
    *n = 0;
    *data = NULL;
    if (meshlm_gguf_find_key(g, key) < 0) {
        if (!required) return MESHLM_OK;
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: key '%s' is missing", meshlm_gguf_path(g), key);
    }
    int et;
    int rc = meshlm_gguf_get_arr(g, key, &et, n, data);
    if (rc) return rc;
    if (et != want_type)
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: key '%s' is an array of type %d, expected %s",
                           meshlm_gguf_path(g), key, et,
                           want_type == MESHLM_GGUF_STRING ? "strings"
                           : want_type == MESHLM_GGUF_F32  ? "f32" : "i32");
    if (*n > (uint64_t)INT32_MAX)
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: key '%s' has %llu elements",
                           meshlm_gguf_path(g), key, (unsigned long long)*n);
    return MESHLM_OK;
}

static int read_kind(const meshlm_gguf *g, gguf_vocab *v) {
    const char *s;
    size_t len;
    int rc = meshlm_gguf_get_str(g, KEY("model"), &s, &len);
    if (rc) return rc;
    if (len == 5 && !memcmp(s, "llama", 5)) v->d.kind = MESHLM_TOK_SPM;
    else if (len == 4 && !memcmp(s, "gpt2", 4)) v->d.kind = MESHLM_TOK_BPE;
    else {
        char q[200];
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "%s: tokenizer.ggml.model = %s is not supported (llama or gpt2)",
                           meshlm_gguf_path(g), tok_quote(q, sizeof q, s, len));
    }
    snprintf(v->pre, sizeof v->pre, "default");
    if (meshlm_gguf_find_key(g, KEY("pre")) >= 0) {
        rc = meshlm_gguf_get_str(g, KEY("pre"), &s, &len);
        if (rc) return rc;
        if (len >= sizeof v->pre || memchr(s, '\0', len)) {
            char q[200];
            return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre = %s is not supported",
                               meshlm_gguf_path(g), tok_quote(q, sizeof q, s, len));
        }
        memcpy(v->pre, s, len);
        v->pre[len] = '\0';
    }
    v->d.pre = v->pre;
    return MESHLM_OK;
}

static int read_arrays(const meshlm_gguf *g, gguf_vocab *v) {
    uint64_t n, m;
    const void *data;
    int rc = array_info(g, KEY("tokens"), MESHLM_GGUF_STRING, true, &n, &data);
    if (!rc) rc = read_str_array(g, KEY("tokens"), n, &v->tokens, &v->token_lens);
    if (rc) return rc;
    v->d.n_tokens = (int32_t)n;
    v->d.tokens = v->tokens;
    v->d.token_lens = v->token_lens;

    rc = array_info(g, KEY("scores"), MESHLM_GGUF_F32, false, &m, &data);
    if (rc) return rc;
    if (data) {
        if (m != n)
            return meshlm_fail(MESHLM_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries for %llu tokens",
                               meshlm_gguf_path(g), (unsigned long long)m, (unsigned long long)n);
        v->scores = malloc((size_t)n * sizeof *v->scores);
        if (!v->scores) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(v->scores, data, (size_t)n * sizeof *v->scores);
        v->d.scores = v->scores;
    }

    rc = array_info(g, KEY("token_type"), MESHLM_GGUF_I32, false, &m, &data);
    if (rc) return rc;
    if (data) {
        if (m != n)
            return meshlm_fail(MESHLM_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens",
                               meshlm_gguf_path(g), (unsigned long long)m, (unsigned long long)n);
        v->types = malloc((size_t)n * sizeof *v->types);
        if (!v->types) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(v->types, data, (size_t)n * sizeof *v->types);
        v->d.types = v->types;
    }

    if (v->d.kind != MESHLM_TOK_BPE) return MESHLM_OK;
    rc = array_info(g, KEY("merges"), MESHLM_GGUF_STRING, true, &m, &data);
    if (!rc) rc = read_str_array(g, KEY("merges"), m, &v->merges, &v->merge_lens);
    v->d.n_merges = (int32_t)m;
    v->d.merges = v->merges;
    v->d.merge_lens = v->merge_lens;
    return rc;
}

/* Special ids may be stored as any integer type; values outside the vocabulary are
 * rejected here, naming the key, instead of surfacing later as bad ids. Generation never
 * emits the padding id, and some published files point it one past the vocabulary, so an
 * out-of-range id there (lenient) means "no padding token" rather than a refused file. */
static int read_id(const meshlm_gguf *g, const char *key, int32_t n_tokens, bool lenient, int32_t *id) {
    if (meshlm_gguf_find_key(g, key) < 0) return MESHLM_OK;
    int64_t x;
    int rc = meshlm_gguf_get_int(g, key, &x);
    if (rc) return rc;
    if ((x < 0 || x >= n_tokens) && lenient) return MESHLM_OK;
    if (x < 0 || x >= n_tokens)
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: %s = %lld is out of range (vocabulary of %d tokens)",
                           meshlm_gguf_path(g), key, (long long)x, (int)n_tokens);
    *id = (int32_t)x;
    return MESHLM_OK;
}

static int read_flag(const meshlm_gguf *g, const char *key, bool *flag) {
    if (meshlm_gguf_find_key(g, key) < 0) return MESHLM_OK;
    return meshlm_gguf_get_bool(g, key, flag);
}

/* Defaults follow the converters: SentencePiece vocabularies put <unk>, <s>, </s> at
 * 0, 1, 2, add BOS and a leading space; byte-level ones add BOS only for Llama 3. */
static int read_specials(const meshlm_gguf *g, gguf_vocab *v) {
    meshlm_vocab_desc *d = &v->d;
    bool spm = d->kind == MESHLM_TOK_SPM;
    d->bos_id = spm && d->n_tokens > 1 ? 1 : -1;
    d->eos_id = spm && d->n_tokens > 2 ? 2 : -1;
    d->unk_id = spm ? 0 : -1;
    d->eot_id = d->eom_id = d->pad_id = d->nl_id = -1;
    d->add_space_prefix = spm;
    bool llama3 = false;
    d->add_bos = spm || (pretok_regex(v->pre, &llama3) && llama3);
    d->add_eos = false;
    const struct { const char *key; int32_t *id; } ids[] = {
        {KEY("bos_token_id"), &d->bos_id}, {KEY("eos_token_id"), &d->eos_id},
        {KEY("eot_token_id"), &d->eot_id}, {KEY("eom_token_id"), &d->eom_id},
        {KEY("unknown_token_id"), &d->unk_id}, {KEY("padding_token_id"), &d->pad_id},
    };
    int rc = MESHLM_OK;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && !rc; i++)
        rc = read_id(g, ids[i].key, d->n_tokens, ids[i].id == &d->pad_id, ids[i].id);
    if (!rc) rc = read_flag(g, KEY("add_bos_token"), &d->add_bos);
    if (!rc) rc = read_flag(g, KEY("add_eos_token"), &d->add_eos);
    if (!rc) rc = read_flag(g, KEY("add_space_prefix"), &d->add_space_prefix);
    return rc;
}

int meshlm_tokenizer_from_gguf(const meshlm_gguf *g, meshlm_tokenizer **out) {
    if (!g || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "tokenizer_from_gguf: NULL argument");
    *out = NULL;
    gguf_vocab v;
    memset(&v, 0, sizeof v);
    int rc = read_kind(g, &v);
    if (!rc) rc = read_arrays(g, &v);
    if (!rc) rc = read_specials(g, &v);
    if (!rc) {
        rc = meshlm_tokenizer_create(&v.d, out);
        if (rc) meshlm_fail_prefix(rc, "%s", meshlm_gguf_path(g));
    }
    free(v.tokens);
    free(v.token_lens);
    free(v.scores);
    free(v.types);
    free(v.merges);
    free(v.merge_lens);
    return rc;
}

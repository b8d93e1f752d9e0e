/* Pre-tokenizers for byte-level BPE: the regexes that cut text into words before
 * merging, chosen by tokenizer.ggml.pre, run with PCRE2 in UTF + Unicode-property mode.
 * Most pre-tokenizers are one regex; some apply a short list in stages, each stage
 * cutting the pieces the previous one left. */
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

/* GPT-2's split: English contractions, letter runs, digit runs, other runs, each with an
 * optional leading space; whitespace runs leave their last space to the next word. */
static const char re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Llama 3 (tiktoken cl100k style): case-insensitive contractions, a letter run may take
 * one leading non-letter, digits in groups of up to three, newlines kept together. */
static const char re_llama3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Qwen 2: as Llama 3, but every digit is a word of its own. */
static const char re_qwen2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Mistral's Tekken, exactly as its tokenizer.json states it: words split at case
 * changes (a capitalised run, then a lower-case run), combining marks part of the word
 * they follow, single digits, and a '/' or line break kept with the punctuation before
 * it. llama.cpp runs an approximation that knows case only for ASCII ([^a-z] and [^A-Z]
 * under a letter lookahead, every other letter counted as both cases, marks not as
 * letters). The two agree on ASCII and on accented words in lower case or capitalised,
 * but not where a case change involves a non-ASCII letter (here ÉCOLE is one word and
 * МоскваСити two, there É + COLE and one) or a combining mark follows a letter. The
 * tokenizer.json form is the definition. */
static const char re_tekken[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* OpenAI's o200k (gpt-4o, gpt-oss), as its tokenizer.json states it: Tekken's case-aware
 * words with an English contraction (any case) kept on the word's end, and digits in
 * groups of up to three. llama.cpp runs the same ASCII-only approximation of the case
 * classes as for Tekken, with the same differences on non-ASCII case changes. */
static const char re_gpt4o[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* First stage of the digit-isolating families (SmolLM, StarCoder, Command-R, ...): every
 * digit alone, the text between digits left to GPT-2's split. */
static const char re_digit[] = "\\p{N}";

enum { MAX_NAMES = 8 };

/* One pre-tokenizer under all its names. ignore_merges: a whole word that is itself a
 * token is taken as one, as the tiktoken-derived vocabularies were trained. */
typedef struct pretok_def {
    const char *names[MAX_NAMES];
    const char *re[PRETOK_MAX_STAGES]; /* in the order applied; unused stages NULL */
    bool ignore_merges;
} pretok_def;

static const pretok_def defs[] = {
    {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {re_llama3}, true},
    {{"dbrx", "smaug-bpe"}, {re_llama3}, false},
    {{"tekken"}, {re_tekken}, true},
    {{"gpt-4o", "llama4"}, {re_gpt4o}, false},
    {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {re_qwen2}, false},
    {{"gpt-2", "gpt2", "default", "phi-2", "olmo"}, {re_gpt2}, false},
    {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b",
      "mellum2"}, {re_digit, re_gpt2}, false},
};

static const pretok_def *find_def(const char *pre) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        for (int k = 0; k < MAX_NAMES && defs[i].names[k]; k++)
            if (strcmp(pre, defs[i].names[k]) == 0) return &defs[i];
    return NULL;
}

const char *pretok_regex(const char *pre, bool *ignore_merges) {
    const pretok_def *d = find_def(pre);
    if (!d) return NULL;
    *ignore_merges = d->ignore_merges;
    return d->re[0];
}

void pretok_known_names(char *buf, size_t cap) {
    size_t o = 0;
    if (cap) buf[0] = '\0';
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        for (int k = 0; k < MAX_NAMES && defs[i].names[k]; k++) {
            size_t len = strlen(defs[i].names[k]), sep = o ? 2 : 0;
            if (o + sep + len >= cap) return;
            memcpy(buf + o, ", ", sep);
            memcpy(buf + o + sep, defs[i].names[k], len + 1);
            o += sep + len;
        }
    }
}

int pretok_compile(meshlm_tokenizer *t) {
    const pretok_def *d = find_def(t->pre);
    if (!d) {
        char names[640];
        pretok_known_names(names, sizeof names);
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "tokenizer.ggml.pre = '%s' is not a supported pre-tokenizer "
                           "(supported: %s)", t->pre, names);
    }
    t->ignore_merges = d->ignore_merges;
    t->n_re = 0;
    for (int k = 0; k < PRETOK_MAX_STAGES && d->re[k]; k++) {
        int err;
        PCRE2_SIZE at;
        /* MATCH_INVALID_UTF lets arbitrary bytes through: invalid sequences match nothing
         * and end up in the gaps between words, so no byte is lost or altered. */
        t->re[k] = pcre2_compile((PCRE2_SPTR)d->re[k], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
        if (!t->re[k]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return meshlm_fail(MESHLM_ERR_INTERNAL,
                               "tokenizer: pre-tokenizer '%s', stage %d: regex error at %zu: %s",
                               t->pre, k + 1, (size_t)at, (const char *)msg);
        }
        pcre2_jit_compile(t->re[k], PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        t->n_re = k + 1;
    }
    return MESHLM_OK;
}

typedef struct split_ctx {
    const meshlm_tokenizer *t;
    pcre2_match_data *md[PRETOK_MAX_STAGES];
    int (*fn)(void *ctx, const char *w, size_t wn);
    void *ctx;
} split_ctx;

/* Cuts s by stage k's regex into matches and the gaps between them, and hands each
 * piece to stage k + 1; the last stage's pieces are the words. Every piece is matched
 * as a subject of its own, as the tokenizers library's Split does, so a lookahead such as
 * \s+(?!\S) sees the piece's end and not the text after it. */
static int split_stage(split_ctx *c, int k, const char *s, size_t n) {
    if (k == c->t->n_re) return c->fn(c->ctx, s, n);
    const pcre2_code *re = c->t->re[k];
    int rc = MESHLM_OK;
    size_t pos = 0;
    while (pos < n && !rc) {
        int m = pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, c->md[k], NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(m, msg, sizeof msg);
            return meshlm_fail(MESHLM_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s', stage %d: %s",
                               c->t->pre, k + 1, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md[k]);
        size_t b = ov[0], e = ov[1];
        if (e <= b)
            return meshlm_fail(MESHLM_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s', stage %d "
                               "matched nothing", c->t->pre, k + 1);
        if (b > pos) rc = split_stage(c, k + 1, s + pos, b - pos);
        if (!rc) rc = split_stage(c, k + 1, s + b, e - b);
        pos = e;
    }
    if (!rc && pos < n) rc = split_stage(c, k + 1, s + pos, n - pos);
    return rc;
}

int pretok_split(const meshlm_tokenizer *t, const char *s, size_t n,
                 int (*fn)(void *ctx, const char *w, size_t wn), void *ctx) {
    split_ctx c = {.t = t, .fn = fn, .ctx = ctx};
    int rc = MESHLM_OK;
    for (int k = 0; k < t->n_re && !rc; k++) {
        c.md[k] = pcre2_match_data_create_from_pattern(t->re[k], NULL);
        if (!c.md[k]) rc = meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for regex matching");
    }
    if (!rc && n) rc = split_stage(&c, 0, s, n);
    for (int k = 0; k < t->n_re; k++) pcre2_match_data_free(c.md[k]);
    return rc;
}

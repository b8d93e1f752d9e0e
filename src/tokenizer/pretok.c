/* Pre-tokenizers for byte-level BPE: the regex that cuts text into words before merging,
 * chosen by tokenizer.ggml.pre, run with PCRE2 in UTF + Unicode-property mode. */
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

typedef struct pretok_name {
    const char *name;
    const char *re;
    bool ignore_merges;
} pretok_name;

static const pretok_name names[] = {
    {"llama-bpe", re_llama3, true}, {"llama3", re_llama3, true},
    {"llama-v3", re_llama3, true},  {"falcon3", re_llama3, true},
    {"pixtral", re_llama3, true},   {"qwen2", re_qwen2, false},
    {"deepseek-r1-qwen", re_qwen2, false}, {"megrez", re_qwen2, false},
    {"gpt-2", re_gpt2, false},      {"gpt2", re_gpt2, false},
    {"default", re_gpt2, false},    {"phi-2", re_gpt2, false},
};

const char *pretok_regex(const char *pre, bool *ignore_merges) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(pre, names[i].name) == 0) {
            *ignore_merges = names[i].ignore_merges;
            return names[i].re;
        }
    }
    return NULL;
}

const char *pretok_known_names(void) {
    return "llama-bpe, llama3, llama-v3, falcon3, pixtral, qwen2, deepseek-r1-qwen, megrez, "
           "gpt-2, gpt2, default, phi-2";
}

int pretok_compile(meshlm_tokenizer *t) {
    const char *re = pretok_regex(t->pre, &t->ignore_merges);
    if (!re)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "tokenizer.ggml.pre = '%s' is not a supported pre-tokenizer "
                           "(supported: %s)", t->pre, pretok_known_names());
    int err;
    PCRE2_SIZE at;
    /* MATCH_INVALID_UTF lets arbitrary bytes through: invalid sequences match nothing and
     * end up in the gaps between words, so no byte is lost or altered. */
    t->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return meshlm_fail(MESHLM_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s': regex error at %zu: %s",
                           t->pre, (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return MESHLM_OK;
}

int pretok_split(const meshlm_tokenizer *t, const char *s, size_t n,
                 int (*fn)(void *ctx, const char *w, size_t wn), void *ctx) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!md) return meshlm_fail(MESHLM_ERR_NOMEM, "tokenizer: out of memory for regex matching");
    int rc = MESHLM_OK;
    size_t pos = 0;
    while (pos < n && !rc) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = meshlm_fail(MESHLM_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s' at byte %zu: %s",
                             t->pre, pos, (const char *)msg);
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], e = ov[1];
        if (e <= b) {
            rc = meshlm_fail(MESHLM_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s' matched nothing at byte %zu",
                             t->pre, b);
            break;
        }
        if (b > pos) rc = fn(ctx, s + pos, b - pos);
        if (!rc) rc = fn(ctx, s + b, e - b);
        pos = e;
    }
    if (!rc && pos < n) rc = fn(ctx, s + pos, n - pos);
    pcre2_match_data_free(md);
    return rc;
}

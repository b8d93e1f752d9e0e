/* Internals shared by the tokenizer's files: the tokenizer's layout, its hash maps, a
 * growable id list and the merge queue used by both kinds. */
#ifndef MESHLM_TOKENIZER_INTERNAL_H
#define MESHLM_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

/* Token flags kept per id next to its type. */
enum { TOKF_EOG = 1 };

typedef struct merge_slot {
    uint64_t key;   /* (left id << 32) | right id */
    int32_t rank;   /* -1 = empty slot */
    int32_t result; /* id of the merged text, -1 if it is not a token */
} merge_slot;

/* The most regexes a pre-tokenizer applies in sequence. */
enum { PRETOK_MAX_STAGES = 2 };

struct meshlm_tokenizer {
    meshlm_tok_kind kind;
    char pre[48];
    pcre2_code *re[PRETOK_MAX_STAGES]; /* BPE pre-split regexes, in the order applied */
    int n_re;
    bool ignore_merges; /* BPE: a word that is a token as a whole is taken as is */

    int32_t n;
    char *text;        /* all token texts, back to back */
    size_t *text_off;  /* n + 1 offsets into text */
    char *piece;       /* decoded bytes of every token */
    size_t *piece_off; /* n + 1 offsets into piece */
    float *scores;
    uint8_t *types;
    uint8_t *flags;

    uint64_t *map;     /* text -> (hash tag << 32) | (id + 1), 0 = empty; open addressing */
    uint32_t map_mask;
    merge_slot *merges;
    uint32_t merge_mask;

    int32_t byte_tok[256]; /* token for a raw byte (SPM: <0xNN>, BPE: its alphabet char) */

    /* Special tokens grouped by first byte, longest first within a group. */
    int32_t *spec;
    uint32_t spec_start[257];

    int32_t bos, eos, eot, eom, unk, pad, nl;
    bool add_bos, add_eos, add_space_prefix;
};

static inline const char *tok_text(const meshlm_tokenizer *t, int32_t id, size_t *len) {
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

/* Looks a text up among all tokens (-1 if absent); the last of duplicate texts wins. */
int32_t tok_find(const meshlm_tokenizer *t, const char *s, size_t len);
/* The merge of two adjacent tokens, or NULL when the pair has no merge. */
const merge_slot *tok_merge(const meshlm_tokenizer *t, int32_t left, int32_t right);
uint64_t tok_hash(const void *s, size_t len);
int tok_build_map(meshlm_tokenizer *t);
int tok_alloc_merges(meshlm_tokenizer *t, int32_t n_merges);
void tok_add_merge(meshlm_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                   int32_t result);

typedef struct ivec {
    int32_t *v;
    size_t n, cap;
} ivec;
int ivec_push(ivec *a, int32_t x);

/* A candidate merge of two neighbouring symbols. SPM orders by score (higher first),
 * BPE by rank (lower first); ties go to the leftmost pair. */
typedef struct bigram {
    float score;
    int32_t rank;
    int32_t left, right;
    uint32_t len;
    int32_t id;
} bigram;

typedef struct bheap {
    bigram *v;
    size_t n, cap;
} bheap;
int bheap_push(bheap *h, bigram b);
bigram bheap_pop(bheap *h);

/* A symbol of a word being merged: a byte range and its neighbours in the chain. */
typedef struct symbol {
    uint32_t off, n;
    int32_t prev, next;
    int32_t id;
} symbol;

/* Emits the byte-fallback tokens for raw bytes (byte token, else the one-byte text,
 * else the unknown token); fails when a byte has none of them. */
int tok_push_bytes(const meshlm_tokenizer *t, const unsigned char *s, size_t n, ivec *out);

/* SPM: text already escaped (spaces as U+2581, prefix added). */
int spm_encode(const meshlm_tokenizer *t, const char *s, size_t n, ivec *out);
/* BPE: a raw text fragment (pre-split, then merged word by word). */
int bpe_encode(const meshlm_tokenizer *t, const char *s, size_t n, ivec *out);

/* Pre-tokenizers: the first regex for a tokenizer.ggml.pre name, NULL if the name is
 * unknown; *ignore_merges tells whether whole words found in the vocabulary are taken. */
const char *pretok_regex(const char *pre, bool *ignore_merges);
/* Writes the supported names, comma-separated, into buf (cut short to fit cap). */
void pretok_known_names(char *buf, size_t cap);
int pretok_compile(meshlm_tokenizer *t);
/* Calls fn for every piece of s: regex matches and the unmatched gaps between them
 * (invalid UTF-8, or text a stage leaves alone), each cut again by the next stage, in
 * order, covering every byte exactly once. */
int pretok_split(const meshlm_tokenizer *t, const char *s, size_t n,
                 int (*fn)(void *ctx, const char *w, size_t wn), void *ctx);

/* UTF-8 and the byte-level alphabet. */
uint32_t bpe_byte_to_cp(unsigned char b);
int bpe_cp_to_byte(uint32_t cp); /* -1 if cp is not in the alphabet */
size_t utf8_put(uint32_t cp, char *out);
/* Decodes one code point at s (n bytes); returns its length, or 0 if invalid. */
size_t utf8_get(const unsigned char *s, size_t n, uint32_t *cp);

/* Writes a printable, quoted, possibly shortened copy of bytes for messages. */
const char *tok_quote(char *buf, size_t cap, const char *s, size_t n);

#endif

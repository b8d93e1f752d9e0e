/* Tokenizers from the vocabulary a model file carries: SentencePiece-style ("llama":
 * scores, byte fallback, leading space) and byte-level BPE ("gpt2": merges and a
 * pre-tokenizer chosen by tokenizer.ggml.pre). */
#ifndef MESHLM_TOKENIZER_H
#define MESHLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/gguf.h"

typedef enum meshlm_tok_kind { MESHLM_TOK_SPM = 1, MESHLM_TOK_BPE = 2 } meshlm_tok_kind;

/* GGUF token types (tokenizer.ggml.token_type). */
typedef enum meshlm_token_type {
    MESHLM_TOKEN_NORMAL = 1, MESHLM_TOKEN_UNKNOWN = 2, MESHLM_TOKEN_CONTROL = 3,
    MESHLM_TOKEN_USER_DEFINED = 4, MESHLM_TOKEN_UNUSED = 5, MESHLM_TOKEN_BYTE = 6,
} meshlm_token_type;

/* A vocabulary described in plain arrays; the tokenizer copies what it keeps.
 * Token and merge texts are byte strings of the given lengths. Optional arrays may be
 * NULL; special ids are -1 when absent. */
typedef struct meshlm_vocab_desc {
    meshlm_tok_kind kind;
    const char *pre;         /* pre-tokenizer name, NULL = "default" */
    int32_t n_tokens;
    const char *const *tokens;
    const size_t *token_lens;
    const float *scores;     /* optional */
    const int32_t *types;    /* optional: all NORMAL */
    int32_t n_merges;        /* BPE only: "left right" pairs, best first */
    const char *const *merges;
    const size_t *merge_lens;
    int32_t bos_id, eos_id, eot_id, eom_id, unk_id, pad_id, nl_id;
    bool add_bos, add_eos;
    bool add_space_prefix;   /* SPM: prepend a space to the text */
} meshlm_vocab_desc;

typedef struct meshlm_tokenizer meshlm_tokenizer;

int meshlm_tokenizer_create(const meshlm_vocab_desc *d, meshlm_tokenizer **out);
/* Reads tokenizer.ggml.* from a model file; errors name the key and the problem. */
int meshlm_tokenizer_from_gguf(const meshlm_gguf *g, meshlm_tokenizer **out);
void meshlm_tokenizer_free(meshlm_tokenizer *t);

meshlm_tok_kind meshlm_tokenizer_kind(const meshlm_tokenizer *t);
const char *meshlm_tokenizer_pre(const meshlm_tokenizer *t);
int32_t meshlm_tokenizer_n_vocab(const meshlm_tokenizer *t);
int32_t meshlm_tokenizer_bos(const meshlm_tokenizer *t);
int32_t meshlm_tokenizer_eos(const meshlm_tokenizer *t);
/* EOT (end of turn, found by text when the file names none) and the newline token;
 * -1 when absent. */
int32_t meshlm_tokenizer_eot(const meshlm_tokenizer *t);
int32_t meshlm_tokenizer_nl(const meshlm_tokenizer *t);
/* Whether add_special adds BOS / EOS. */
bool meshlm_tokenizer_add_bos(const meshlm_tokenizer *t);
bool meshlm_tokenizer_add_eos(const meshlm_tokenizer *t);
/* The meshlm_token_type of id (0 if out of range). */
int meshlm_tokenizer_token_type(const meshlm_tokenizer *t, int32_t id);
/* The id of the token whose stored text is exactly text (-1 if none): for chat
 * templates to find markers such as "<|im_start|>". */
int32_t meshlm_tokenizer_find(const meshlm_tokenizer *t, const char *text, size_t len);
/* A token's text as the vocabulary stores it (not decoded). */
int meshlm_tokenizer_text(const meshlm_tokenizer *t, int32_t id, const char **text, size_t *len);
/* True for end-of-generation tokens: EOS, EOT, EOM and control tokens such as
 * <|im_end|>, <|eot_id|>, <|endoftext|>. */
bool meshlm_tokenizer_is_eog(const meshlm_tokenizer *t, int32_t id);

/* Text to ids (see meshlm_tokenize in meshlm.h for add_special, parse_special and the
 * MESHLM_ERR_RANGE contract). */
int meshlm_tokenizer_encode(const meshlm_tokenizer *t, const char *text, size_t len,
                            bool add_special, bool parse_special, int32_t *out, int32_t cap,
                            int32_t *n_out);

/* The bytes a token decodes to (SPM: U+2581 becomes a space, <0xNN> becomes byte NN;
 * BPE: the byte-level alphabet mapped back to bytes; control tokens: their text).
 * Pointer valid for the tokenizer's lifetime. Out-of-range ids are an error. */
int meshlm_tokenizer_piece(const meshlm_tokenizer *t, int32_t id, const char **bytes,
                           size_t *len);

/* Streaming decode: holds back an incomplete UTF-8 character until the token that
 * completes it arrives, so no output ever splits a character. */
typedef struct meshlm_detok {
    unsigned char pending[8];
    int n_pending;
} meshlm_detok;

/* Appends the decoded text of id to out (at most cap bytes); *n gets the bytes written.
 * Bytes that can never form valid UTF-8 are emitted as U+FFFD. */
int meshlm_detok_push(const meshlm_tokenizer *t, meshlm_detok *d, int32_t id, char *out,
                      size_t cap, size_t *n);
/* Emits whatever is still held back (as U+FFFD for an incomplete character). */
int meshlm_detok_flush(meshlm_detok *d, char *out, size_t cap, size_t *n);

#endif

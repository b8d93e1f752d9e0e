/* Tokenizes arbitrary bytes with a small built-in vocabulary of each kind and checks
 * what must always hold: ids in range, the size contract, byte-level BPE decoding back
 * to the exact input, SPM decoding back to " " + input, and a streaming decoder that
 * never emits invalid UTF-8. The first input byte picks the tokenizer and the flags. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlm.h"
#include "tokenizer/tokenizer.h"

enum { NTOK = 300, NMERGE = 16 };

typedef struct vocab {
    const char *tok[NTOK];
    size_t len[NTOK];
    float score[NTOK];
    int32_t type[NTOK];
    char store[NTOK][16];
    int n;
} vocab;

static void add(vocab *v, const char *s, size_t n, float score, int type) {
    memcpy(v->store[v->n], s, n);
    v->tok[v->n] = v->store[v->n];
    v->len[v->n] = n;
    v->score[v->n] = score;
    v->type[v->n] = type;
    v->n++;
}

static void adds(vocab *v, const char *s, float score, int type) { add(v, s, strlen(s), score, type); }

static meshlm_tokenizer *make_spm(void) {
    static vocab v;
    adds(&v, "<unk>", 0, MESHLM_TOKEN_UNKNOWN);
    adds(&v, "<s>", 0, MESHLM_TOKEN_CONTROL);
    adds(&v, "</s>", 0, MESHLM_TOKEN_CONTROL);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        adds(&v, s, 0, MESHLM_TOKEN_BYTE);
    }
    static const char *const pieces[] = {"\xE2\x96\x81", "a", "b", "e", "t", "h", "\xE2\x96\x81t",
                                         "he", "\xE2\x96\x81the", "ab", "\xE2\x96\x81\xE2\x96\x81",
                                         "\xC3\xA9", "<|im_end|>"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        adds(&v, pieces[i], -(float)(i % 5), i == 12 ? MESHLM_TOKEN_CONTROL : MESHLM_TOKEN_NORMAL);
    meshlm_vocab_desc d = {.kind = MESHLM_TOK_SPM, .n_tokens = v.n, .tokens = v.tok,
                           .token_lens = v.len, .scores = v.score, .types = v.type,
                           .bos_id = 1, .eos_id = 2, .eot_id = -1, .eom_id = -1, .unk_id = 0,
                           .pad_id = -1, .nl_id = -1, .add_bos = true, .add_eos = true,
                           .add_space_prefix = true};
    meshlm_tokenizer *t = NULL;
    if (meshlm_tokenizer_create(&d, &t)) abort();
    return t;
}

static bool self_byte(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

static meshlm_tokenizer *make_bpe(const char *pre) {
    static vocab v;
    v.n = 0;
    int moved = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = self_byte(b) ? (uint32_t)b : 256u + (uint32_t)moved++;
        char s[2];
        if (cp < 0x80) {
            s[0] = (char)cp;
            add(&v, s, 1, 0, MESHLM_TOKEN_NORMAL);
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            add(&v, s, 2, 0, MESHLM_TOKEN_NORMAL);
        }
    }
    static const char *const pieces[] = {"\xC4\xA0t", "he", "\xC4\xA0the", "th", "in", "\xC4\xA0\xC4\xA0",
                                         "\xC4\x8A\xC4\x8A", "12", "the", "\xC3\x83\xC2\xA9"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        adds(&v, pieces[i], 0, MESHLM_TOKEN_NORMAL);
    adds(&v, "<|endoftext|>", 0, MESHLM_TOKEN_CONTROL);
    adds(&v, "<|im_end|>", 0, MESHLM_TOKEN_CONTROL);
    adds(&v, "<tool>", 0, MESHLM_TOKEN_USER_DEFINED);
    static const char *const merges[] = {"h e", "\xC4\xA0 t", "\xC4\xA0t he", "t h", "i n",
                                         "\xC4\xA0 \xC4\xA0", "\xC4\x8A \xC4\x8A", "1 2",
                                         "\xC3\x83 \xC2\xA9"};
    size_t mlen[NMERGE];
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) mlen[i] = strlen(merges[i]);
    meshlm_vocab_desc d = {.kind = MESHLM_TOK_BPE, .pre = pre, .n_tokens = v.n, .tokens = v.tok,
                           .token_lens = v.len, .types = v.type,
                           .n_merges = (int32_t)(sizeof merges / sizeof merges[0]),
                           .merges = merges, .merge_lens = mlen, .bos_id = v.n - 3,
                           .eos_id = v.n - 3, .eot_id = -1, .eom_id = -1, .unk_id = -1,
                           .pad_id = -1, .nl_id = -1, .add_bos = true, .add_eos = false};
    meshlm_tokenizer *t = NULL;
    if (meshlm_tokenizer_create(&d, &t)) abort();
    return t;
}

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        if (c == 0xE0 && s[i + 1] < 0xA0) return false;
        if (c == 0xED && s[i + 1] > 0x9F) return false;
        if (c == 0xF0 && s[i + 1] < 0x90) return false;
        if (c == 0xF4 && s[i + 1] > 0x8F) return false;
        i += k;
    }
    return true;
}

/* Concatenated pieces, and the streamed text, of ids. */
static void decode(const meshlm_tokenizer *t, const int32_t *ids, int32_t n, char *flat,
                   size_t *nflat, char *stream, size_t *nstream) {
    meshlm_detok d = {0};
    size_t o = 0, s = 0, k;
    for (int32_t i = 0; i < n; i++) {
        const char *p;
        size_t pl;
        if (meshlm_tokenizer_piece(t, ids[i], &p, &pl)) abort();
        memcpy(flat + o, p, pl);
        o += pl;
        if (meshlm_detok_push(t, &d, ids[i], stream + s, pl * 3 + 12, &k)) abort();
        s += k;
    }
    if (meshlm_detok_flush(&d, stream + s, 3, &k)) abort();
    *nflat = o;
    *nstream = s + k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static meshlm_tokenizer *tok[4];
    if (!tok[0]) {
        tok[0] = make_spm();
        tok[1] = make_bpe("gpt2");
        tok[2] = make_bpe("llama-bpe");
        tok[3] = make_bpe("qwen2");
    }
    if (size < 1 || size > 4096) return 0;
    const meshlm_tokenizer *t = tok[data[0] & 3];
    bool add_special = data[0] & 4, parse_special = data[0] & 8;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int32_t cap = 2 * (int32_t)len + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int32_t n = -1;
    if (meshlm_tokenizer_encode(t, text, len, add_special, parse_special, ids, cap, &n)) abort();
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= meshlm_tokenizer_n_vocab(t)) abort();
    if (n > 1) {
        int32_t need = -1;
        if (meshlm_tokenizer_encode(t, text, len, add_special, parse_special, ids, n - 1, &need) !=
                MESHLM_ERR_RANGE || need != n)
            abort();
    }
    if (meshlm_tokenizer_encode(t, text, len, add_special, parse_special, ids, cap, &n)) abort();

    char *flat = malloc(len * 2 + 64), *stream = malloc(len * 9 + 64);
    size_t nflat, nstream;
    decode(t, ids, n, flat, &nflat, stream, &nstream);
    if (!valid_utf8((const unsigned char *)stream, nstream)) abort();
    if (valid_utf8((const unsigned char *)flat, nflat) &&
        (nflat != nstream || memcmp(flat, stream, nflat)))
        abort();
    if (!add_special) {
        if (meshlm_tokenizer_kind(t) == MESHLM_TOK_BPE) {
            if (nflat != len || memcmp(flat, text, len)) abort();
        } else if (!parse_special && len && !memmem(text, len, "\xE2\x96\x81", 3)) {
            if (nflat != len + 1 || flat[0] != ' ' || memcmp(flat + 1, text, len)) abort();
        }
    }
    free(flat);
    free(stream);
    free(ids);
    return 0;
}

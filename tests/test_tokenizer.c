/* Tokenizer tests on small vocabularies built here: merge order, byte fallback, the
 * leading space, special tokens, BOS/EOS flags, decoding and streaming decoding, the
 * pre-tokenizers' splits, and the validation of malformed vocabularies. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "meshlm.h"
#include "t.h"
#include "tokenizer/tok_internal.h" /* pretok_split: the splits are checked directly */
#include "tokenizer/tokenizer.h"

enum { MAXTOK = 600 };

typedef struct vb {
    meshlm_vocab_desc d;
    const char *tok[MAXTOK];
    size_t len[MAXTOK];
    float score[MAXTOK];
    int32_t type[MAXTOK];
    char store[MAXTOK][16];
    const char *merge[32];
    size_t mlen[32];
} vb;

static int32_t add(vb *v, const char *s, size_t n, float score, int type) {
    int32_t id = v->d.n_tokens++;
    memcpy(v->store[id], s, n);
    v->tok[id] = v->store[id];
    v->len[id] = n;
    v->score[id] = score;
    v->type[id] = type;
    return id;
}

static int32_t adds(vb *v, const char *s, float score, int type) {
    return add(v, s, strlen(s), score, type);
}

static void finish(vb *v) {
    v->d.tokens = v->tok;
    v->d.token_lens = v->len;
    v->d.scores = v->score;
    v->d.types = v->type;
    v->d.merges = v->merge;
    v->d.merge_lens = v->mlen;
}

static void addmerge(vb *v, const char *m) {
    v->merge[v->d.n_merges] = m;
    v->mlen[v->d.n_merges] = strlen(m);
    v->d.n_merges++;
}

/* SPM: <unk> <s> </s>, the 256 byte tokens (ids 3..258), then a few pieces whose scores
 * make the merge order matter. */
enum { S_SP = 259, S_A, S_B, S_C, S_SA, S_AB, S_BC, S_ABC, S_SAB, S_USER };

static void spm_vocab(vb *v) {
    memset(v, 0, sizeof *v);
    v->d.kind = MESHLM_TOK_SPM;
    adds(v, "<unk>", 0, MESHLM_TOKEN_UNKNOWN);
    adds(v, "<s>", 0, MESHLM_TOKEN_CONTROL);
    adds(v, "</s>", 0, MESHLM_TOKEN_CONTROL);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        adds(v, s, 0, MESHLM_TOKEN_BYTE);
    }
    adds(v, "\xE2\x96\x81", -10, MESHLM_TOKEN_NORMAL);
    adds(v, "a", -10, MESHLM_TOKEN_NORMAL);
    adds(v, "b", -10, MESHLM_TOKEN_NORMAL);
    adds(v, "c", -10, MESHLM_TOKEN_NORMAL);
    adds(v, "\xE2\x96\x81" "a", -1, MESHLM_TOKEN_NORMAL);
    adds(v, "ab", -2, MESHLM_TOKEN_NORMAL);
    adds(v, "bc", -0.5f, MESHLM_TOKEN_NORMAL);
    adds(v, "abc", -0.1f, MESHLM_TOKEN_NORMAL);
    adds(v, "\xE2\x96\x81" "ab", -3, MESHLM_TOKEN_NORMAL);
    adds(v, "<user>", 0, MESHLM_TOKEN_USER_DEFINED);
    v->d.bos_id = 1;
    v->d.eos_id = 2;
    v->d.unk_id = 0;
    v->d.eot_id = v->d.eom_id = v->d.pad_id = v->d.nl_id = -1;
    v->d.add_bos = true;
    v->d.add_space_prefix = true;
    finish(v);
}

static int enc(const meshlm_tokenizer *t, const char *s, bool add_special, bool parse_special,
               int32_t *ids, int cap) {
    int32_t n = -1;
    int rc = meshlm_tokenizer_encode(t, s, strlen(s), add_special, parse_special, ids, cap, &n);
    if (rc) {
        fprintf(stderr, "encode '%s': %s\n", s, meshlm_last_error());
        return -1;
    }
    return n;
}

static bool same(const int32_t *a, int na, const int32_t *b, int nb) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

#define EXPECT_IDS(t, text, as, ps, ...)                                                  \
    do {                                                                                  \
        int32_t got_[64];                                                                 \
        const int32_t want_[] = {__VA_ARGS__};                                            \
        int n_ = enc(t, text, as, ps, got_, 64);                                          \
        CHECK_MSG(same(got_, n_, want_, (int)(sizeof want_ / sizeof want_[0])),           \
                  "'%s': got %d ids, first %d", text, n_, n_ > 0 ? got_[0] : -1);        \
    } while (0)

/* Decodes ids into buf with the streaming decoder; returns the length. */
static size_t decode_all(const meshlm_tokenizer *t, const int32_t *ids, int n, char *buf,
                         size_t cap) {
    meshlm_detok d = {0};
    size_t o = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (meshlm_detok_push(t, &d, ids[i], buf + o, cap - o, &k)) return (size_t)-1;
        o += k;
    }
    if (meshlm_detok_flush(&d, buf + o, cap - o, &k)) return (size_t)-1;
    return o + k;
}

static void test_spm(void) {
    vb v;
    spm_vocab(&v);
    meshlm_tokenizer *t = NULL;
    CHECK_MSG(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK, "%s", meshlm_last_error());
    if (!t) return;
    CHECK(meshlm_tokenizer_kind(t) == MESHLM_TOK_SPM);
    /* bc (-0.5) merges first, then abc (-0.1); ▁a (-1) is stale by then. */
    EXPECT_IDS(t, "abc", false, false, S_SP, S_ABC);
    /* ▁a (-1) beats ab (-2), then ▁a+b forms ▁ab. */
    EXPECT_IDS(t, "ab", false, false, S_SAB);
    EXPECT_IDS(t, "ab ab", false, false, S_SAB, S_SAB);
    /* é has no piece: its two UTF-8 bytes fall back to byte tokens. */
    EXPECT_IDS(t, "\xC3\xA9", false, false, S_SP, 3 + 0xC3, 3 + 0xA9);
    EXPECT_IDS(t, "ab", true, false, 1, S_SAB);
    EXPECT_IDS(t, "", true, false, 1);
    int32_t none[4];
    CHECK(enc(t, "", false, false, none, 4) == 0);
    /* Control text is literal unless asked; after a special token comes a new space. */
    EXPECT_IDS(t, "<s>ab", false, true, 1, S_SAB);
    EXPECT_IDS(t, "<s>ab", false, false, S_SP, 3 + '<', 3 + 's', 3 + '>', S_AB);
    /* User-defined tokens are words of the vocabulary: always matched. */
    EXPECT_IDS(t, "ab<user>", false, false, S_SAB, S_USER);
    CHECK(meshlm_tokenizer_is_eog(t, 2));
    CHECK(!meshlm_tokenizer_is_eog(t, 1));
    CHECK(meshlm_tokenizer_nl(t) == 3 + '\n');

    const char *p;
    size_t n;
    CHECK(meshlm_tokenizer_piece(t, S_SAB, &p, &n) == 0 && n == 3 && !memcmp(p, " ab", 3));
    CHECK(meshlm_tokenizer_piece(t, 3 + 0x41, &p, &n) == 0 && n == 1 && p[0] == 'A');
    CHECK(meshlm_tokenizer_piece(t, 1, &p, &n) == 0 && n == 3 && !memcmp(p, "<s>", 3));
    CHECK(meshlm_tokenizer_piece(t, v.d.n_tokens, &p, &n) == MESHLM_ERR_RANGE);
    CHECK(meshlm_tokenizer_piece(t, -1, &p, &n) == MESHLM_ERR_RANGE);

    int32_t ids[64];
    const char *text = "abc ab\xC3\xA9\t\xE2\x82\xAC";
    int k = enc(t, text, false, false, ids, 64);
    char buf[256];
    size_t len = decode_all(t, ids, k, buf, sizeof buf);
    CHECK(len == strlen(text) + 1 && buf[0] == ' ' && !memcmp(buf + 1, text, len - 1));

    int32_t small[1];
    int32_t need = 0;
    CHECK(meshlm_tokenizer_encode(t, "abc", 3, false, false, small, 1, &need) == MESHLM_ERR_RANGE);
    CHECK(need == 2);
    meshlm_tokenizer_free(t);

    spm_vocab(&v);
    v.d.add_space_prefix = false;
    v.d.add_eos = true;
    CHECK(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK);
    EXPECT_IDS(t, "ab", true, false, 1, S_AB, 2);
    EXPECT_IDS(t, "ab", false, false, S_AB);
    meshlm_tokenizer_free(t);
}

static void test_detok_stream(void) {
    vb v;
    spm_vocab(&v);
    meshlm_tokenizer *t = NULL;
    CHECK(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK);
    if (!t) return;
    meshlm_detok d = {0};
    char out[16];
    size_t n = 99;
    /* The euro sign, E2 82 AC, arrives one byte token at a time. */
    CHECK(meshlm_detok_push(t, &d, 3 + 0xE2, out, sizeof out, &n) == 0 && n == 0);
    CHECK(meshlm_detok_push(t, &d, 3 + 0x82, out, sizeof out, &n) == 0 && n == 0);
    CHECK(meshlm_detok_push(t, &d, 3 + 0xAC, out, sizeof out, &n) == 0 && n == 3 &&
          !memcmp(out, "\xE2\x82\xAC", 3));
    CHECK(meshlm_detok_flush(&d, out, sizeof out, &n) == 0 && n == 0);
    /* A character cut short by the next token becomes U+FFFD, and the token is kept. */
    CHECK(meshlm_detok_push(t, &d, 3 + 0xE2, out, sizeof out, &n) == 0 && n == 0);
    CHECK(meshlm_detok_push(t, &d, S_A, out, sizeof out, &n) == 0 && n == 4 &&
          !memcmp(out, "\xEF\xBF\xBD" "a", 4));
    CHECK(meshlm_detok_push(t, &d, 3 + 0xFF, out, sizeof out, &n) == 0 && n == 3);
    CHECK(meshlm_detok_push(t, &d, 3 + 0xC3, out, sizeof out, &n) == 0 && n == 0);
    CHECK(meshlm_detok_flush(&d, out, sizeof out, &n) == 0 && n == 3 &&
          !memcmp(out, "\xEF\xBF\xBD", 3));
    /* Too small a buffer reports the size needed and leaves the state alone. */
    CHECK(meshlm_detok_push(t, &d, S_SAB, out, 2, &n) == MESHLM_ERR_RANGE && n == 3);
    CHECK(d.n_pending == 0);
    CHECK(meshlm_detok_push(t, &d, 99999, out, sizeof out, &n) == MESHLM_ERR_RANGE);
    meshlm_tokenizer_free(t);
}

/* BPE: the 256 alphabet characters as ids 0..255 (id = byte), then merged pieces. */
enum { B_GT = 256, B_HE, B_GTHE, B_TH, B_EOT, B_IMEND, B_TOOL, B_THE, B_12 };

static void bpe_vocab(vb *v, const char *pre) {
    memset(v, 0, sizeof *v);
    v->d.kind = MESHLM_TOK_BPE;
    v->d.pre = pre;
    for (int b = 0; b < 256; b++) {
        char s[4];
        uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
                          ? (uint32_t)b : 0;
        if (!cp) {
            int k = 0;
            for (int x = 0; x < b; x++)
                if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
            cp = 256u + (uint32_t)k;
        }
        size_t n = cp < 0x80 ? 1 : 2;
        if (n == 1) s[0] = (char)cp;
        else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        add(v, s, n, 0, MESHLM_TOKEN_NORMAL);
    }
    adds(v, "\xC4\xA0t", 0, MESHLM_TOKEN_NORMAL);
    adds(v, "he", 0, MESHLM_TOKEN_NORMAL);
    adds(v, "\xC4\xA0the", 0, MESHLM_TOKEN_NORMAL);
    adds(v, "th", 0, MESHLM_TOKEN_NORMAL);
    adds(v, "<|endoftext|>", 0, MESHLM_TOKEN_CONTROL);
    adds(v, "<|im_end|>", 0, MESHLM_TOKEN_CONTROL);
    adds(v, "<tool>", 0, MESHLM_TOKEN_USER_DEFINED);
    adds(v, "the", 0, MESHLM_TOKEN_NORMAL);
    adds(v, "12", 0, MESHLM_TOKEN_NORMAL);
    addmerge(v, "h e");
    addmerge(v, "\xC4\xA0 t");
    addmerge(v, "\xC4\xA0t he");
    addmerge(v, "t h");
    addmerge(v, "1 2");
    v->d.bos_id = B_EOT;
    v->d.eos_id = B_EOT;
    v->d.unk_id = v->d.eot_id = v->d.eom_id = v->d.pad_id = v->d.nl_id = -1;
    finish(v);
}

static void test_bpe(void) {
    vb v;
    bpe_vocab(&v, "gpt2");
    meshlm_tokenizer *t = NULL;
    CHECK_MSG(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK, "%s", meshlm_last_error());
    if (!t) return;
    CHECK(!strcmp(meshlm_tokenizer_pre(t), "gpt2"));
    /* "h e" (rank 0) goes before "t h" (rank 3), so "the" is t + he, not th + e. */
    EXPECT_IDS(t, "the", false, false, 't', B_HE);
    EXPECT_IDS(t, " the", false, false, B_GTHE);
    EXPECT_IDS(t, "a the", false, false, 'a', B_GTHE);
    EXPECT_IDS(t, "12", false, false, B_12);
    EXPECT_IDS(t, "<|endoftext|> the", false, true, B_EOT, B_GTHE);
    EXPECT_IDS(t, "x<tool>", false, false, 'x', B_TOOL);
    EXPECT_IDS(t, "x", true, false, 'x');
    EXPECT_IDS(t, "\n", false, false, '\n');
    CHECK(meshlm_tokenizer_is_eog(t, B_EOT) && meshlm_tokenizer_is_eog(t, B_IMEND));
    CHECK(!meshlm_tokenizer_is_eog(t, B_TOOL));
    CHECK(meshlm_tokenizer_find(t, "<|im_end|>", 10) == B_IMEND);

    /* Every byte string, valid UTF-8 or not, decodes back to itself. */
    const char text[] = "caf\xC3\xA9 \xFF\xFE a\xC3 \xE2\x82 the<|im_end|>\x00z \t\n  x";
    int32_t ids[128];
    int32_t n = 0;
    CHECK(meshlm_tokenizer_encode(t, text, sizeof text - 1, false, true, ids, 128, &n) == 0);
    const char *p;
    size_t k, o = 0;
    char buf[256];
    for (int i = 0; i < n; i++) {
        meshlm_tokenizer_piece(t, ids[i], &p, &k);
        memcpy(buf + o, p, k);
        o += k;
    }
    CHECK(o == sizeof text - 1 && !memcmp(buf, text, o));
    meshlm_tokenizer_free(t);

    /* Llama 3 takes a word that is a token whole; Qwen 2 splits digits one by one. */
    bpe_vocab(&v, "llama-bpe");
    CHECK(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK);
    EXPECT_IDS(t, "the", false, false, B_THE);
    EXPECT_IDS(t, "12", false, false, B_12);
    meshlm_tokenizer_free(t);
    bpe_vocab(&v, "qwen2");
    CHECK(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK);
    EXPECT_IDS(t, "12", false, false, '1', '2');
    EXPECT_IDS(t, "the", false, false, 't', B_HE);
    meshlm_tokenizer_free(t);
}

typedef struct joined {
    char s[512];
    size_t n;
} joined;

static int join_piece(void *ctx, const char *w, size_t n) {
    joined *j = ctx;
    if (j->n + n + 2 > sizeof j->s) return -1;
    if (j->n) j->s[j->n++] = '|';
    memcpy(j->s + j->n, w, n);
    j->n += n;
    j->s[j->n] = '\0';
    return 0;
}

/* The pre-tokenizer's pieces of text, joined by '|'. */
#define EXPECT_SPLIT(t, text, want)                                                       \
    do {                                                                                  \
        joined j_ = {{0}, 0};                                                             \
        int rc_ = pretok_split(t, text, strlen(text), join_piece, &j_);                  \
        CHECK_MSG(rc_ == 0 && !strcmp(j_.s, want), "'%s': got '%s', want '%s'", text,     \
                  j_.s, want);                                                            \
    } while (0)

static meshlm_tokenizer *bpe_with(vb *v, const char *pre) {
    meshlm_tokenizer *t = NULL;
    bpe_vocab(v, pre);
    CHECK_MSG(meshlm_tokenizer_create(&v->d, &t) == MESHLM_OK, "%s: %s", pre, meshlm_last_error());
    return t;
}

/* Expected splits follow the tokenizer.json regexes under the Hugging Face tokenizers'
 * Split (matches and the text between them both kept, each piece matched alone). */
static void test_pretok_tekken(void) {
    vb v;
    meshlm_tokenizer *t = bpe_with(&v, "tekken");
    if (!t) return;
    EXPECT_SPLIT(t, "Hello World", "Hello| World");
    /* A capitalised run, then a lower-case run: words split at case changes. */
    EXPECT_SPLIT(t, "HelloWorld CamelCase", "Hello|World| Camel|Case");
    EXPECT_SPLIT(t, "HTTPServer isOK", "HTTPServer| is|OK");
    /* É is upper case, é lower case: the all-capital word stays whole (llama.cpp's
     * ASCII-only case classes give É|COLE here, and split the combining mark below off). */
    EXPECT_SPLIT(t, "\xC3\x89" "COLE \xC3\xA9" "cole", "\xC3\x89" "COLE| \xC3\xA9" "cole");
    /* A combining acute (U+0301) belongs to the word it follows; case changes between
     * non-ASCII letters split as between ASCII ones. */
    EXPECT_SPLIT(t, "Cafe\xCC\x81 ok", "Cafe\xCC\x81| ok");
    EXPECT_SPLIT(t, "\xD0\x9C\xD0\xB8\xD1\x80\xD0\xA1\xD0\xB8\xD1\x82\xD0\xB8",
                 "\xD0\x9C\xD0\xB8\xD1\x80|\xD0\xA1\xD0\xB8\xD1\x82\xD0\xB8");
    EXPECT_SPLIT(t, "x=12345;y", "x|=|1|2|3|4|5|;y");
    EXPECT_SPLIT(t, "path/to/file\n\nnext", "path|/to|/file|\n\n|next");
    EXPECT_SPLIT(t, "end.\n\nNext", "end|.\n\n|Next");
    EXPECT_SPLIT(t, "don't", "don|'t");
    EXPECT_SPLIT(t, " 2024-01-01", " |2|0|2|4|-|0|1|-|0|1");
    EXPECT_SPLIT(t, "a   ", "a|   ");
    EXPECT_SPLIT(t, "a\t\tb \n c\r\n", "a|\t|\tb| \n| c|\r\n");
    /* Tekken takes a word that is a token whole, as Llama 3 does. */
    EXPECT_IDS(t, "the", false, false, B_THE);
    EXPECT_IDS(t, "12", false, false, '1', '2');
    meshlm_tokenizer_free(t);
}

/* o200k: Tekken's case-aware words with contractions kept on, digits in threes. */
static void test_pretok_gpt4o(void) {
    vb v;
    meshlm_tokenizer *t = bpe_with(&v, "gpt-4o");
    if (!t) return;
    EXPECT_SPLIT(t, "Hello World", "Hello| World");
    EXPECT_SPLIT(t, "HelloWorld CamelCase", "Hello|World| Camel|Case");
    EXPECT_SPLIT(t, "don't DON'T You'Re", "don't| DON'T| You'Re");
    EXPECT_SPLIT(t, "\xC3\x89" "COLE \xC3\xA9" "cole", "\xC3\x89" "COLE| \xC3\xA9" "cole");
    EXPECT_SPLIT(t, "x=12345;y", "x|=|123|45|;y");
    EXPECT_SPLIT(t, " 2024-01-01", " |202|4|-|01|-|01");
    EXPECT_SPLIT(t, "path/to/file\n\nnext", "path|/to|/file|\n\n|next");
    EXPECT_SPLIT(t, "end.\n\nNext", "end|.\n\n|Next");
    EXPECT_SPLIT(t, "a   ", "a|   ");
    /* Whole words are merged like any other (no whole-word lookup, as llama.cpp runs it). */
    EXPECT_IDS(t, "the", false, false, 't', B_HE);
    meshlm_tokenizer_free(t);
}

/* Two stages: every digit alone first, then GPT-2's split within each piece. */
static void test_pretok_smollm(void) {
    vb v;
    meshlm_tokenizer *t = bpe_with(&v, "smollm");
    if (!t) return;
    EXPECT_SPLIT(t, "Hello World", "Hello| World");
    EXPECT_SPLIT(t, "HelloWorld CamelCase", "HelloWorld| CamelCase");
    EXPECT_SPLIT(t, "\xC3\x89" "COLE \xC3\xA9" "cole", "\xC3\x89" "COLE| \xC3\xA9" "cole");
    EXPECT_SPLIT(t, "x=12345;y", "x|=|1|2|3|4|5|;|y");
    EXPECT_SPLIT(t, "path/to/file\n\nnext", "path|/|to|/|file|\n|\n|next");
    EXPECT_SPLIT(t, "don't", "don|'t");
    EXPECT_SPLIT(t, " 2024-01-01", " |2|0|2|4|-|0|1|-|0|1");
    EXPECT_SPLIT(t, "a   ", "a|   ");
    EXPECT_SPLIT(t, "a\t\tb \n c\r\n", "a|\t|\t|b| \n| c|\r\n");
    /* The second stage sees "a  " alone: its spaces end the piece, so none is left to
     * a following word, and the space before a digit stays apart from it. */
    EXPECT_SPLIT(t, "a  1", "a|  |1");
    EXPECT_SPLIT(t, "x 42", "x| |4|2");
    EXPECT_IDS(t, "12", false, false, '1', '2');
    EXPECT_IDS(t, "the", false, false, 't', B_HE);
    meshlm_tokenizer_free(t);

    /* The same two stages under other families' names. */
    const char *same_as_smollm[] = {"starcoder", "refact", "command-r", "codeshell",
                                    "exaone", "minerva-7b", "mellum2"};
    for (size_t i = 0; i < sizeof same_as_smollm / sizeof same_as_smollm[0]; i++) {
        t = bpe_with(&v, same_as_smollm[i]);
        if (!t) continue;
        EXPECT_SPLIT(t, "x 42", "x| |4|2");
        meshlm_tokenizer_free(t);
    }
}

/* Names that reuse a regex; only Llama 3's own names take whole words. */
static void test_pretok_aliases(void) {
    vb v;
    meshlm_tokenizer *t;
    const char *llama3_re[] = {"dbrx", "smaug-bpe"};
    for (int i = 0; i < 2; i++) {
        if (!(t = bpe_with(&v, llama3_re[i]))) continue;
        EXPECT_SPLIT(t, "x 12345 don'T", "x| |123|45| don|'T");
        EXPECT_IDS(t, "the", false, false, 't', B_HE);
        meshlm_tokenizer_free(t);
    }
    if ((t = bpe_with(&v, "olmo"))) {
        EXPECT_SPLIT(t, "x 12345 don'T", "x| 12345| don|'|T");
        meshlm_tokenizer_free(t);
    }
    if ((t = bpe_with(&v, "stablelm2"))) {
        EXPECT_SPLIT(t, "x 123 don'T", "x| |1|2|3| don|'T");
        meshlm_tokenizer_free(t);
    }
}

static void expect_fail(vb *v, int status, const char *needle) {
    meshlm_tokenizer *t = NULL;
    int rc = meshlm_tokenizer_create(&v->d, &t);
    CHECK_MSG(rc == status && !t && strstr(meshlm_last_error(), needle),
              "rc %d, message '%s', wanted '%s'", rc, meshlm_last_error(), needle);
    meshlm_tokenizer_free(t);
}

static void test_validation(void) {
    vb v;
    spm_vocab(&v);
    memcpy(v.store[3 + 0x41], "<0xZ1>", 6);
    expect_fail(&v, MESHLM_ERR_FORMAT, "tokenizer.ggml.tokens[68]");
    spm_vocab(&v);
    v.len[3 + 7] = 7;
    memcpy(v.store[3 + 7], "<0x070>", 7);
    expect_fail(&v, MESHLM_ERR_FORMAT, "<0xNN>");
    spm_vocab(&v);
    v.d.bos_id = v.d.n_tokens;
    expect_fail(&v, MESHLM_ERR_FORMAT, "bos_token_id");
    spm_vocab(&v);
    v.type[5] = 9;
    expect_fail(&v, MESHLM_ERR_FORMAT, "token_type[5] = 9");
    bpe_vocab(&v, "gpt2");
    addmerge(&v, "\xC4\xA0the zz");
    expect_fail(&v, MESHLM_ERR_FORMAT, "merges[5]");
    bpe_vocab(&v, "gpt2");
    addmerge(&v, "abc");
    expect_fail(&v, MESHLM_ERR_FORMAT, "merges[5]");
    bpe_vocab(&v, "klingon-bpe");
    expect_fail(&v, MESHLM_ERR_UNSUPPORTED, "klingon-bpe");
    /* The list of supported names comes from the table, first to last. */
    expect_fail(&v, MESHLM_ERR_UNSUPPORTED, "(supported: llama-bpe, ");
    expect_fail(&v, MESHLM_ERR_UNSUPPORTED, "tekken");
    expect_fail(&v, MESHLM_ERR_UNSUPPORTED, ", mellum2)");
    bpe_vocab(&v, "gpt2");
    v.d.n_tokens = 0;
    expect_fail(&v, MESHLM_ERR_FORMAT, "empty");
}

/* A 100 KB text, and the worst cases for the merge loop and the regexes: one 100 KB
 * word, a 100 KB run of spaces, and one of capitals (Tekken's and o200k's case classes
 * backtrack). */
static void test_speed(void) {
    static char big[100 * 1024 + 1];
    static int32_t ids[110 * 1024];
    const char *unit = "The quick brown fox, 1234 jumps over \xC3\xA9t\xC3\xA9 the lazy dog!\n  ";
    size_t ul = strlen(unit);
    for (size_t i = 0; i < sizeof big - 1; i++) big[i] = unit[i % ul];
    vb v;
    const char fills[4] = {0, 'a', ' ', 'A'};
    const char *kinds[5] = {NULL, "llama-bpe", "tekken", "gpt-4o", "smollm"}; /* NULL: SPM */
    for (int kind = 0; kind < 5; kind++) {
        if (!kinds[kind]) spm_vocab(&v);
        else bpe_vocab(&v, kinds[kind]);
        const char *name = kinds[kind] ? kinds[kind] : "spm";
        meshlm_tokenizer *t = NULL;
        CHECK(meshlm_tokenizer_create(&v.d, &t) == MESHLM_OK);
        if (!t) continue;
        for (int f = 0; f < 4; f++) {
            if (fills[f]) memset(big, fills[f], sizeof big - 1);
            clock_t c0 = clock();
            int32_t n = 0;
            int rc = meshlm_tokenizer_encode(t, big, sizeof big - 1, false, false, ids,
                                             (int32_t)(sizeof ids / sizeof ids[0]), &n);
            double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
            CHECK_MSG(rc == 0 && n > 0, "%s text %d: %s", name, f, meshlm_last_error());
            CHECK_MSG(s < 2.0, "%s text %d: %.3f s", name, f, s);
            printf("speed: %s, text %d: 100 KB -> %d ids in %.1f ms\n", name, f, (int)n, s * 1e3);
        }
        for (size_t i = 0; i < sizeof big - 1; i++) big[i] = unit[i % ul];
        meshlm_tokenizer_free(t);
    }
}

int main(void) {
    test_spm();
    test_detok_stream();
    test_bpe();
    test_pretok_tekken();
    test_pretok_gpt4o();
    test_pretok_smollm();
    test_pretok_aliases();
    test_validation();
    test_speed();
    return t_done();
}

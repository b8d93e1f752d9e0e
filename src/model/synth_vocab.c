/* The synthetic byte-level BPE vocabulary of synthetic models: 256 byte tokens in
 * GPT-2's byte-level alphabet, merges learned from a small built-in English text, then
 * merges made by a systematic pairing until any n_vocab is reached, then the arch's
 * control tokens. Every merge joins two existing tokens into a new one, so the vocab is
 * a valid BPE vocab for meshlm's and llama.cpp's tokenizers alike. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/synth.h"

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3 };

/* Learning material only: the merges it yields make common English words and
 * fragments single tokens, so tokenized text looks like a real model's. */
static const char training_text[] =
    "The engine reads a model file, maps its weights into memory and checks every field "
    "before it trusts them. Then it places the model on a mesh of devices: each device is "
    "a thread that owns a part of every weight and the buffers it needs. A token enters "
    "as an embedding, passes through the layers one after another, and leaves as a list "
    "of scores over the vocabulary. In every layer the attention looks back over the "
    "tokens that came before, and the feed forward network mixes what it found. When "
    "many users share the machine, their requests are batched so that each weight is read "
    "once for all of them. The fastest path and the simplest path must give the same "
    "answer, and the tests check that they do. This is the kind of text that people "
    "write and read every day: short words, long words, numbers like 1, 20 and 300, "
    "questions? answers! lists, and sentences that end with a period. There is nothing "
    "special about it, which is the point. It should be common enough that the merges "
    "learned from it are the merges that a real tokenizer would learn first: the, and, "
    "of, to, in, that, is, for, it, with, as, was, on, be, at, by, this, have, from, "
    "they, which, you, one, were, all, we, when, there, can, an, their, what, would, "
    "about, into, more, other, then, them, these, some, her, him, time, has, only, new.";

/* Bytes that GPT-2's alphabet keeps as themselves; the others map to U+0100 and up. */
static bool byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static int byte_codepoint(int b) {
    if (byte_is_printable(b)) return b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!byte_is_printable(c)) k++;
    return 256 + k;
}

static int utf8_encode(int cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

typedef struct special_token {
    const char *text;
    char role; /* 'b' bos, 'e' eos, 't' eot, 'm' eom, 'p' pad, 0 none */
} special_token;

static const special_token llama_specials[] = {
    {"<|begin_of_text|>", 'b'}, {"<|end_of_text|>", 'e'}, {"<|start_header_id|>", 0},
    {"<|end_header_id|>", 0},   {"<|eom_id|>", 'm'},      {"<|eot_id|>", 't'},
    {"<|python_tag|>", 0},      {"<|finetune_right_pad_id|>", 'p'},
};
static const special_token qwen_specials[] = {
    {"<|endoftext|>", 'e'}, {"<|im_start|>", 0}, {"<|im_end|>", 't'},
};
/* gpt-oss's Harmony tokens in their real order (o200k_harmony's reserved ones left out), with
 * its files' roles: <|return|> ends a reply, <|endoftext|> pads. No end-of-turn id: its files
 * state none, and <|end|> closes each message of a reply (llama.cpp takes it out of the
 * end-of-generation set when <|return|> and <|call|> are there), so it must not stop one. */
static const special_token gpt_oss_specials[] = {
    {"<|startoftext|>", 'b'}, {"<|endoftext|>", 'p'}, {"<|return|>", 'e'}, {"<|constrain|>", 0},
    {"<|channel|>", 0},       {"<|start|>", 0},       {"<|end|>", 0},      {"<|message|>", 0},
    {"<|call|>", 0},
};

static const char llama_template[] =
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
static const char qwen_template[] =
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt "
    "%}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/* Harmony's message framing, with an assistant's past replies in the final channel. */
static const char gpt_oss_template[] =
    "{%- for message in messages %}{{- '<|start|>' + message['role'] }}{%- if message['role'] == "
    "'assistant' %}{{- '<|channel|>final' }}{%- endif %}{{- '<|message|>' + message['content'] + "
    "'<|end|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}";

/* The gemma families' and phi3's synthetic vocabulary is llama's (their own is SentencePiece, which
 * synth does not make); qwen3moe and qwen2moe take qwen's, like qwen2 and qwen3; gpt-oss has its
 * own control tokens. */
static bool is_llama(const char *arch) {
    return arch && (!strcmp(arch, "llama") || !strcmp(arch, "gemma2") || !strcmp(arch, "gemma3") ||
                    !strcmp(arch, "phi3") || !strcmp(arch, "smollm3"));
}

static bool is_gpt_oss(const char *arch) { return arch && !strcmp(arch, "gpt-oss"); }

static void specials_of(const char *arch, const special_token **sp, int *n) {
    if (is_llama(arch)) {
        *sp = llama_specials;
        *n = (int)(sizeof llama_specials / sizeof llama_specials[0]);
    } else if (is_gpt_oss(arch)) {
        *sp = gpt_oss_specials;
        *n = (int)(sizeof gpt_oss_specials / sizeof gpt_oss_specials[0]);
    } else {
        *sp = qwen_specials;
        *n = (int)(sizeof qwen_specials / sizeof qwen_specials[0]);
    }
}

int32_t meshlm_synth_vocab_min(const char *arch) {
    const special_token *sp;
    int n;
    specials_of(arch, &sp, &n);
    return 256 + 1 + n; /* at least one merge, so the merge list is never empty */
}

/* Strings live in one growing buffer and are referred to by offset until the end,
 * when the pointers are made; a hash set over token texts keeps them unique. */
typedef struct builder {
    char *buf;
    size_t len, cap;
    size_t *tok_off;
    uint32_t *tok_len;
    int32_t n_tok, max_tok;
    size_t *merge_off;
    int32_t n_merge;
    int32_t *slots; /* token id + 1; 0 = empty */
    uint32_t mask;
    int32_t *pool;  /* tokens the systematic pairing draws from, in order */
    int32_t n_pool;
} builder;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int append(builder *b, const char *s, size_t n, size_t *off) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) return meshlm_fail(MESHLM_ERR_NOMEM, "synthetic vocab: out of memory");
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->buf[b->len + n] = '\0';
    *off = b->len;
    b->len += n + 1;
    return MESHLM_OK;
}

static int32_t find_token(const builder *b, const char *s, size_t n) {
    for (uint32_t i = hash_bytes(s, n) & b->mask;; i = (i + 1) & b->mask) {
        int32_t id = b->slots[i] - 1;
        if (id < 0) return -1;
        if (b->tok_len[id] == n && memcmp(b->buf + b->tok_off[id], s, n) == 0) return id;
    }
}

/* Adds a token that must not exist yet; *id gets its id. */
static int add_token(builder *b, const char *s, size_t n, int32_t *id) {
    if (b->n_tok >= b->max_tok)
        return meshlm_fail(MESHLM_ERR_INTERNAL, "synthetic vocab: more tokens than planned");
    uint32_t i = hash_bytes(s, n) & b->mask;
    while (b->slots[i]) i = (i + 1) & b->mask;
    size_t off = 0;
    int rc = append(b, s, n, &off);
    if (rc) return rc;
    *id = b->n_tok++;
    b->tok_off[*id] = off;
    b->tok_len[*id] = (uint32_t)n;
    b->slots[i] = *id + 1;
    return MESHLM_OK;
}

static const char *tok_text(const builder *b, int32_t id) { return b->buf + b->tok_off[id]; }

/* Records "left right" and adds their concatenation as a new token. */
static int add_merge(builder *b, int32_t left, int32_t right, const char *cat, size_t n,
                     int32_t *id) {
    size_t ln = b->tok_len[left], rn = b->tok_len[right];
    char tmp[512];
    if (ln + rn + 1 > sizeof tmp)
        return meshlm_fail(MESHLM_ERR_INTERNAL, "synthetic vocab: merge too long");
    memcpy(tmp, tok_text(b, left), ln);
    tmp[ln] = ' ';
    memcpy(tmp + ln + 1, tok_text(b, right), rn);
    int rc = append(b, tmp, ln + rn + 1, &b->merge_off[b->n_merge]);
    if (rc) return rc;
    b->n_merge++;
    rc = add_token(b, cat, n, id);
    if (rc) return rc;
    b->pool[b->n_pool++] = *id;
    return MESHLM_OK;
}

static int concat(const builder *b, int32_t left, int32_t right, char *out, size_t cap,
                  size_t *n) {
    size_t ln = b->tok_len[left], rn = b->tok_len[right];
    if (ln + rn > cap) return meshlm_fail(MESHLM_ERR_INTERNAL, "synthetic vocab: token too long");
    memcpy(out, tok_text(b, left), ln);
    memcpy(out + ln, tok_text(b, right), rn);
    *n = ln + rn;
    return MESHLM_OK;
}

static int add_byte_tokens(builder *b, int32_t byte_id[256]) {
    /* GPT-2's order: the printable bytes first, then the remapped ones. */
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < 256; c++) {
            if (byte_is_printable(c) != (pass == 0)) continue;
            char s[2];
            int n = utf8_encode(byte_codepoint(c), s);
            int rc = add_token(b, s, (size_t)n, &byte_id[c]);
            if (rc) return rc;
        }
    }
    return MESHLM_OK;
}

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* Splits the training text like a GPT-2 pre-tokenizer (an optional space, then a run of
 * letters, of digits, or one other character) into byte-token sequences; chunk k is
 * seq[start[k] .. start[k+1]). */
static int chunk_text(const int32_t byte_id[256], int32_t **seq_out, int32_t **start_out,
                      int32_t *n_chunks) {
    size_t n = sizeof training_text - 1;
    int32_t *seq = malloc(n * sizeof *seq), *start = malloc((n + 1) * sizeof *start);
    if (!seq || !start) {
        free(seq);
        free(start);
        return meshlm_fail(MESHLM_ERR_NOMEM, "synthetic vocab: out of memory");
    }
    int32_t ns = 0, nc = 0;
    for (size_t i = 0; i < n;) {
        start[nc++] = ns;
        size_t j = i;
        if (training_text[j] == ' ' && j + 1 < n) j++;
        int c = (unsigned char)training_text[j];
        size_t end = j + 1;
        if (is_alpha(c))
            while (end < n && is_alpha((unsigned char)training_text[end])) end++;
        else if (is_digit(c))
            while (end < n && is_digit((unsigned char)training_text[end])) end++;
        for (size_t k = i; k < end; k++) seq[ns++] = byte_id[(unsigned char)training_text[k]];
        i = end;
    }
    start[nc] = ns;
    *seq_out = seq;
    *start_out = start;
    *n_chunks = nc;
    return MESHLM_OK;
}

/* The most frequent adjacent pair inside chunks (ties: the smallest ids); count 0 if none. */
static void best_pair(const int32_t *seq, const int32_t *start, int32_t nc, int32_t *bl,
                      int32_t *br, int32_t *best) {
    enum { SLOTS = 1 << 13 };
    static _Thread_local uint64_t keys[SLOTS];
    static _Thread_local int32_t counts[SLOTS];
    memset(counts, 0, sizeof counts);
    *best = 0;
    uint64_t best_key = 0;
    for (int32_t c = 0; c < nc; c++) {
        for (int32_t i = start[c]; i + 1 < start[c + 1]; i++) {
            uint64_t key = ((uint64_t)(uint32_t)seq[i] << 32) | (uint32_t)seq[i + 1];
            uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 51);
            while (counts[h] && keys[h] != key) h = (h + 1) & (SLOTS - 1);
            keys[h] = key;
            int32_t k = ++counts[h];
            if (k > *best || (k == *best && key < best_key)) {
                *best = k;
                best_key = key;
            }
        }
    }
    *bl = (int32_t)(best_key >> 32);
    *br = (int32_t)(best_key & 0xffffffffu);
}

/* Replaces every (l, r) inside chunks by id, compacting seq in place. */
static void apply_merge(int32_t *seq, int32_t *start, int32_t nc, int32_t l, int32_t r,
                        int32_t id) {
    int32_t w = 0;
    for (int32_t c = 0; c < nc; c++) {
        int32_t s = start[c], e = start[c + 1];
        start[c] = w;
        for (int32_t i = s; i < e; i++) {
            if (i + 1 < e && seq[i] == l && seq[i + 1] == r) {
                seq[w++] = id;
                i++;
            } else {
                seq[w++] = seq[i];
            }
        }
    }
    start[nc] = w;
}

/* Classic BPE training on the built-in text, up to budget merges, while some pair
 * still occurs twice. */
static int learn_merges(builder *b, const int32_t byte_id[256], int32_t budget) {
    int32_t *seq = NULL, *start = NULL, nc = 0;
    int rc = chunk_text(byte_id, &seq, &start, &nc);
    if (rc) return rc;
    while (b->n_merge < budget) {
        int32_t l, r, count;
        best_pair(seq, start, nc, &l, &r, &count);
        if (count < 2) break;
        char cat[512];
        size_t n = 0;
        int32_t id;
        rc = concat(b, l, r, cat, sizeof cat, &n);
        if (rc) break;
        id = find_token(b, cat, n);
        if (id < 0 && (rc = add_merge(b, l, r, cat, n, &id)) != MESHLM_OK) break;
        apply_merge(seq, start, nc, l, r, id);
    }
    free(seq);
    free(start);
    return rc;
}

static bool starts_with_space(const builder *b, int32_t id) {
    /* U+0120, the byte-level alphabet's space */
    return b->tok_len[id] >= 2 && memcmp(tok_text(b, id), "\xC4\xA0", 2) == 0;
}

/* Pairs pool tokens shell by shell ((i, m) and (m, i) for i <= m, m = 0, 1, ...), each
 * new token joining the pool, until budget merges exist. A right part that starts with
 * a space could never meet its left part after pre-tokenization, so it is skipped. */
static int fill_merges(builder *b, int32_t budget) {
    for (int32_t m = 0; b->n_merge < budget; m++) {
        if (m >= b->n_pool)
            return meshlm_fail(MESHLM_ERR_INTERNAL, "synthetic vocab: pairing ran dry");
        for (int32_t i = 0; i <= m && b->n_merge < budget; i++) {
            for (int side = 0; side < 2 && b->n_merge < budget; side++) {
                if (side == 1 && i == m) break;
                int32_t l = side ? b->pool[m] : b->pool[i];
                int32_t r = side ? b->pool[i] : b->pool[m];
                if (starts_with_space(b, r)) continue;
                char cat[512];
                size_t n = 0;
                int32_t id;
                int rc = concat(b, l, r, cat, sizeof cat, &n);
                if (rc) return rc;
                if (find_token(b, cat, n) >= 0) continue;
                rc = add_merge(b, l, r, cat, n, &id);
                if (rc) return rc;
            }
        }
    }
    return MESHLM_OK;
}

/* The pool starts with the bytes of English text, most frequent letters first. */
static void seed_pool(builder *b, const int32_t byte_id[256]) {
    static const char seeds[] = "etaoinshrdlucmfwypvbgkjqxz ETAOINSHRDLUCMFWYPVBGKJQXZ"
                                "0123456789.,'-!?:;\"()";
    for (const char *p = seeds; *p; p++) b->pool[b->n_pool++] = byte_id[(unsigned char)*p];
}

static int builder_init(builder *b, int32_t n_vocab) {
    memset(b, 0, sizeof *b);
    uint32_t slots = 1024;
    while (slots < 2u * (uint32_t)n_vocab) slots *= 2;
    b->mask = slots - 1;
    b->max_tok = n_vocab;
    b->cap = 16 * (size_t)n_vocab + 4096;
    b->buf = malloc(b->cap);
    b->tok_off = malloc((size_t)n_vocab * sizeof *b->tok_off);
    b->tok_len = malloc((size_t)n_vocab * sizeof *b->tok_len);
    b->merge_off = malloc((size_t)n_vocab * sizeof *b->merge_off);
    b->pool = malloc(((size_t)n_vocab + 128) * sizeof *b->pool);
    b->slots = calloc(slots, sizeof *b->slots);
    if (!b->buf || !b->tok_off || !b->tok_len || !b->merge_off || !b->pool || !b->slots)
        return meshlm_fail(MESHLM_ERR_NOMEM, "synthetic vocab: out of memory");
    return MESHLM_OK;
}

static void builder_free(builder *b) {
    free(b->buf);
    free(b->tok_off);
    free(b->tok_len);
    free(b->merge_off);
    free(b->pool);
    free(b->slots);
}

static int add_specials(builder *b, const char *arch, meshlm_synth_vocab *v) {
    const special_token *sp;
    int n;
    specials_of(arch, &sp, &n);
    v->bos_id = v->eos_id = v->eot_id = v->eom_id = v->pad_id = -1;
    for (int i = 0; i < n; i++) {
        int32_t id;
        if (find_token(b, sp[i].text, strlen(sp[i].text)) >= 0)
            return meshlm_fail(MESHLM_ERR_INTERNAL, "synthetic vocab: '%s' twice", sp[i].text);
        int rc = add_token(b, sp[i].text, strlen(sp[i].text), &id);
        if (rc) return rc;
        switch (sp[i].role) {
        case 'b': v->bos_id = id; break;
        case 'e': v->eos_id = id; break;
        case 't': v->eot_id = id; break;
        case 'm': v->eom_id = id; break;
        case 'p': v->pad_id = id; break;
        default: break;
        }
    }
    if (!is_llama(arch) && !is_gpt_oss(arch)) {
        v->bos_id = v->eos_id; /* Qwen's convention: <|endoftext|>, never added */
        v->pad_id = v->eos_id;
    }
    return MESHLM_OK;
}

/* Hands the builder's strings to v: pointers made from offsets, one allocation for the
 * pointer arrays. */
static int finish(builder *b, int n_special, meshlm_synth_vocab *v) {
    size_t nt = (size_t)b->n_tok, nm = (size_t)b->n_merge;
    void *mem = malloc(nt * sizeof(char *) + nm * sizeof(char *) + nt * sizeof(int32_t));
    if (!mem) return meshlm_fail(MESHLM_ERR_NOMEM, "synthetic vocab: out of memory");
    v->tokens = mem;
    v->merges = (const char **)mem + nt;
    v->types = (int32_t *)((const char **)mem + nt + nm);
    for (size_t i = 0; i < nt; i++) {
        v->tokens[i] = b->buf + b->tok_off[i];
        v->types[i] = i + (size_t)n_special >= nt ? TOKEN_CONTROL : TOKEN_NORMAL;
    }
    for (size_t i = 0; i < nm; i++) v->merges[i] = b->buf + b->merge_off[i];
    v->n_tokens = b->n_tok;
    v->n_merges = b->n_merge;
    v->arena = b->buf;
    b->buf = NULL;
    return MESHLM_OK;
}

int meshlm_synth_vocab_build(const char *arch, int32_t n_vocab, meshlm_synth_vocab *out) {
    memset(out, 0, sizeof *out);
    if (!meshlm_synth_arch_known(arch))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synthetic vocab: unknown arch '%s' (%s)", arch ? arch : "(null)",
                           meshlm_synth_arch_names());
    int32_t min = meshlm_synth_vocab_min(arch);
    if (n_vocab < min)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synthetic vocab: n_vocab %d is too small for %s: it needs at "
                           "least %d (256 byte tokens, 1 merge, %d control tokens)",
                           n_vocab, arch, min, min - 257);
    const special_token *sp;
    int n_special;
    specials_of(arch, &sp, &n_special);
    int32_t budget = n_vocab - 256 - n_special;

    builder b;
    int32_t byte_id[256];
    int rc = builder_init(&b, n_vocab);
    if (!rc) rc = add_byte_tokens(&b, byte_id);
    if (!rc) {
        seed_pool(&b, byte_id);
        rc = learn_merges(&b, byte_id, budget);
    }
    if (!rc) rc = fill_merges(&b, budget);
    if (!rc) rc = add_specials(&b, arch, out);
    if (!rc) rc = finish(&b, n_special, out);
    builder_free(&b);
    if (rc) {
        meshlm_synth_vocab_free(out);
        return rc;
    }
    /* gpt-oss's tokenizer is o200k's, whose split llama.cpp names gpt-4o; its files add no
     * BOS. */
    out->pre = is_llama(arch) ? "llama-bpe" : is_gpt_oss(arch) ? "gpt-4o" : "qwen2";
    out->add_bos = is_llama(arch);
    out->chat_template = is_llama(arch) ? llama_template : is_gpt_oss(arch) ? gpt_oss_template : qwen_template;
    return MESHLM_OK;
}

void meshlm_synth_vocab_free(meshlm_synth_vocab *v) {
    if (!v) return;
    free(v->tokens);
    free(v->arena);
    memset(v, 0, sizeof *v);
}

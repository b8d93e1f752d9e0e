/* The real vocabularies of MESHLM_SHARED_DIR/vocab: every test input must give exactly
 * the ids llama.cpp gives (no added specials, special texts not parsed), decode back to
 * its text, and a 100 KB text must tokenize quickly. Skips when the files are absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/gguf.h"
#include "meshlm.h"
#include "t.h"
#include "tokenizer/tokenizer.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = (size_t)n;
    return b;
}

/* Splits like llama.cpp's test: on the separator, with no empty piece after the last. */
static int split_inputs(char *raw, size_t len, char **in, size_t *in_len, int cap) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sl = sizeof sep - 1;
    int n = 0;
    size_t pos = 0;
    while (pos < len && n < cap) {
        char *next = NULL;
        for (size_t i = pos; i + sl <= len; i++)
            if (!memcmp(raw + i, sep, sl)) {
                next = raw + i;
                break;
            }
        in[n] = raw + pos;
        in_len[n] = next ? (size_t)(next - (raw + pos)) : len - pos;
        n++;
        if (!next) break;
        pos = (size_t)(next - raw) + sl;
    }
    return n;
}

static int parse_ids(char **line, int32_t *ids, int cap) {
    int n = 0;
    char *p = *line;
    while (*p && *p != '\n') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = end;
    }
    *line = *p ? p + 1 : p;
    return n;
}

static bool check_decode(const meshlm_tokenizer *t, const int32_t *ids, int n, const char *text,
                         size_t len) {
    static char buf[1 << 16];
    meshlm_detok d = {0};
    size_t o = 0, k;
    for (int i = 0; i < n; i++) {
        if (meshlm_detok_push(t, &d, ids[i], buf + o, sizeof buf - o, &k)) return false;
        o += k;
    }
    if (meshlm_detok_flush(&d, buf + o, sizeof buf - o, &k)) return false;
    o += k;
    /* SentencePiece adds the leading space the decoder gives back. */
    size_t skip = meshlm_tokenizer_kind(t) == MESHLM_TOK_SPM && len ? 1 : 0;
    return o == len + skip && !memcmp(buf + skip, text, len);
}

static void speed(const meshlm_tokenizer *t, const char *name, const char *raw, size_t len) {
    enum { N = 100 * 1024 };
    char *big = malloc(N);
    int32_t *ids = malloc(N * sizeof *ids);
    for (size_t i = 0; i < N; i++) big[i] = raw[i % len];
    clock_t c0 = clock();
    int32_t n = 0;
    int rc = meshlm_tokenizer_encode(t, big, N, false, false, ids, N, &n);
    double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECK_MSG(rc == 0, "%s: %s", name, meshlm_last_error());
    CHECK_MSG(s < 1.0, "%s: 100 KB took %.3f s", name, s);
    printf("%s: 100 KB -> %d ids in %.1f ms\n", name, (int)n, s * 1e3);
    free(big);
    free(ids);
}

static int run_vocab(const char *name) {
    char path[1024], pin[1100], pout[1100];
    snprintf(path, sizeof path, "%s/vocab/%s", MESHLM_SHARED_DIR, name);
    snprintf(pin, sizeof pin, "%s.inp", path);
    snprintf(pout, sizeof pout, "%s.out", path);
    size_t lin, lout;
    char *inp = slurp(pin, &lin), *out = slurp(pout, &lout);
    meshlm_gguf *g = NULL;
    if (!inp || !out || meshlm_gguf_open(path, &g) != MESHLM_OK) {
        printf("SKIP %s: cannot read %s(.inp/.out)%s%s\n", name, path, g ? "" : ": ",
               g ? "" : meshlm_last_error());
        free(inp);
        free(out);
        return -1;
    }
    meshlm_tokenizer *t = NULL;
    int rc = meshlm_tokenizer_from_gguf(g, &t);
    CHECK_MSG(rc == MESHLM_OK, "%s: %s", name, meshlm_last_error());
    int matched = 0, total = 0;
    if (t) {
        char *in[64];
        size_t in_len[64];
        int n_in = split_inputs(inp, lin, in, in_len, 64);
        char *line = out;
        for (int i = 0; i < n_in; i++) {
            int32_t want[512], got[512];
            int nw = parse_ids(&line, want, 512);
            int32_t ng = 0;
            rc = meshlm_tokenizer_encode(t, in[i], in_len[i], false, false, got, 512, &ng);
            bool ok = rc == 0 && ng == nw && !memcmp(got, want, (size_t)nw * sizeof *got);
            CHECK_MSG(ok, "%s: input %d '%.*s': got %d ids, want %d", name, i, (int)in_len[i],
                      in[i], (int)ng, nw);
            if (!ok)
                for (int k = 0; k < ng || k < nw; k++)
                    fprintf(stderr, "  [%d] got %d want %d\n", k, k < ng ? got[k] : -1,
                            k < nw ? want[k] : -1);
            CHECK_MSG(check_decode(t, got, ng, in[i], in_len[i]), "%s: input %d does not decode back",
                      name, i);
            matched += ok;
            total++;
        }
        printf("%s: %d/%d inputs match llama.cpp\n", name, matched, total);
        speed(t, name, inp, lin);
    }
    meshlm_tokenizer_free(t);
    meshlm_gguf_close(g);
    free(inp);
    free(out);
    return matched;
}

static void test_gguf_flags(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-bpe.gguf", MESHLM_SHARED_DIR);
    meshlm_gguf *g = NULL;
    if (meshlm_gguf_open(path, &g)) return;
    meshlm_tokenizer *t = NULL;
    CHECK(meshlm_tokenizer_from_gguf(g, &t) == MESHLM_OK);
    if (t) {
        int32_t eot = meshlm_tokenizer_find(t, "<|eot_id|>", 10);
        CHECK(eot >= 0 && meshlm_tokenizer_is_eog(t, eot));
        CHECK(meshlm_tokenizer_is_eog(t, meshlm_tokenizer_eos(t)));
        int32_t ids[8], n = 0;
        const char *s = "<|begin_of_text|>hi<|eot_id|>";
        CHECK(meshlm_tokenizer_encode(t, s, strlen(s), true, true, ids, 8, &n) == 0);
        CHECK_MSG(n == 4 && ids[0] == meshlm_tokenizer_bos(t) && ids[1] == ids[0] && ids[3] == eot,
                  "n=%d", (int)n);
        meshlm_tokenizer_free(t);
    }
    meshlm_gguf_close(g);
}

/* The meshlm tokenize command on a vocabulary-only file, when the binary is built. */
static void test_cli(void) {
    char path[1024], cmd[2600], line[256];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-bpe.gguf", MESHLM_SHARED_DIR);
    if (access(MESHLM_BIN, X_OK) != 0 || access(path, R_OK) != 0) {
        printf("SKIP cli: %s or %s missing\n", MESHLM_BIN, path);
        return;
    }
    static const struct { const char *args, *want; } cases[] = {
        {"-p 'Hello world<|eot_id|>'", "128000 9906 1917 128009\n"},
        {"-p 'Hello world' --no-special", "9906 1917\n"},
        {"-p '<|eot_id|>' --no-special --no-parse-special", "27 91 68 354 851 91 29\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' %s", MESHLM_BIN, path, cases[i].args);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL);
        if (!p) continue;
        size_t n = fread(line, 1, sizeof line - 1, p);
        line[n] = '\0';
        CHECK_MSG(pclose(p) == 0 && !strcmp(line, cases[i].want), "%s -> '%s'", cmd, line);
    }
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' -f /nonexistent 2>/dev/null", MESHLM_BIN, path);
    FILE *p = popen(cmd, "r");
    CHECK(p && pclose(p) != 0);
}

int main(void) {
    static const char *const names[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf",
                                        "ggml-vocab-qwen2.gguf", "ggml-vocab-gpt-2.gguf"};
    int ran = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) ran += run_vocab(names[i]) >= 0;
    if (!ran) t_skip("no vocabularies under " MESHLM_SHARED_DIR "/vocab");
    test_gguf_flags();
    test_cli();
    return t_done();
}

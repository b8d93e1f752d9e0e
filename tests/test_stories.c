/* The real tiny Llama (stories260K, GQA, SentencePiece vocab) against its published
 * reference: prompt ids, logits, and the greedy continuation, both through the API and
 * through `meshlm run`. The expected text is read from the shared models README. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlm.h"
#include "t.h"

#define MODEL MESHLM_SHARED_DIR "/models/stories260K.gguf"
#define README MESHLM_SHARED_DIR "/models/README.md"
#define PROMPT "Once upon a time"

/* The README's one fenced block, with its literal "\n" turned into newlines. */
static char *expected_text(void) {
    FILE *f = fopen(README, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *start = strstr(buf, "```\n");
    if (!start) return NULL;
    start += 4;
    char *end = strstr(start, "\n```");
    if (!end) return NULL;
    *end = '\0';
    char *out = malloc(strlen(start) + 1), *w = out;
    for (const char *r = start; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') {
            *w++ = '\n';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return out;
}

static void top_ids(const float *logits, int n, int k, int *ids) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= ids[q] == i;
            if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
        }
        ids[j] = best;
    }
}

static void test_api(const meshlm_model *m, const char *expected) {
    int32_t ids[16], n = 0;
    CHECK(meshlm_tokenize(m, PROMPT, strlen(PROMPT), true, true, ids, 16, &n) == MESHLM_OK);
    int32_t want[] = {1, 403, 407, 261, 378};
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0);

    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_threads = 2;
    sp.sampler.temperature = 0.0f;
    meshlm_session *s;
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_OK);
    CHECK(meshlm_session_eval(s, ids, 1) == MESHLM_OK);
    int top[5];
    top_ids(meshlm_session_logits(s), meshlm_model_n_vocab(m), 5, top);
    int want_top[5] = {403, 385, 410, 317, 407};
    float want_logit[5] = {17.0235f, 15.4062f, 13.1083f, 12.7692f, 12.4181f};
    for (int i = 0; i < 5; i++) {
        CHECK(top[i] == want_top[i]);
        CHECK_NEAR(meshlm_session_logits(s)[want_top[i]], want_logit[i], 2e-3);
    }
    CHECK(meshlm_session_eval(s, ids + 1, 4) == MESHLM_OK);
    int32_t tok;
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
    CHECK(meshlm_session_eval(s, &tok, 1) == MESHLM_OK);
    top_ids(meshlm_session_logits(s), meshlm_model_n_vocab(m), 1, top);
    CHECK(top[0] == 383);
    CHECK_NEAR(meshlm_session_logits(s)[383], 18.6051, 2e-3);
    meshlm_session_free(s);

    /* Greedy generation until the text is as long as the reference: equal, prompt included. */
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_OK);
    size_t cap = strlen(expected) + 256, len = strlen(PROMPT);
    char *text = malloc(cap);
    memcpy(text, PROMPT, len);
    CHECK(meshlm_session_eval(s, ids, 5) == MESHLM_OK);
    while (len < strlen(expected) && meshlm_session_pos(s) < 512) {
        const char *piece;
        size_t plen;
        if (meshlm_session_sample(s, &tok) != MESHLM_OK || meshlm_token_is_eog(m, tok)) break;
        if (meshlm_token_to_bytes(m, tok, &piece, &plen) != MESHLM_OK || len + plen >= cap) break;
        memcpy(text + len, piece, plen);
        len += plen;
        if (meshlm_session_eval(s, &tok, 1) != MESHLM_OK) break;
    }
    text[len] = '\0';
    CHECK_MSG(strcmp(text, expected) == 0, "generated:\n%s\nexpected:\n%s", text, expected);
    free(text);
    meshlm_session_free(s);
}

/* `meshlm run` with the given extra flags continues the prompt as the reference does. */
static void test_cli(const char *expected, const char *flags) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s run -m %s -p \"%s\" -n 64 --temp 0 %s 2>/dev/null", MESHLM_BIN, MODEL, PROMPT, flags);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    static char out[1 << 14];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    CHECK(pclose(p) == 0);
    const char *cont = expected + strlen(PROMPT);
    CHECK_MSG(n > 100 && out[n - 1] == '\n', "%s: output: '%s'", flags, out);
    out[n - 1] = '\0';
    CHECK_MSG(strncmp(out, cont, n - 1) == 0, "%s: output '%s' is not a prefix of '%s'", flags, out, cont);
}

/* Seeded sampling (top-k, top-p, min-p, temperature) draws the same tokens on a mesh,
 * where only each shard's candidates are exchanged, as on one device. */
static void test_sampled_mesh(void) {
    static char one[1 << 14], mesh[1 << 14];
    const char *fmt = "%s run -m %s -p \"%s\" -n 60 --temp 0.8 --top-k 40 --top-p 0.95 --min-p 0.05 --seed 7 %s 2>/dev/null";
    char cmd[512];
    char *outs[2] = {one, mesh};
    const char *flags[2] = {"", "--mesh 2x2 --topology ring"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, fmt, MESHLM_BIN, MODEL, PROMPT, flags[i]);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL);
        if (!p) return;
        size_t n = fread(outs[i], 1, sizeof one - 1, p);
        outs[i][n] = '\0';
        CHECK(pclose(p) == 0 && n > 20);
    }
    CHECK_MSG(strcmp(one, mesh) == 0, "sampled text differs:\n1x1: %s\n2x2: %s", one, mesh);
}

int main(void) {
    FILE *f = fopen(MODEL, "rb");
    if (!f) t_skip("stories260K.gguf not found in " MESHLM_SHARED_DIR "/models");
    fclose(f);
    char *expected = expected_text();
    if (!expected) t_skip("no reference text in " README);
    meshlm_model *m;
    CHECK(meshlm_model_load(MODEL, &m) == MESHLM_OK);
    if (m) {
        test_api(m, expected);
        meshlm_model_free(m);
    }
    test_cli(expected, "-t 2");
    test_cli(expected, "--mesh 2x2 --topology ring");
    test_cli(expected, "--mesh 1x8 --topology linear --links 2");
    test_sampled_mesh();
    free(expected);
    return t_done();
}

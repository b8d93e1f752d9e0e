/* Streaming text: stop strings held back until decided and never shown, and the public
 * detokenizer (whole UTF-8 characters, control tokens hidden unless asked). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshlm.h"
#include "t.h"
#include "t_synth.h"

/* Pushes pieces through a matcher, returns everything shown and whether it stopped. */
static bool feed(meshlm_stop *s, const char *const *pieces, int n, char *shown, size_t cap) {
    size_t used = 0;
    bool stopped = false;
    shown[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *out;
        size_t k;
        CHECK(meshlm_stop_push(s, pieces[i], strlen(pieces[i]), &out, &k, &stopped) == MESHLM_OK);
        CHECK(used + k < cap);
        memcpy(shown + used, out, k);
        used += k;
        shown[used] = '\0';
    }
    return stopped;
}

static void test_stop(void) {
    const char *stops[] = {"END", "stop here"};
    meshlm_stop *s = NULL;
    CHECK(meshlm_stop_create(stops, 2, &s) == MESHLM_OK);
    char shown[256];
    const char *out;
    size_t k;
    bool stopped;

    /* A tail that may begin a stop string waits; once it completes, it is never shown. */
    CHECK(meshlm_stop_push(s, "hello E", 7, &out, &k, &stopped) == MESHLM_OK);
    CHECK(k == 6 && !memcmp(out, "hello ", 6) && !stopped);
    CHECK(meshlm_stop_push(s, "ND more", 7, &out, &k, &stopped) == MESHLM_OK);
    CHECK(k == 0 && stopped && meshlm_stop_which(s) == 0);
    CHECK(meshlm_stop_push(s, "after", 5, &out, &k, &stopped) == MESHLM_OK && k == 0 && stopped);
    CHECK(meshlm_stop_flush(s, &out, &k) == MESHLM_OK && k == 0 && meshlm_stop_which(s) == -1);

    /* A held tail that turns out not to be a stop string comes out whole. */
    const char *p1[] = {"E", "N", "x", " sto", "p he", "llo"};
    CHECK(!feed(s, p1, 6, shown, sizeof shown));
    CHECK_MSG(!strcmp(shown, "ENx stop hello"), "shown '%s'", shown);
    CHECK(meshlm_stop_flush(s, &out, &k) == MESHLM_OK && k == 0);
    const char *p0[] = {"x sto"};
    CHECK(!feed(s, p0, 1, shown, sizeof shown) && !strcmp(shown, "x "));
    CHECK(meshlm_stop_flush(s, &out, &k) == MESHLM_OK && k == 3 && !memcmp(out, "sto", 3));

    /* One character at a time, the second string, text before it kept. */
    const char *p2[] = {"a", "b", " ", "s", "t", "o", "p", " ", "h", "e", "r", "e", "!"};
    CHECK(feed(s, p2, 13, shown, sizeof shown));
    CHECK_MSG(!strcmp(shown, "ab "), "shown '%s'", shown);
    CHECK(meshlm_stop_which(s) == 1);
    CHECK(meshlm_stop_flush(s, &out, &k) == MESHLM_OK && k == 0);

    /* Within one piece, the earliest stop string wins, whatever its place in the list. */
    const char *p3[] = {"xx stop here then END"};
    CHECK(feed(s, p3, 1, shown, sizeof shown) && !strcmp(shown, "xx ") && meshlm_stop_which(s) == 1);
    meshlm_stop_free(s);

    /* A stop string whose prefix repeats: "aab" in "aaab". */
    const char *rep[] = {"aab"};
    CHECK(meshlm_stop_create(rep, 1, &s) == MESHLM_OK);
    const char *p4[] = {"a", "a", "a", "b", "c"};
    CHECK(feed(s, p4, 5, shown, sizeof shown) && !strcmp(shown, "a"));
    meshlm_stop_free(s);

    /* Multi-byte text: a held tail never splits a character that is not part of a stop. */
    const char *uni[] = {"日本"};
    CHECK(meshlm_stop_create(uni, 1, &s) == MESHLM_OK);
    const char *p5[] = {"é日", "語日本語"};
    CHECK(feed(s, p5, 2, shown, sizeof shown) && !strcmp(shown, "é日語"));
    meshlm_stop_free(s);

    const char *bad[] = {"ok", ""};
    s = (meshlm_stop *)1;
    CHECK(meshlm_stop_create(bad, 2, &s) == MESHLM_ERR_INVALID_ARG && s == NULL);
    CHECK(strstr(meshlm_last_error(), "string 1 is empty") != NULL);
    CHECK(meshlm_stop_create(NULL, 0, &s) == MESHLM_OK);
    CHECK(meshlm_stop_push(s, "anything", 8, &out, &k, &stopped) == MESHLM_OK && k == 8 && !stopped);
    meshlm_stop_free(s);
    meshlm_stop_free(NULL);
}

/* The id of a text that tokenizes to exactly one token, or -1. */
static int32_t one_token(const meshlm_model *m, const char *text) {
    int32_t ids[8], n = 0;
    if (meshlm_tokenize(m, text, strlen(text), false, true, ids, 8, &n) != MESHLM_OK || n != 1) return -1;
    return ids[0];
}

static void test_detokenizer(const char *dir) {
    char path[512], label[64];
    if (!t_synth_tiny(dir, "llama", MESHLM_TYPE_F32, path, sizeof path, label, sizeof label)) return;
    meshlm_model *m = NULL;
    CHECK(meshlm_model_load(path, &m) == MESHLM_OK);
    if (!m) return;
    int32_t eot = one_token(m, "<|eot_id|>"), bos = one_token(m, "<|begin_of_text|>");
    CHECK(eot >= 0 && bos >= 0);
    CHECK(meshlm_token_eot(m) == eot && meshlm_token_bos(m) == bos && meshlm_token_eos(m) >= 0);
    CHECK(meshlm_token_is_control(m, eot) && meshlm_token_is_control(m, bos));
    int32_t ids[64], n = 0;
    const char *text = "Hi é 日本 <|eot_id|>x";
    CHECK(meshlm_tokenize(m, text, strlen(text), false, true, ids, 64, &n) == MESHLM_OK);
    CHECK(!meshlm_token_is_control(m, ids[0]));
    for (int special = 0; special < 2; special++) {
        meshlm_detokenizer *d = NULL;
        CHECK(meshlm_detokenizer_create(m, special, &d) == MESHLM_OK);
        char all[256] = "";
        size_t used = 0;
        for (int32_t i = 0; i < n; i++) {
            const char *piece;
            size_t k;
            CHECK(meshlm_detokenizer_push(d, ids[i], &piece, &k) == MESHLM_OK);
            /* Never a partial character: every piece is valid UTF-8 on its own. */
            for (size_t j = 0; j < k; j++) {
                unsigned char c = (unsigned char)piece[j];
                int len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
                CHECK_MSG(len > 0 && j + (size_t)len <= k, "token %d splits a character", ids[i]);
                j += len > 0 ? (size_t)len - 1 : 0;
            }
            memcpy(all + used, piece, k);
            used += k;
        }
        const char *tail;
        size_t k;
        CHECK(meshlm_detokenizer_flush(d, &tail, &k) == MESHLM_OK && k == 0);
        all[used] = '\0';
        const char *want = special ? text : "Hi é 日本 x";
        CHECK_MSG(!strcmp(all, want), "special=%d: '%s' want '%s'", special, all, want);
        /* An incomplete character at the end of a stream comes out as U+FFFD. */
        int32_t e_ids[8], ne = 0;
        CHECK(meshlm_tokenize(m, "é", 2, false, false, e_ids, 8, &ne) == MESHLM_OK);
        if (ne == 2) {
            const char *p;
            CHECK(meshlm_detokenizer_push(d, e_ids[0], &p, &k) == MESHLM_OK && k == 0);
            CHECK(meshlm_detokenizer_flush(d, &p, &k) == MESHLM_OK && k == 3 && !memcmp(p, "\xef\xbf\xbd", 3));
        }
        const char *p;
        CHECK(meshlm_detokenizer_push(d, -5, &p, &k) != MESHLM_OK && k == 0);
        meshlm_detokenizer_free(d);
    }
    meshlm_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/meshlm-stream-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_stop();
    test_detokenizer(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_done();
}

/* The chat API: a model's own template rendered with its bos/eos texts, the ChatML
 * fallback, the JSON form, errors, and a second turn that evaluates only its new tokens
 * and still gets the logits of the whole conversation evaluated afresh. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshlm.h"
#include "t.h"
#include "t_synth.h"

static void test_templates(const meshlm_model *m) {
    meshlm_chat_template *t = NULL;
    CHECK(meshlm_chat_template_from_model(m, NULL, &t) == MESHLM_OK);
    if (!t) return;
    CHECK(!meshlm_chat_template_is_fallback(t));
    meshlm_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi \"there\""}};
    char *out = NULL;
    size_t len = 0;
    CHECK(meshlm_chat_render(t, msgs, 2, true, &out, &len) == MESHLM_OK);
    const char *want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\nHi \"there\"<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_MSG(out && !strcmp(out, want) && len == strlen(want), "rendered '%s'", out ? out : "(null)");
    meshlm_free(out);
    CHECK(meshlm_chat_render_json(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", &out, &len) ==
          MESHLM_OK);
    CHECK_MSG(out && strstr(out, "user<|end_header_id|>\n\nx<|eot_id|>") && !strstr(out, "assistant"), "'%s'", out);
    meshlm_free(out);
    CHECK(meshlm_chat_render_json(t, "[1, 2]", &out, &len) == MESHLM_ERR_INVALID_ARG && !out);
    CHECK(meshlm_chat_render_json(t, "{\"messages\": ", &out, &len) == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "invalid JSON") != NULL);
    meshlm_chat_template_free(t);

    /* An override, a template that raises, and a syntax error that names its place. */
    const char *own = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                      "{% if add_generation_prompt %}[assistant] {% endif %}";
    CHECK(meshlm_chat_template_from_model(m, own, &t) == MESHLM_OK);
    CHECK(meshlm_chat_render(t, msgs + 1, 1, true, &out, &len) == MESHLM_OK);
    CHECK_MSG(out && !strcmp(out, "[user] Hi \"there\"\n[assistant] "), "'%s'", out);
    meshlm_free(out);
    meshlm_chat_template_free(t);
    const char *raising = "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}";
    CHECK(meshlm_chat_template_parse(raising, strlen(raising), "<s>", "</s>", &t) == MESHLM_OK);
    CHECK(meshlm_chat_render(t, msgs, 2, false, &out, &len) != MESHLM_OK && !out);
    CHECK_MSG(strstr(meshlm_last_error(), "no system role") != NULL, "%s", meshlm_last_error());
    meshlm_chat_template_free(t);
    const char *broken = "hello\n{% for x in %}";
    CHECK(meshlm_chat_template_parse(broken, strlen(broken), NULL, NULL, &t) == MESHLM_ERR_FORMAT && !t);
    CHECK_MSG(strstr(meshlm_last_error(), "line 2") != NULL, "%s", meshlm_last_error());
}

/* A model file without a template gets ChatML, and says so. */
static void test_fallback(void) {
    const char *path = MESHLM_SHARED_DIR "/models/stories260K.gguf";
    if (access(path, R_OK) != 0) {
        printf("skipping the ChatML fallback: %s is absent\n", path);
        return;
    }
    meshlm_model *m = NULL;
    meshlm_chat_template *t = NULL;
    CHECK(meshlm_model_load(path, &m) == MESHLM_OK);
    CHECK(m && meshlm_chat_template_from_model(m, NULL, &t) == MESHLM_OK);
    CHECK(meshlm_chat_template_is_fallback(t));
    meshlm_chat_message msg = {"user", "hello"};
    char *out = NULL;
    size_t len;
    CHECK(t && meshlm_chat_render(t, &msg, 1, true, &out, &len) == MESHLM_OK);
    CHECK_MSG(out && !strcmp(out, "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"), "'%s'", out);
    meshlm_free(out);
    meshlm_chat_template_free(t);
    meshlm_model_free(m);
}

static int32_t render_ids(const meshlm_model *m, const meshlm_chat_template *t, const meshlm_chat_message *msgs,
                          size_t n, int32_t *ids, int32_t cap) {
    char *text = NULL;
    size_t len = 0;
    int32_t n_ids = -1;
    if (meshlm_chat_render(t, msgs, n, true, &text, &len) == MESHLM_OK &&
        meshlm_tokenize(m, text, len, false, true, ids, cap, &n_ids) != MESHLM_OK)
        n_ids = -1;
    meshlm_free(text);
    return n_ids;
}

/* Turn 2 evaluates only what follows the prefix it shares with turn 1, and its logits are
 * bitwise those of the whole conversation evaluated in a new session. */
static void test_turns(const meshlm_model *m) {
    meshlm_chat_template *t = NULL;
    meshlm_session *s = NULL, *fresh = NULL;
    meshlm_session_params sp = meshlm_session_defaults();
    sp.sampler.temperature = 0;
    sp.n_threads = 2;
    CHECK(meshlm_chat_template_from_model(m, NULL, &t) == MESHLM_OK);
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_OK && meshlm_session_create(m, &sp, &fresh) == MESHLM_OK);
    if (!t || !s || !fresh) goto done;
    meshlm_chat_message msgs[4] = {{"system", "You are terse."}, {"user", "Tell me a story."}};
    int32_t ids[1024], n1 = render_ids(m, t, msgs, 2, ids, 1024), n_eval = 0;
    CHECK(n1 > 10 && meshlm_session_sync(s, ids, n1, &n_eval) == MESHLM_OK && n_eval == n1);
    char reply[512] = "";
    meshlm_detokenizer *d = NULL;
    CHECK(meshlm_detokenizer_create(m, false, &d) == MESHLM_OK);
    for (int i = 0; i < 12 && d; i++) {
        int32_t tok;
        const char *p;
        size_t k;
        CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
        if (meshlm_token_is_eog(m, tok)) break;
        CHECK(meshlm_detokenizer_push(d, tok, &p, &k) == MESHLM_OK && strlen(reply) + k < sizeof reply);
        strncat(reply, p, k);
        CHECK(meshlm_session_eval(s, &tok, 1) == MESHLM_OK);
    }
    meshlm_detokenizer_free(d);
    msgs[2] = (meshlm_chat_message){"assistant", reply};
    msgs[3] = (meshlm_chat_message){"user", "And then?"};
    int32_t ids2[1024], n2 = render_ids(m, t, msgs, 4, ids2, 1024);
    CHECK(n2 > n1 && !memcmp(ids, ids2, (size_t)n1 * sizeof *ids));
    CHECK(meshlm_session_sync(s, ids2, n2, &n_eval) == MESHLM_OK);
    CHECK_MSG(n_eval > 0 && n_eval <= n2 - n1, "turn 2 evaluated %d of %d tokens (turn 1 had %d)", n_eval, n2, n1);
    CHECK(meshlm_session_pos(s) == n2 && !memcmp(meshlm_session_tokens(s), ids2, (size_t)n2 * sizeof *ids2));
    int32_t n_fresh = 0;
    CHECK(meshlm_session_sync(fresh, ids2, n2, &n_fresh) == MESHLM_OK && n_fresh == n2);
    const float *a = meshlm_session_logits(s), *b = meshlm_session_logits(fresh);
    CHECK(a && b && !memcmp(a, b, (size_t)meshlm_model_n_vocab(m) * sizeof *a));
    /* The same conversation again: nothing new but the last token. */
    CHECK(meshlm_session_sync(s, ids2, n2, &n_eval) == MESHLM_OK && n_eval == 1);
    CHECK(meshlm_session_sync(s, ids2, 0, &n_eval) == MESHLM_ERR_INVALID_ARG);
done:
    meshlm_session_free(s);
    meshlm_session_free(fresh);
    meshlm_chat_template_free(t);
}

int main(void) {
    char dir[] = "/tmp/meshlm-chat-XXXXXX", path[512], label[64];
    if (!mkdtemp(dir)) return 1;
    meshlm_model *m = NULL;
    if (t_synth_tiny(dir, "llama", MESHLM_TYPE_F32, path, sizeof path, label, sizeof label))
        CHECK(meshlm_model_load(path, &m) == MESHLM_OK);
    if (m) {
        test_templates(m);
        test_turns(m);
    }
    meshlm_model_free(m);
    test_fallback();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_done();
}

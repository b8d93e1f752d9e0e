/* Sessions as a chat keeps them: truncating to a shared prefix and evaluating a new tail
 * gives bitwise the logits of a fresh session that evaluated prefix + tail, on one device
 * and on 1x2 and 2x1 meshes; the penalty history follows the truncation, so sampled tokens
 * match the fresh session's too; stale logits (after truncate or reset) are refused; a new
 * sampler takes effect at once and keeps the history; tokens() shows what is held.
 * A synthetic tiny model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "t.h"
#include "t_synth.h"

enum { NA = 23, NB = 17, NC = 11, N_GEN = 12, N_CTX = 128 };

static int32_t A[NA], B[NB], C[NC];

static meshlm_sampler_params greedy(void) {
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    sp.temperature = 0.0f;
    return sp;
}

static meshlm_session *open_session(const meshlm_model *m, const char *mesh, const meshlm_sampler_params *sp) {
    meshlm_session_params p = meshlm_session_defaults();
    p.n_ctx = N_CTX;
    p.n_threads = mesh ? 1 : 2;
    p.mesh = mesh;
    p.full_logits = true;
    p.sampler = *sp;
    meshlm_session *s = NULL;
    int rc = meshlm_session_create(m, &p, &s);
    CHECK_MSG(rc == MESHLM_OK, "session %s: %s", mesh ? mesh : "1x1", meshlm_last_error());
    return s;
}

static bool eval(meshlm_session *s, const int32_t *tok, int32_t n) {
    int rc = meshlm_session_eval(s, tok, n);
    CHECK_MSG(rc == MESHLM_OK, "eval: %s", meshlm_last_error());
    return rc == MESHLM_OK;
}

/* Samples and feeds back n tokens into out. */
static void generate(meshlm_session *s, int32_t *out, int n) {
    for (int i = 0; i < n; i++) {
        out[i] = -1;
        if (meshlm_session_sample(s, &out[i]) != MESHLM_OK || !eval(s, &out[i], 1)) {
            CHECK_MSG(0, "generate: %s", meshlm_last_error());
            return;
        }
    }
}

/* A+B, truncated to A, then C: the logits of A+C, bitwise; then the same greedy (or seeded)
 * tokens with a repetition penalty whose history must have forgotten B. */
static void check_truncate(const meshlm_model *m, const char *mesh, const meshlm_sampler_params *sp,
                           const char *what) {
    int32_t V = meshlm_model_n_vocab(m);
    meshlm_session *s = open_session(m, mesh, sp), *f = open_session(m, mesh, sp);
    if (!s || !f) {
        meshlm_session_free(s), meshlm_session_free(f);
        return;
    }
    int32_t AC[NA + NC], gen_s[N_GEN], gen_f[N_GEN], first[N_GEN];
    memcpy(AC, A, sizeof A);
    memcpy(AC + NA, C, sizeof C);
    /* The session also generates past B before going back: its history and RNG moved on. */
    CHECK(eval(s, A, NA) && eval(s, B, 5) && eval(s, B + 5, NB - 5));
    generate(s, first, 4);
    CHECK(meshlm_session_pos(s) == NA + NB + 4);
    CHECK(meshlm_session_truncate(s, NA) == MESHLM_OK && meshlm_session_pos(s) == NA);
    CHECK(eval(s, C, NC));
    CHECK(eval(f, AC, NA + NC));
    const float *ls = meshlm_session_logits(s), *lf = meshlm_session_logits(f);
    CHECK_MSG(ls && lf && memcmp(ls, lf, sizeof(float) * (size_t)V) == 0, "%s %s: logits after truncate differ",
              what, mesh ? mesh : "1x1");
    CHECK(memcmp(meshlm_session_tokens(s), AC, sizeof AC) == 0);
    /* The fresh session draws as often as s did before truncating (one random number a
     * draw), so only the penalty history can make them differ. */
    for (int i = 0; i < 4; i++) CHECK(meshlm_session_sample(f, &gen_f[0]) == MESHLM_OK);
    generate(s, gen_s, N_GEN);
    generate(f, gen_f, N_GEN);
    CHECK_MSG(memcmp(gen_s, gen_f, sizeof gen_s) == 0, "%s %s: tokens after truncate differ from a fresh session's",
              what, mesh ? mesh : "1x1");
    CHECK(memcmp(meshlm_session_tokens(s), meshlm_session_tokens(f), sizeof(int32_t) * (NA + NC + N_GEN)) == 0);
    fprintf(stderr, "%s %s: truncate to %d then %d tokens: logits and %d sampled tokens as a fresh session\n", what,
            mesh ? mesh : "1x1", NA, NC, N_GEN);
    meshlm_session_free(s);
    meshlm_session_free(f);
}

/* Truncation to every kind of position, stale logits refused, tokens() as held. */
static void check_states(const meshlm_model *m) {
    meshlm_sampler_params sp = greedy();
    meshlm_session *s = open_session(m, NULL, &sp);
    if (!s) return;
    int32_t tok;
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "no logits"));
    CHECK(eval(s, A, NA));
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
    CHECK(memcmp(meshlm_session_tokens(s), A, sizeof A) == 0);
    CHECK(meshlm_session_truncate(s, -1) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_session_truncate(s, NA + 1) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "outside"));
    CHECK(meshlm_session_pos(s) == NA);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK); /* refused truncates change nothing */
    /* Truncating to the current position still leaves logits that no eval made. */
    CHECK(meshlm_session_truncate(s, NA) == MESHLM_OK);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_ERR_INVALID_ARG &&
          strcmp(meshlm_last_error(), "no logits: evaluate a token first") == 0);
    CHECK(meshlm_session_truncate(s, 7) == MESHLM_OK && meshlm_session_pos(s) == 7);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_ERR_INVALID_ARG);
    CHECK(memcmp(meshlm_session_tokens(s), A, 7 * sizeof(int32_t)) == 0);
    CHECK(eval(s, C, 3) && meshlm_session_sample(s, &tok) == MESHLM_OK);
    CHECK(memcmp(meshlm_session_tokens(s), A, 7 * sizeof(int32_t)) == 0 &&
          memcmp(meshlm_session_tokens(s) + 7, C, 3 * sizeof(int32_t)) == 0);
    CHECK(meshlm_session_truncate(s, 0) == MESHLM_OK && meshlm_session_pos(s) == 0);
    CHECK(eval(s, B, NB) && memcmp(meshlm_session_tokens(s), B, sizeof B) == 0);
    /* A refused eval (context full) keeps the logits and the position. */
    int32_t many[N_CTX];
    for (int i = 0; i < N_CTX; i++) many[i] = A[i % NA];
    CHECK(meshlm_session_eval(s, many, N_CTX) == MESHLM_ERR_RANGE && meshlm_session_pos(s) == NB);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
    meshlm_session_reset(s);
    CHECK(meshlm_session_pos(s) == 0);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_session_truncate(s, 0) == MESHLM_OK && meshlm_session_truncate(s, 1) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_session_truncate(NULL, 0) == MESHLM_ERR_INVALID_ARG);
    meshlm_session_free(s);
}

/* The argmax, lowest id on ties. */
static int32_t argmax(const float *l, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* set_sampler: bad parameters refused (the old sampler stays); greedy gives the argmax at
 * once, also on a mesh whose shards exchanged candidates for the old parameters; a switch
 * that widens the exchange (greedy to all candidates) works; the history is kept. */
static void check_set_sampler(const meshlm_model *m, const char *mesh) {
    const char *label = mesh ? mesh : "1x1";
    int32_t V = meshlm_model_n_vocab(m), tok = -1, tok2 = -1;
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    sp.seed = 7;
    meshlm_session *s = open_session(m, mesh, &sp);
    if (!s) return;
    CHECK(eval(s, A, NA));
    meshlm_sampler_params bad = greedy();
    bad.top_p = 0.0f;
    CHECK(meshlm_session_set_sampler(s, &bad) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_session_set_sampler(s, NULL) == MESHLM_ERR_INVALID_ARG);
    meshlm_sampler_params g = greedy();
    CHECK(meshlm_session_set_sampler(s, &g) == MESHLM_OK);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
    CHECK_MSG(tok == argmax(meshlm_session_logits(s), V), "%s: greedy after set_sampler gave %d, argmax %d", label,
              tok, argmax(meshlm_session_logits(s), V));
    /* All candidates, sampled: the same seed gives the same token twice. */
    meshlm_sampler_params wide = meshlm_sampler_defaults();
    wide.top_k = 0;
    wide.top_p = 1.0f;
    wide.min_p = 0.0f;
    wide.temperature = 1.5f;
    wide.seed = 99;
    CHECK(meshlm_session_set_sampler(s, &wide) == MESHLM_OK && meshlm_session_sample(s, &tok) == MESHLM_OK);
    CHECK(meshlm_session_set_sampler(s, &wide) == MESHLM_OK && meshlm_session_sample(s, &tok2) == MESHLM_OK);
    CHECK_MSG(tok >= 0 && tok < V && tok == tok2, "%s: wide sampler drew %d then %d after reseeding", label, tok, tok2);
    /* Back to greedy with a penalty: the history (A) is there, and greedy decode goes on. */
    g.repeat_penalty = 1.5f;
    g.repeat_last_n = 64;
    CHECK(meshlm_session_set_sampler(s, &g) == MESHLM_OK && meshlm_session_sample(s, &tok) == MESHLM_OK);
    meshlm_session *f = open_session(m, mesh, &g);
    if (f && eval(f, A, NA)) {
        CHECK(meshlm_session_sample(f, &tok2) == MESHLM_OK);
        CHECK_MSG(tok == tok2, "%s: penalized greedy after set_sampler %d, a fresh session's %d", label, tok, tok2);
    }
    meshlm_session_free(f);
    meshlm_session_free(s);
}

/* A model whose every layer is windowed drops the pages its window has left: truncating
 * to a position that would see them is refused, 0 is not, session_sync falls back to a
 * full evaluation, and all of it gives the logits of a fresh session. */
static void check_windowed(const char *dir, const char *mesh) {
    meshlm_synth_params p;
    char path[256];
    CHECK(meshlm_synth_preset("tiny", "gemma3", &p) == MESHLM_OK);
    p.swa_pattern = -1, p.sliding_window = 20;
    snprintf(path, sizeof path, "%s/gemma3-windowed.gguf", dir);
    meshlm_model *m = NULL;
    if (meshlm_synth_write(&p, path) != MESHLM_OK || meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "windowed gemma3: %s", meshlm_last_error());
        return;
    }
    meshlm_sampler_params g = greedy();
    meshlm_session *s = open_session(m, mesh, &g), *f = open_session(m, mesh, &g);
    int32_t V = meshlm_model_n_vocab(m), n_eval = 0, tail[100];
    for (int i = 0; i < 100; i++) tail[i] = B[i % NB];
    /* 123 positions: the first page of 64 has left the window of 20 */
    if (s && f && eval(s, A, NA) && eval(s, tail, 100)) {
        CHECK(meshlm_session_truncate(s, NA) == MESHLM_ERR_RANGE);
        CHECK(strstr(meshlm_last_error(), "dropped") != NULL);
        CHECK(meshlm_session_pos(s) == NA + 100);
        CHECK(meshlm_session_truncate(s, 100) == MESHLM_OK && meshlm_session_truncate(s, 83) == MESHLM_OK);
        CHECK(meshlm_session_truncate(s, 82) == MESHLM_ERR_RANGE);
        int32_t both[NA + NC];
        memcpy(both, A, sizeof A);
        memcpy(both + NA, C, sizeof C);
        CHECK(meshlm_session_sync(s, both, NA + NC, &n_eval) == MESHLM_OK && n_eval == NA + NC);
        CHECK(eval(f, both, NA + NC));
        CHECK_MSG(memcmp(meshlm_session_logits(s), meshlm_session_logits(f), sizeof(float) * (size_t)V) == 0,
                  "windowed gemma3 %s: logits after a full re-evaluation differ from a fresh session's",
                  mesh ? mesh : "1x1");
        CHECK(meshlm_session_truncate(s, 0) == MESHLM_OK && eval(s, both, NA + NC));
        CHECK(memcmp(meshlm_session_logits(s), meshlm_session_logits(f), sizeof(float) * (size_t)V) == 0);
    }
    meshlm_session_free(s);
    meshlm_session_free(f);
    meshlm_model_free(m);
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/meshlm-session-api-XXXXXX", path[256], label[64];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    if (!t_synth_tiny(dir, "llama", MESHLM_TYPE_Q8_0, path, sizeof path, label, sizeof label)) return t_done();
    meshlm_model *m = NULL;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return t_done();
    }
    int32_t V = meshlm_model_n_vocab(m);
    for (int i = 0; i < NA; i++) A[i] = (int32_t)((i * 7919 + 3) % (V - 8));
    for (int i = 0; i < NB; i++) B[i] = (int32_t)((i * 104729 + 11) % (V - 8));
    for (int i = 0; i < NC; i++) C[i] = (int32_t)((i * 31 + 5) % (V - 8));

    meshlm_sampler_params g = greedy(), pen = greedy(), hot = meshlm_sampler_defaults();
    pen.repeat_penalty = 1.8f;
    pen.repeat_last_n = 16;
    hot.repeat_penalty = 1.3f;
    hot.repeat_last_n = 24;
    hot.seed = 1234;
    const char *meshes[] = {NULL, "1x2", "2x1"};
    for (int k = 0; k < 3; k++) {
        check_truncate(m, meshes[k], &g, "greedy");
        check_truncate(m, meshes[k], &pen, "greedy, penalty 1.8 over 16");
        check_truncate(m, meshes[k], &hot, "temp 0.8, penalty 1.3 over 24");
        check_set_sampler(m, meshes[k]);
    }
    check_states(m);
    for (int k = 0; k < 3; k++) check_windowed(dir, meshes[k]);
    meshlm_model_free(m);
    unlink(path);
    rmdir(dir);
    return t_done();
}

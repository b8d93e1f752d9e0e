/* meshlm against llama.cpp's recorded outputs (tests/fixtures/llamacpp.txt, made by
 * tests/llamacpp_fixture.sh): each tiny synthetic model is made again from its options (synth
 * is deterministic, and the meshlm command gives the same bytes as the library), then every
 * prompt must give llama.cpp's 8 greedy ids and, at the first step, probabilities within 1e-3
 * of llama.cpp's for its top 3 ids, in the generic and the performance tiers and on a 2x2 mesh.
 * Models of a quantized type are held to the first greedy id and the probabilities: llama.cpp
 * rounds its int8 activations' scales to f16 where meshlm keeps f32, so a near-tie later in a
 * random tiny model's generation may go either way (the ids that agree are counted). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/synth.h"
#include "t.h"

enum { MAX_PROMPT = 256, N_GEN = 8, N_TOP = 3, LINE = 8192 };

#define TOLERANCE 1e-3

/* The largest probability difference seen, for the log. */
static double worst;

typedef struct prompt_case {
    int32_t n, ids[MAX_PROMPT], greedy[N_GEN], top_id[N_TOP];
    double top_p[N_TOP];
} prompt_case;

/* Reads up to cap integers after the keyword of line into out; returns how many. */
static int read_ints(char *line, int32_t *out, int cap) {
    int n = 0;
    strtok(line, " \n");
    for (char *t = strtok(NULL, " \n"); t && n < cap; t = strtok(NULL, " \n")) out[n++] = (int32_t)atoi(t);
    return n;
}

/* The bytes of a file, or NULL; *n gets the length. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) free(b), b = NULL;
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The meshlm command writes the same bytes as meshlm_synth_write, so the script's files (made
 * by the command) are the ones checked here. */
static void check_same_as_command(const char *arch, int n_layer, int window, const char *theta, int seed,
                                  int n_ctx_orig, int swa_pattern, int n_expert, int n_used, const char *type,
                                  const char *path, const char *dir) {
    if (access(MESHLM_BIN, X_OK) != 0) return;
    char cmd[1024], other[512], orig[32] = "", swa[80] = "";
    snprintf(other, sizeof other, "%s/cmd.gguf", dir);
    if (n_ctx_orig > 0) snprintf(orig, sizeof orig, " --n-ctx-orig %d", n_ctx_orig);
    if (swa_pattern < 0) snprintf(swa, sizeof swa, " --swa-pattern all");
    if (swa_pattern > 0) snprintf(swa, sizeof swa, " --swa-pattern %d", swa_pattern);
    if (n_expert > 0)
        snprintf(swa + strlen(swa), sizeof swa - strlen(swa), " --n-expert %d --n-expert-used %d", n_expert, n_used);
    snprintf(cmd, sizeof cmd,
             "%s synth --arch %s --preset tiny --n-layer %d --sliding-window %d --rope-theta %s --type %s "
             "--seed %d%s%s -o %s >/dev/null 2>&1",
             MESHLM_BIN, arch, n_layer, window, theta, type, seed, orig, swa, other);
    int st = system(cmd);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: meshlm synth failed", arch);
    size_t na = 0, nb = 0;
    char *a = slurp(path, &na), *b = slurp(other, &nb);
    CHECK_MSG(a && b && na == nb && memcmp(a, b, na) == 0, "%s: the command's file differs from the library's", arch);
    free(a), free(b);
    unlink(other);
}

/* The index of the largest of l[0..n), the first of equals (as greedy sampling takes). */
static int best_of(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static int n_steps, n_agree; /* quantized models: greedy steps compared, and agreeing */
static bool model_f32;       /* the current model's matrices are F32 */

static void check_prompt(const meshlm_model *m, const prompt_case *c, const char *opt, const char *opt_set,
                         const char *mesh, bool exact, const char *label) {
    meshlm_session_params p = meshlm_session_defaults();
    p.opt = opt;
    p.opt_set = opt_set;
    p.mesh = mesh;
    p.n_threads = 1;
    p.n_ctx = 512;
    p.full_logits = true;
    meshlm_session *s = NULL;
    if (meshlm_session_create(m, &p, &s) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return;
    }
    CHECK(meshlm_session_eval(s, c->ids, c->n) == MESHLM_OK);
    int V = meshlm_model_n_vocab(m);
    bool same = true;
    for (int step = 0; step < N_GEN; step++) {
        const float *l = meshlm_session_logits(s);
        int best = best_of(l, V);
        if (step == 0) {
            double sum = 0;
            for (int i = 0; i < V; i++) sum += exp((double)l[i] - l[best]);
            /* llama.cpp's top ids by meshlm's probabilities: near-ties may order differently */
            for (int k = 0; k < N_TOP; k++) {
                int id = c->top_id[k];
                double prob = id >= 0 && id < V ? exp((double)l[id] - l[best]) / sum : -1.0;
                if (fabs(prob - c->top_p[k]) > worst) worst = fabs(prob - c->top_p[k]);
                CHECK_MSG(fabs(prob - c->top_p[k]) <= TOLERANCE, "%s: id %d has %.6f, %.6f in llama.cpp", label, id,
                          prob, c->top_p[k]);
            }
        }
        if (exact || step == 0)
            CHECK_MSG(best == c->greedy[step], "%s: greedy id %d is %d, llama.cpp's %d", label, step, best,
                      c->greedy[step]);
        if (!exact && step > 0) {
            same = same && best == c->greedy[step];
            n_steps++, n_agree += same;
        }
        int32_t next = best;
        CHECK(meshlm_session_eval(s, &next, 1) == MESHLM_OK);
    }
    meshlm_session_free(s);
}

/* Makes the model of a "model" line and loads it; NULL (after a failed check) if it cannot. */
static meshlm_model *make_model(char *line, const char *dir, char *label, size_t label_cap) {
    char arch[16], theta[32], type[16] = "F32";
    int n_layer, window, seed, n_ctx_orig = 0, swa_pattern = 0, n_expert = 0, n_used = 0;
    int got = sscanf(line, "model %15s %d %d %31s %d %d %d %d %d %15s", arch, &n_layer, &window, theta, &seed,
                     &n_ctx_orig, &swa_pattern, &n_expert, &n_used, type);
    int type_id = meshlm_type_from_name(type);
    if (got < 5 || got == 8 || got > 10 || type_id < 0) {
        CHECK_MSG(0, "bad fixture line: %s", line);
        return NULL;
    }
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", arch, &p) == MESHLM_OK);
    p.n_layer = n_layer, p.sliding_window = window, p.rope_theta = strtof(theta, NULL), p.seed = (uint64_t)seed;
    p.n_ctx_orig = n_ctx_orig, p.swa_pattern = swa_pattern;
    if (n_expert > 0) p.n_expert = n_expert, p.n_expert_used = n_used;
    p.type = type_id;
    model_f32 = type_id == MESHLM_TYPE_F32;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, arch);
    if (n_ctx_orig > 0)
        snprintf(label, label_cap, "%s (original context %d)", arch, n_ctx_orig);
    else if (swa_pattern < 0)
        snprintf(label, label_cap, "%s (every layer windowed)", arch);
    else if (n_expert > 0 || strstr(arch, "moe"))
        snprintf(label, label_cap, "%s (%d layers, %d experts)", arch, n_layer, n_expert ? n_expert : p.n_expert);
    else
        snprintf(label, label_cap, "%s", arch);
    if (strcmp(type, "F32")) snprintf(label + strlen(label), label_cap - strlen(label), ", %s", type);
    meshlm_model *m = NULL;
    if (meshlm_synth_write(&p, path) != MESHLM_OK || meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", arch, meshlm_last_error());
        return NULL;
    }
    check_same_as_command(arch, n_layer, window, theta, seed, n_ctx_orig, swa_pattern, n_expert, n_used, type, path,
                          dir);
    unlink(path);
    return m;
}

int main(void) {
    char dir[] = "/tmp/meshlm-llamacpp-XXXXXX";
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    FILE *f = fopen(MESHLM_SOURCE_DIR "/tests/fixtures/llamacpp.txt", "r");
    CHECK_MSG(f != NULL, "no fixture at %s", MESHLM_SOURCE_DIR "/tests/fixtures/llamacpp.txt");
    static char line[LINE];
    static prompt_case c;
    char label[64] = "", what[160];
    meshlm_model *m = NULL;
    int n_models = 0, n_prompts = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model ", 6)) {
            meshlm_model_free(m);
            m = make_model(line, dir, label, sizeof label);
            n_models++;
        } else if (!strncmp(line, "prompt ", 7)) {
            int32_t ids[MAX_PROMPT + 1];
            int n = read_ints(line, ids, MAX_PROMPT + 1);
            c.n = n - 1;
            CHECK(n > 1 && ids[0] == c.n);
            memcpy(c.ids, ids + 1, sizeof(int32_t) * (size_t)c.n);
        } else if (!strncmp(line, "greedy ", 7)) {
            int32_t ids[N_GEN + 1];
            CHECK(read_ints(line, ids, N_GEN + 1) == N_GEN + 1 && ids[0] == N_GEN);
            memcpy(c.greedy, ids + 1, sizeof c.greedy);
        } else if (!strncmp(line, "top3 ", 5)) {
            int got = sscanf(line, "top3 %d %lf %d %lf %d %lf", &c.top_id[0], &c.top_p[0], &c.top_id[1], &c.top_p[1],
                             &c.top_id[2], &c.top_p[2]);
            CHECK(got == 2 * N_TOP);
            if (!m) continue;
            /* {preset, options on top, mesh}; experts split two ways on a mesh */
            const char *opts[][3] = {{"generic", NULL, NULL},
                                     {"performance", NULL, NULL},
                                     {"performance", NULL, "2x2"},
                                     {"performance", "expert_parallel=on", "1x3"}};
            for (int o = 0; o < 4; o++) {
                if (o == 3 && !meshlm_model_n_experts(m)) continue;
                snprintf(what, sizeof what, "%s, %d-token prompt, %s%s%s%s%s", label, c.n, opts[o][0],
                         opts[o][1] ? " " : "", opts[o][1] ? opts[o][1] : "", opts[o][2] ? " " : "",
                         opts[o][2] ? opts[o][2] : "");
                check_prompt(m, &c, opts[o][0], opts[o][1], opts[o][2], model_f32, what);
            }
            n_prompts++;
        }
    }
    if (f) fclose(f);
    meshlm_model_free(m);
    rmdir(dir);
    printf("%d models, %d prompts checked against llama.cpp's outputs; probabilities at most %.2g apart\n",
           n_models, n_prompts, worst);
    if (n_steps) printf("quantized models: %d of %d later greedy ids as llama.cpp's\n", n_agree, n_steps);
    CHECK(n_models >= 6 && n_prompts >= 18);
    return t_done();
}

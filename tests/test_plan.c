/* The optimized tier against the generic one. Every preset and every single option switched
 * off the performance preset (or on, for the ones it leaves off) gives the same greedy text
 * as 1x1 generic: on 1x1 with bitwise equal logits (fusions reorder work, never arithmetic),
 * on 1x2 and 2x4 within the mesh tolerance (collectives sum in another order). The accuracy
 * preset (f32 activations) is held to a stated bound instead. Also: the plans have the
 * steps their options ask for, and count the bytes of weights a pass reads. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/hugemem.h"
#include "meshlm.h"
#include "model/forward.h"
#include "model/plan.h"
#include "t.h"
#include "t_synth.h"

#define TOL 1e-3 /* |logit difference| / (1 + |logit|), as test_mesh_forward */
enum { N_PROMPT = 9, N_GEN = 10 };

/* The ablations: each option of the performance preset switched the other way. */
static const char *const ABLATIONS[] = {"fuse_qkv=off", "fuse_w13=off", "fuse_rs=off", "fuse_ag=off",
                                        "ring=off",     "persistent=off", "stream=on", "fuse_qkv=off,fuse_w13=off"};
enum { N_ABL = sizeof ABLATIONS / sizeof ABLATIONS[0] };

typedef struct run_result {
    float *logits; /* after the prompt */
    int32_t ids[N_GEN];
} run_result;

static bool run(const meshlm_model *m, const char *mesh, const char *opt, const char *opt_set, const int32_t *prompt,
                run_result *out) {
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_ctx = 64;
    sp.n_threads = mesh ? 1 : 2;
    sp.sampler.temperature = 0.0f;
    sp.mesh = mesh;
    sp.full_logits = true;
    sp.opt = opt;
    sp.opt_set = opt_set;
    meshlm_session *s = NULL;
    int rc = meshlm_session_create(m, &sp, &s);
    CHECK_MSG(rc == MESHLM_OK, "%s %s %s: %s", mesh ? mesh : "1x1", opt, opt_set ? opt_set : "", meshlm_last_error());
    if (rc) return false;
    int V = meshlm_model_n_vocab(m);
    out->logits = malloc(sizeof(float) * (size_t)V);
    CHECK(meshlm_session_eval(s, prompt, N_PROMPT) == MESHLM_OK);
    memcpy(out->logits, meshlm_session_logits(s), sizeof(float) * (size_t)V);
    for (int i = 0; i < N_GEN; i++) {
        CHECK(meshlm_session_sample(s, &out->ids[i]) == MESHLM_OK);
        CHECK(meshlm_session_eval(s, &out->ids[i], 1) == MESHLM_OK);
    }
    meshlm_session_free(s);
    return true;
}

static double worst_rel(const float *a, const float *b, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (d > w) w = d;
    }
    return w;
}

static void compare(const meshlm_model *m, const char *label, const char *mesh, const char *opt, const char *set,
                    const int32_t *prompt, const run_result *ref) {
    run_result r;
    if (!run(m, mesh, opt, set, prompt, &r)) return;
    int V = meshlm_model_n_vocab(m);
    const char *where = mesh ? mesh : "1x1";
    if (!mesh)
        CHECK_MSG(memcmp(r.logits, ref->logits, sizeof(float) * (size_t)V) == 0, "%s 1x1 %s %s: logits not bitwise",
                  label, opt, set ? set : "");
    else
        CHECK_MSG(worst_rel(r.logits, ref->logits, V) <= TOL, "%s %s %s %s: logits differ by %.3g", label, where, opt,
                  set ? set : "", worst_rel(r.logits, ref->logits, V));
    CHECK_MSG(memcmp(r.ids, ref->ids, sizeof r.ids) == 0, "%s %s %s %s: greedy text differs", label, where, opt,
              set ? set : "");
    free(r.logits);
}

static void check_model(const char *path, const char *label) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return;
    }
    int V = meshlm_model_n_vocab(m);
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) prompt[i] = (int32_t)((i * 7919 + 11) % V);
    run_result ref;
    if (!run(m, NULL, "generic", NULL, prompt, &ref)) {
        meshlm_model_free(m);
        return;
    }
    const char *meshes[] = {NULL, "1x2", "2x4"};
    for (size_t k = 0; k < sizeof meshes / sizeof meshes[0]; k++) {
        if (meshes[k]) compare(m, label, meshes[k], "generic", NULL, prompt, &ref);
        compare(m, label, meshes[k], "performance", NULL, prompt, &ref);
        for (int a = 0; a < N_ABL; a++) compare(m, label, meshes[k], "performance", ABLATIONS[a], prompt, &ref);
    }
    /* f32 activations remove the int8 rounding of the quantized dots' inputs: a small,
     * stated change (none for float weights; up to 3.4% on these random-weight models),
     * measured as the repack test does. */
    run_result acc;
    if (run(m, NULL, "accuracy", NULL, prompt, &acc)) {
        double num = 0, den = 0;
        for (int v = 0; v < V; v++) num += fabs((double)acc.logits[v] - ref.logits[v]), den += fabs(ref.logits[v]);
        printf("%s: accuracy preset vs generic: mean |logit difference| / mean |logit| = %.4f\n", label, num / den);
        CHECK_MSG(num <= 0.05 * den, "%s: accuracy preset moved logits by %.4f of their size", label, num / den);
        free(acc.logits);
    }
    free(ref.logits);
    meshlm_model_free(m);
}

static int count_op(const meshlm_plan *p, meshlm_op op) {
    int n = 0;
    for (int i = 0; i < p->n_steps; i++) n += p->steps[i].op == op;
    return n;
}

/* The plans hold the steps their options name, and a pass reads every matrix once. */
static void check_plans(const char *path) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) return;
    int L = m->hp.n_layer;
    meshlm_opts gen = meshlm_opts_preset(MESHLM_PRESET_GENERIC), perf = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    meshlm_shard one, corner;
    CHECK(meshlm_shard_build(m, 1, 1, 1, 0, 0, &one) == MESHLM_OK);
    meshlm_plan g, p;
    CHECK(meshlm_plan_build(m, &one, MESHLM_MODE_DECODE, 1, &gen, &g) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &one, MESHLM_MODE_DECODE, 1, &perf, &p) == MESHLM_OK);
    CHECK(count_op(&g, MESHLM_OP_MATMUL) == 7 * L && count_op(&g, MESHLM_OP_LM_HEAD) == 1);
    CHECK(count_op(&g, MESHLM_OP_SILU_MUL) == L);
    CHECK(count_op(&g, MESHLM_OP_QKV_ROPE) == 0 && count_op(&g, MESHLM_OP_MATMUL_W13) == 0);
    CHECK(count_op(&p, MESHLM_OP_QKV_ROPE) == L && count_op(&p, MESHLM_OP_MATMUL_W13) == L);
    CHECK(count_op(&p, MESHLM_OP_SILU_MUL) == 0 && count_op(&p, MESHLM_OP_ROPE_KV) == 0);
    CHECK(g.weight_bytes == p.weight_bytes && g.weight_bytes == meshlm_model_weight_bytes(m));
    CHECK(count_op(&g, MESHLM_OP_ALL_REDUCE) == 0);
    meshlm_plan_free(&g), meshlm_plan_free(&p);
    /* A 2x4 device: axis A (rows, 2) splits heads, axis B (4 columns) the embedding width. */
    CHECK(meshlm_shard_build(m, 0, 2, 4, 1, 3, &corner) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &corner, MESHLM_MODE_PREFILL, 8, &gen, &g) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &corner, MESHLM_MODE_PREFILL, 8, &perf, &p) == MESHLM_OK);
    /* Generic: q, k, v, gate, up reduced over B, WO and W2 over A, and the embedding and logits. */
    CHECK_MSG(count_op(&g, MESHLM_OP_ALL_REDUCE) == 7 * L + 2, "generic 2x4: %d all-reduces",
              count_op(&g, MESHLM_OP_ALL_REDUCE));
    CHECK(count_op(&g, MESHLM_OP_GATHER_CONCAT) == 2 * L && count_op(&g, MESHLM_OP_GATHER_ADD) == 0);
    /* Performance: one all-reduce for q, k, v; W1/W3 with the reduce-scatter fused in; gathers added. */
    CHECK_MSG(count_op(&p, MESHLM_OP_ALL_REDUCE) == 3 * L + 2, "performance 2x4: %d all-reduces",
              count_op(&p, MESHLM_OP_ALL_REDUCE));
    CHECK(count_op(&p, MESHLM_OP_MATMUL_QKV) == L && count_op(&p, MESHLM_OP_MATMUL_W13_RS) == L);
    CHECK(count_op(&p, MESHLM_OP_GATHER_ADD) == 2 * L && count_op(&p, MESHLM_OP_GATHER_CONCAT) == 0);
    meshlm_plan_free(&p);
    /* With the attention split over B: q, k, v reduce-scattered to their heads, heads gathered
     * before WO; only WO, W2, the embedding and the logits all-reduce. */
    int64_t kv_all = corner.kv_heads.hi - corner.kv_heads.lo;
    CHECK(meshlm_shard_split_attention(m, &corner) == MESHLM_OK && corner.split_att);
    CHECK(corner.att_kv.hi - corner.att_kv.lo <= kv_all && corner.att_heads.lo >= corner.heads.lo);
    CHECK(meshlm_plan_build(m, &corner, MESHLM_MODE_DECODE, 8, &perf, &p) == MESHLM_OK);
    CHECK(count_op(&p, MESHLM_OP_QKV_RS) == L && count_op(&p, MESHLM_OP_GATHER_HEADS) == L);
    CHECK_MSG(count_op(&p, MESHLM_OP_ALL_REDUCE) == 2 * L + 2, "split 2x4: %d all-reduces",
              count_op(&p, MESHLM_OP_ALL_REDUCE));
    CHECK(p.steps[2].op == MESHLM_OP_RMSNORM && p.steps[3].op == MESHLM_OP_QKV_RS && p.steps[3].pipelined);
    meshlm_plan_free(&g), meshlm_plan_free(&p);
    meshlm_shard_free(&one), meshlm_shard_free(&corner);

    /* Without persistent buffers each step allocates its own; with them, none. */
    meshlm_forward_buf fb;
    gen.persistent = false;
    CHECK(meshlm_forward_buf_init(&fb, m, 4, 32, 1, &gen) == MESHLM_OK);
    CHECK(fb.exec.arena == NULL);
    meshlm_forward_buf_free(&fb);
    CHECK(meshlm_forward_buf_init(&fb, m, 4, 32, 1, &perf) == MESHLM_OK);
    CHECK(fb.exec.arena != NULL && fb.exec.arena_floats == meshlm_plan_arena_floats(&fb.plan[1], 4));
    meshlm_forward_buf_free(&fb);
    meshlm_model_free(m);
}

/* The gemma families' parts as steps: GeGLU after the W1/W3 matmul (never in its silu epilogue), a
 * post-norm on the whole rows after each row-parallel matrix (so a gather is never fused
 * with the residual add), and the logits soft-capped once. */
static void check_gemma_plans(const char *path) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) return;
    int L = m->hp.n_layer;
    meshlm_opts gen = meshlm_opts_preset(MESHLM_PRESET_GENERIC), perf = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    meshlm_shard one, corner;
    meshlm_plan g, p;
    CHECK(meshlm_shard_build(m, 1, 1, 1, 0, 0, &one) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &one, MESHLM_MODE_DECODE, 1, &gen, &g) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &one, MESHLM_MODE_DECODE, 1, &perf, &p) == MESHLM_OK);
    for (int i = 0; i < 2; i++) {
        const meshlm_plan *x = i ? &p : &g;
        CHECK(count_op(x, MESHLM_OP_GELU_MUL) == L && count_op(x, MESHLM_OP_SILU_MUL) == 0);
        CHECK(count_op(x, MESHLM_OP_RMSNORM) == 4 * L && count_op(x, MESHLM_OP_SOFTCAP) == 1);
    }
    CHECK(count_op(&p, MESHLM_OP_MATMUL_W13) == L);
    for (int i = 0; i < p.n_steps; i++)
        if (p.steps[i].op == MESHLM_OP_MATMUL_W13) CHECK(!p.steps[i].epilogue);
    meshlm_plan_free(&g), meshlm_plan_free(&p);
    CHECK(meshlm_shard_build(m, 0, 2, 4, 1, 3, &corner) == MESHLM_OK);
    CHECK(meshlm_plan_build(m, &corner, MESHLM_MODE_PREFILL, 8, &perf, &p) == MESHLM_OK);
    CHECK(count_op(&p, MESHLM_OP_GATHER_ADD) == 0 && count_op(&p, MESHLM_OP_GATHER_CONCAT) == 2 * L);
    CHECK(count_op(&p, MESHLM_OP_MATMUL_W13_RS) == L && count_op(&p, MESHLM_OP_SOFTCAP) == 1);
    meshlm_plan_free(&p);
    meshlm_shard_free(&one), meshlm_shard_free(&corner);
    meshlm_model_free(m);
}

/* A batch under each preset: every sequence's greedy tokens equal the generic 1x1 batch's,
 * prompts of several lengths sharing steps with 5-token prefill chunks. */
static void batch_tokens(const meshlm_model *m, const char *mesh, const char *opt, int32_t out[6][N_GEN]) {
    meshlm_batch_params bp = meshlm_batch_defaults();
    bp.n_batch = 4, bp.n_ctx = 64, bp.n_chunk = 5, bp.n_threads = 2, bp.mesh = mesh, bp.opt = opt;
    meshlm_batch *b = NULL;
    CHECK_MSG(meshlm_batch_create(m, &bp, &b) == MESHLM_OK, "batch %s %s: %s", mesh ? mesh : "1x1", opt,
              meshlm_last_error());
    if (!b) return;
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    sp.temperature = 0.0f;
    int V = meshlm_model_n_vocab(m);
    for (int i = 0; i < 6; i++) {
        int32_t prompt[24], id;
        for (int t = 0; t < 3 + 4 * i; t++) prompt[t] = (int32_t)((i * 131 + t * 7919 + 3) % V);
        CHECK(meshlm_batch_submit(b, prompt, 3 + 4 * i, &sp, N_GEN, &id) == MESHLM_OK);
    }
    int32_t left = 1;
    while (left > 0)
        if (meshlm_batch_step(b, &left) != MESHLM_OK) {
            CHECK_MSG(0, "batch step: %s", meshlm_last_error());
            break;
        }
    for (int i = 0; i < 6; i++) {
        meshlm_batch_result r;
        memset(out[i], 0xff, sizeof out[i]);
        if (meshlm_batch_result_get(b, i, &r) == MESHLM_OK)
            memcpy(out[i], r.tokens, sizeof(int32_t) * (size_t)(r.n_gen < N_GEN ? r.n_gen : N_GEN));
    }
    meshlm_batch_free(b);
}

static void check_batches(const char *path) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) return;
    int32_t ref[6][N_GEN], got[6][N_GEN];
    batch_tokens(m, NULL, "generic", ref);
    const char *meshes[] = {NULL, "1x2"}, *opts[] = {"generic", "performance"};
    for (int k = 0; k < 2; k++)
        for (int o = 0; o < 2; o++) {
            if (!meshes[k] && o == 0) continue;
            batch_tokens(m, meshes[k], opts[o], got);
            CHECK_MSG(memcmp(got, ref, sizeof ref) == 0, "batch %s %s: tokens differ from the generic 1x1 batch",
                      meshes[k] ? meshes[k] : "1x1", opts[o]);
        }
    meshlm_model_free(m);
}

/* The huge-page copy moves every matrix a pass reads and changes no logit. */
static void check_hugepages(const char *path) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) return;
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) prompt[i] = (int32_t)((i * 31 + 5) % meshlm_model_n_vocab(m));
    run_result before, after;
    const void *w2 = m->layers[0].w2.data;
    bool ok = run(m, NULL, "generic", NULL, prompt, &before);
    CHECK(meshlm_model_prepare(m, "generic", "hugepages=on") == MESHLM_OK && m->huge != NULL);
    const char *lo = m->huge, *hi = lo + m->huge_bytes, *p = m->layers[0].w2.data;
    CHECK(p != w2 && p >= lo && p < hi && (const char *)m->output.data >= lo && (const char *)m->output.data < hi);
    if (ok && run(m, NULL, "generic", NULL, prompt, &after)) {
        CHECK(memcmp(before.logits, after.logits, sizeof(float) * (size_t)meshlm_model_n_vocab(m)) == 0);
        CHECK(memcmp(before.ids, after.ids, sizeof before.ids) == 0);
        free(after.logits);
    }
    if (ok) free(before.logits);
    meshlm_model_free(m);
}

/* Weight buffers: whole and writable at every size; from 2 MiB up on huge-page boundaries
 * (the model's copy and the panel copies rely on it to be backed by huge pages at all). */
static void check_alloc_weights(void) {
    const size_t sizes[] = {0, 1, 4096, MESHLM_HUGE_PAGE - 1, MESHLM_HUGE_PAGE, 5 * (size_t)MESHLM_HUGE_PAGE + 123};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = meshlm_alloc_weights(sizes[i]);
        CHECK_MSG(p != NULL, "meshlm_alloc_weights(%zu) failed", sizes[i]);
        if (!p) continue;
        if (sizes[i] >= MESHLM_HUGE_PAGE)
            CHECK_MSG((uintptr_t)p % MESHLM_HUGE_PAGE == 0, "%zu bytes at %p: not 2 MiB aligned", sizes[i], (void *)p);
        memset(p, 0xa5, sizes[i]);
        if (sizes[i]) CHECK(p[0] == 0xa5 && p[sizes[i] - 1] == 0xa5);
        free(p);
    }
}

/* Bad option lists are clear errors naming the item. */
static void check_errors(const char *path) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) return;
    meshlm_session_params sp = meshlm_session_defaults();
    meshlm_session *s = NULL;
    sp.opt = "fastest";
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_ERR_INVALID_ARG && !s);
    CHECK(strstr(meshlm_last_error(), "fastest") != NULL);
    sp.opt = NULL;
    sp.opt_set = "fuse_qkv=maybe";
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_ERR_INVALID_ARG && !s);
    CHECK(strstr(meshlm_last_error(), "maybe") != NULL);
    CHECK(meshlm_model_prepare(m, NULL, "w13=q9_9") == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "q9_9") != NULL);
    meshlm_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/meshlm-plan-XXXXXX", path[256];
    check_alloc_weights();
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    struct { const char *arch; int type; } cases[] = {
        {"llama", MESHLM_TYPE_Q8_0},
        {"qwen2", MESHLM_TYPE_F32},
        {"qwen3", MESHLM_TYPE_Q4_K},
        {"llama", MESHLM_TYPE_F16},
        {"gemma2", MESHLM_TYPE_Q8_0},
        {"gemma2", MESHLM_TYPE_F32},
        {"gemma3", MESHLM_TYPE_Q8_0},
        /* F16: f32 activations, so meshes of four or more match the 1x1 run within TOL
         * (with int8 ones this random model sits on a rounding tie that their reduction
         * order flips) */
        {"phi3", MESHLM_TYPE_F16},
        {"smollm3", MESHLM_TYPE_Q8_0},
        {"qwen3moe", MESHLM_TYPE_Q8_0},
        {"gpt-oss", MESHLM_TYPE_Q8_0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char label[64];
        if (!t_synth_tiny(dir, cases[c].arch, cases[c].type, path, sizeof path, label, sizeof label)) continue;
        check_model(path, label);
        if (c == 0) check_plans(path), check_errors(path), check_batches(path), check_hugepages(path);
        if (c == 4 || c == 6) check_gemma_plans(path), check_batches(path);
        if (c == 7) check_batches(path);
        unlink(path);
    }
    rmdir(dir);
    const char *stories = MESHLM_SHARED_DIR "/models/stories260K.gguf";
    if (access(stories, R_OK) == 0)
        check_model(stories, "stories260K");
    else
        printf("note: stories260K.gguf absent: synthetic models only\n");
    return t_done();
}

/* Repacking a loaded model by tensor class (model/repack.h). A synthetic F32 model (the
 * "tiny" llama shape, uniform random weights) is repacked and its logits over 256 decode
 * positions are compared with the original's: mean |logit difference| relative to the
 * mean |logit|, and how often the top-1 token agrees. Measured (AVX2 path) and bound:
 *   all classes F16    0.00097, 100%     bound <= 3e-3, >= 97%
 *   all classes Q8_0   0.0271,  95.7%    bound <= 0.06, >= 88%   (int8 activations)
 *   w13 Q4_0           0.122,   81.6%    bound <= 0.25, >= 65%
 *   all classes Q4_0   0.307,   48.8%    bound <= 0.6,  >= 35%
 * and, once the kernels compute the block floats (skipped with a message before; measured
 * with quant.c dispatching them):
 *   all classes BFP8   0.0220,  97.7%    bound <= 0.06, >= 90%
 *   w13 BFP4           0.135,   75.8%    bound <= 0.3,  >= 60%
 *   the seed's set     0.137,   76.6%    bound <= 0.3,  >= 60%
 *   (wqkv, wo, w2, output BFP8; w13 BFP4)
 * Random weights make logits flat, so top-1 flips easily; the bounds guard against a
 * broken repack, which gives near 0% agreement. Exact checks: F32 -> Q8_0 for every class
 * equals the Q8_0 synthetic model of the same seed bit for bit (synth quantizes the same
 * f32 rows); a repack to the type already held is a no-op; a repacked model on 2x1 and 1x2
 * meshes agrees with 1x1. Then the spec parser's and the repacker's errors, and
 * all-or-nothing per class on a bad row length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/model.h"
#include "model/repack.h"
#include "model/synth.h"
#include "t.h"

enum { N_POS = 256 };

static char dir[64];

static const char *path_in(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static int32_t tokens[N_POS];

static meshlm_model *load(const char *name) {
    meshlm_model *m = NULL;
    CHECK_MSG(meshlm_model_load(path_in(name), &m) == MESHLM_OK, "%s: %s", name, meshlm_last_error());
    return m;
}

/* Logits of every position, one decode step at a time; n_vocab floats per position. */
static float *logits_of(const meshlm_model *m, const char *mesh) {
    int32_t V = meshlm_model_n_vocab(m);
    float *out = calloc((size_t)N_POS * (size_t)V, sizeof *out);
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_ctx = N_POS;
    sp.n_threads = 1;
    sp.mesh = mesh;
    sp.full_logits = true;
    meshlm_session *s = NULL;
    if (meshlm_session_create(m, &sp, &s) != MESHLM_OK) {
        CHECK_MSG(0, "session: %s", meshlm_last_error());
        return out;
    }
    for (int t = 0; t < N_POS; t++) {
        if (meshlm_session_eval(s, &tokens[t], 1) != MESHLM_OK) {
            CHECK_MSG(0, "eval at %d: %s", t, meshlm_last_error());
            break;
        }
        memcpy(out + (size_t)t * (size_t)V, meshlm_session_logits(s), (size_t)V * sizeof *out);
    }
    meshlm_session_free(s);
    return out;
}

typedef struct diff {
    double rel_mean, top1;
} diff;

static int argmax(const float *v, int32_t n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static diff compare(const float *a, const float *b, int32_t V) {
    double sum_d = 0, sum_a = 0;
    int agree = 0;
    for (int t = 0; t < N_POS; t++) {
        const float *x = a + (size_t)t * (size_t)V, *y = b + (size_t)t * (size_t)V;
        for (int32_t i = 0; i < V; i++) {
            sum_d += fabs((double)x[i] - y[i]);
            sum_a += fabs((double)x[i]);
        }
        agree += argmax(x, V) == argmax(y, V);
    }
    return (diff){sum_d / (sum_a > 0 ? sum_a : 1), (double)agree / N_POS};
}

/* Repacks a fresh copy of f32.gguf by spec and compares it with the original's logits. */
static void check_spec(const float *base, const char *spec, double max_rel, double min_top1) {
    meshlm_model *m = load("f32.gguf");
    if (!m) return;
    meshlm_repack_spec rs;
    int rc = meshlm_repack_parse(spec, &rs);
    if (rc == MESHLM_OK) rc = meshlm_repack(m, &rs);
    CHECK_MSG(rc == MESHLM_OK, "%s: %s", spec, meshlm_last_error());
    if (rc == MESHLM_OK) {
        int32_t V = meshlm_model_n_vocab(m);
        float *got = logits_of(m, NULL);
        diff d = compare(base, got, V);
        printf("%-44s mean |dlogit| / mean |logit| = %.5f, top-1 agreement %.1f%%\n", spec, d.rel_mean,
               100 * d.top1);
        CHECK_MSG(d.rel_mean <= max_rel && d.top1 >= min_top1, "%s: %.5f (max %g), top-1 %.3f (min %g)", spec,
                  d.rel_mean, max_rel, d.top1, min_top1);
        free(got);
    }
    meshlm_model_free(m);
}

static bool same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

static void test_exact(const float *base, int32_t V) {
    size_t n = (size_t)N_POS * (size_t)V;
    /* Every class to Q8_0 gives the synthetic Q8_0 model itself. */
    meshlm_model *m = load("f32.gguf"), *q8 = load("q8.gguf");
    if (!m || !q8) return;
    meshlm_repack_spec rs;
    CHECK(meshlm_repack_parse("wqkv=q8_0, wo=q8_0, w13=q8_0, w2=q8_0, embd=q8_0, output=q8_0", &rs) == MESHLM_OK);
    CHECK_MSG(meshlm_repack(m, &rs) == MESHLM_OK, "%s", meshlm_last_error());
    float *a = logits_of(m, NULL), *b = logits_of(q8, NULL);
    CHECK_MSG(same_bits(a, b, n), "F32 repacked to Q8_0 differs from the Q8_0 synthetic model");
    /* The repacked model on meshes (shards slice the model's own buffers). Q8_0 matmuls
     * round activations to int8, so the mesh's reassociated f32 sums can round a tie the
     * other way and carry it through the KV cache: measured 0.0036 over 256 positions. */
    const char *meshes[] = {"2x1", "1x2"};
    for (int i = 0; i < 2; i++) {
        float *c = logits_of(m, meshes[i]);
        diff d = compare(a, c, V);
        CHECK_MSG(d.rel_mean <= 1e-2 && d.top1 >= 0.99, "mesh %s: %.3g, top-1 %.3f", meshes[i], d.rel_mean, d.top1);
        free(c);
    }
    free(a);
    free(b);
    meshlm_model_free(m);
    meshlm_model_free(q8);

    /* To the type held already: nothing changes, nothing is allocated. */
    m = load("f32.gguf");
    if (!m) return;
    for (int c = 0; c < MESHLM_WCLASS_COUNT; c++)
        CHECK(meshlm_repack_class(m, (meshlm_wclass)c, MESHLM_TYPE_F32) == MESHLM_OK);
    a = logits_of(m, NULL);
    CHECK(same_bits(a, base, n));
    free(a);
    meshlm_model_free(m);
}

static void expect_parse_error(const char *spec, const char *want) {
    meshlm_repack_spec rs;
    int rc = meshlm_repack_parse(spec, &rs);
    CHECK_MSG(rc == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), want), "'%s': rc %d, '%s' (want '%s')",
              spec, rc, meshlm_last_error(), want);
    for (int c = 0; c < MESHLM_WCLASS_COUNT; c++) CHECK(rs.type[c] == -1);
}

static void test_parse(void) {
    meshlm_repack_spec rs;
    CHECK(meshlm_repack_parse("w13=bfp4,wqkv=bfp8", &rs) == MESHLM_OK);
    CHECK(rs.type[MESHLM_WCLASS_W13] == MESHLM_TYPE_BFP4 && rs.type[MESHLM_WCLASS_WQKV] == MESHLM_TYPE_BFP8);
    CHECK(rs.type[MESHLM_WCLASS_WO] == -1 && rs.type[MESHLM_WCLASS_EMBD] == -1);
    CHECK(meshlm_repack_parse(" W2 = Q4_0 , output=f16 ", &rs) == MESHLM_OK);
    CHECK(rs.type[MESHLM_WCLASS_W2] == MESHLM_TYPE_Q4_0 && rs.type[MESHLM_WCLASS_OUTPUT] == MESHLM_TYPE_F16);
    CHECK(meshlm_repack_parse("", &rs) == MESHLM_OK && rs.type[0] == -1);
    expect_parse_error("w4=q8_0", "unknown tensor class 'w4' (classes: wqkv, wo, w13, w2, embd, output)");
    expect_parse_error("w13=bfp3", "unknown type 'bfp3' for w13");
    expect_parse_error("w13=q4_k", "Q4_K is not a repack target for w13");
    expect_parse_error("w13", "item 'w13' has no '='");
    expect_parse_error("w13=q8_0,,wo=f16", "empty item");
    expect_parse_error("w13=q8_0,", "empty item");
    expect_parse_error("wo=f16,wo=bf16", "class wo is given twice");
    expect_parse_error("wqkvwqkvwqkvwqkvwqkv=f16", "unknown tensor class 'wqkvwqkvwqkvwqkvwqkv'");
    expect_parse_error("wo=", "unknown type '' for wo");
    CHECK(meshlm_repack_parse(NULL, &rs) == MESHLM_ERR_INVALID_ARG);
    CHECK(strcmp(meshlm_wclass_name(MESHLM_WCLASS_W13), "w13") == 0 && meshlm_wclass_name(6) == NULL);
    CHECK(meshlm_repack_target(MESHLM_TYPE_BFP4) && !meshlm_repack_target(MESHLM_TYPE_Q5_0));
}

/* n_ff = 336 is a multiple of 16 but not 32: W2's rows do not fit Q4_0 blocks. */
static void test_errors(void) {
    meshlm_model *m = load("ff336.gguf");
    if (!m) return;
    int rc = meshlm_repack_class(m, MESHLM_WCLASS_W2, MESHLM_TYPE_Q4_0);
    CHECK_MSG(rc == MESHLM_ERR_INVALID_ARG &&
                  strstr(meshlm_last_error(),
                         "blk.0.ffn_down.weight has rows of 336 values, not a multiple of the Q4_0 block (32)"),
              "rc %d: %s", rc, meshlm_last_error());
    rc = meshlm_repack_class(m, MESHLM_WCLASS_W13, MESHLM_TYPE_Q4_K);
    CHECK_MSG(rc == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "Q4_K is not a repack target"), "%s",
              meshlm_last_error());
    rc = meshlm_repack_class(m, (meshlm_wclass)9, MESHLM_TYPE_F16);
    CHECK(rc == MESHLM_ERR_INVALID_ARG);
    /* All or nothing: a spec whose second class fails leaves the first repacked and the
     * failing one untouched. */
    meshlm_repack_spec rs;
    CHECK(meshlm_repack_parse("w13=q4_0,w2=q4_0", &rs) == MESHLM_OK);
    CHECK(meshlm_repack(m, &rs) == MESHLM_ERR_INVALID_ARG);
    for (int il = 0; il < m->hp.n_layer; il++) {
        CHECK(m->layers[il].w1.type == MESHLM_TYPE_Q4_0 && m->layers[il].w3.type == MESHLM_TYPE_Q4_0);
        CHECK(m->layers[il].w2.type == MESHLM_TYPE_F32);
    }
    meshlm_model_free(m);
    /* The block floats: refused with a clear message until the kernels compute them, after
     * that 336 (21 blocks of 16) is fine. */
    m = load("ff336.gguf");
    if (!m) return;
    rc = meshlm_repack_class(m, MESHLM_WCLASS_W2, MESHLM_TYPE_BFP8);
    if (meshlm_type_supported(MESHLM_TYPE_BFP8))
        CHECK_MSG(rc == MESHLM_OK, "%s", meshlm_last_error());
    else
        CHECK_MSG(rc == MESHLM_ERR_UNSUPPORTED && strstr(meshlm_last_error(), "BFP8 is not computed with"), "%s",
                  meshlm_last_error());
    meshlm_model_free(m);
}

static bool write_model(const char *name, int type, int32_t n_ff) {
    meshlm_synth_params p;
    if (meshlm_synth_preset("tiny", "llama", &p) != MESHLM_OK) return false;
    p.type = type;
    p.seed = 7;
    p.n_ff = n_ff;
    int rc = meshlm_synth_write(&p, path_in(name));
    CHECK_MSG(rc == MESHLM_OK, "%s: %s", name, meshlm_last_error());
    return rc == MESHLM_OK;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/meshlm-repack-XXXXXX");
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    test_parse();
    if (!write_model("f32.gguf", MESHLM_TYPE_F32, 512) || !write_model("q8.gguf", MESHLM_TYPE_Q8_0, 512) ||
        !write_model("ff336.gguf", MESHLM_TYPE_F32, 336))
        return t_done();
    uint32_t s = 12345;
    meshlm_model *m = load("f32.gguf");
    if (!m) return t_done();
    int32_t V = meshlm_model_n_vocab(m);
    for (int t = 0; t < N_POS; t++) {
        s = s * 1664525u + 1013904223u;
        tokens[t] = (int32_t)((s >> 8) % (uint32_t)V);
    }
    float *base = logits_of(m, NULL);
    meshlm_model_free(m);

    test_exact(base, V);
    test_errors();
    check_spec(base, "wqkv=f16,wo=f16,w13=f16,w2=f16,embd=f16,output=f16", 3e-3, 0.97);
    check_spec(base, "wqkv=q8_0,wo=q8_0,w13=q8_0,w2=q8_0,embd=q8_0,output=q8_0", 0.06, 0.88);
    check_spec(base, "w13=q4_0", 0.25, 0.65);
    check_spec(base, "wqkv=q4_0,wo=q4_0,w13=q4_0,w2=q4_0,embd=q4_0,output=q4_0", 0.6, 0.35);
    if (meshlm_type_supported(MESHLM_TYPE_BFP8) && meshlm_type_supported(MESHLM_TYPE_BFP4)) {
        check_spec(base, "wqkv=bfp8,wo=bfp8,w13=bfp8,w2=bfp8,embd=bfp8,output=bfp8", 0.06, 0.90);
        check_spec(base, "w13=bfp4", 0.3, 0.6);
        check_spec(base, "wqkv=bfp8,wo=bfp8,w13=bfp4,w2=bfp8,output=bfp8", 0.3, 0.6);
    } else
        printf("SKIP part: BFP8/BFP4 are not computed with yet (quant.c does not dispatch them): the seed's "
               "formats are not run through the forward\n");
    free(base);
    unlink(path_in("f32.gguf"));
    unlink(path_in("q8.gguf"));
    unlink(path_in("ff336.gguf"));
    rmdir(dir);
    return t_done();
}

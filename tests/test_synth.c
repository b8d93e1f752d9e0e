/* Synthetic models: every key and tensor llama.cpp's loader needs, per arch and type;
 * determinism; sane weight statistics; the synthetic vocabulary; clear failures. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"
#include "t.h"
#include "t_synth_check.h"

static int64_t arch_int(const meshlm_gguf *g, const char *arch, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return key_int(g, k);
}

/* The tensors llama.cpp creates for each arch, with its shapes (ne[0] = row length). */
static int check_tensors(const meshlm_gguf *g, const meshlm_synth_params *p) {
    int64_t e = p->n_embd, hd = p->head_dim ? p->head_dim : e / p->n_head;
    int64_t q = p->n_head * hd, kv = p->n_head_kv * hd;
    bool qwen2 = !strcmp(p->arch, "qwen2") || !strcmp(p->arch, "qwen2moe"), gemma3 = !strcmp(p->arch, "gemma3");
    bool qk_norm = !strcmp(p->arch, "qwen3") || !strcmp(p->arch, "qwen3moe") || gemma3;
    bool gemma = gemma3 || !strcmp(p->arch, "gemma2"), phi3 = !strcmp(p->arch, "phi3");
    int64_t x = p->n_expert, fx = p->n_ff_exp ? p->n_ff_exp : p->n_ff, sh = p->n_ff_shexp;
    int m = p->type, f = MESHLM_TYPE_F32, n = 0;
    check_tensor(g, "token_embd.weight", m, e, p->n_vocab), n++;
    for (int i = 0; i < p->n_layer; i++) {
        char name[64];
#define T3(what, type, a, b, c) \
    (snprintf(name, sizeof name, "blk.%d." what, i), check_tensor3(g, name, type, a, b, c), n++)
#define T(what, type, a, b) T3(what, type, a, b, 1)
#define ABSENT(what)                                                                \
    do {                                                                            \
        snprintf(name, sizeof name, "blk.%d." what, i);                             \
        CHECK_MSG(!meshlm_gguf_find_tensor(g, name), "%s: should be absent", name); \
    } while (0)
        T("attn_norm.weight", f, e, 1);
        T("attn_output.weight", m, q, e);
        T("ffn_norm.weight", f, e, 1);
        if (phi3) {
            /* q, k, v rows in one tensor; gate then up rows in one */
            T("attn_qkv.weight", m, e, q + 2 * kv);
            T("ffn_up.weight", m, e, 2 * (int64_t)p->n_ff);
            T("ffn_down.weight", m, p->n_ff, e);
        } else {
            T("attn_q.weight", m, e, q);
            T("attn_k.weight", m, e, kv);
            T("attn_v.weight", m, e, kv);
        }
        if (x) {
            /* llama.cpp's converter's layout: an F32 router, the experts stacked */
            T("ffn_gate_inp.weight", f, e, x);
            T3("ffn_gate_exps.weight", m, e, fx, x);
            T3("ffn_up_exps.weight", m, e, fx, x);
            T3("ffn_down_exps.weight", m, fx, e, x);
            ABSENT("ffn_gate.weight");
            ABSENT("ffn_up.weight");
            ABSENT("ffn_down.weight");
        } else if (!phi3) {
            T("ffn_gate.weight", m, e, p->n_ff);
            T("ffn_up.weight", m, e, p->n_ff);
            T("ffn_down.weight", m, p->n_ff, e);
        }
        if (sh) {
            /* the shared expert's gate is a vector */
            T("ffn_gate_inp_shexp.weight", f, e, 1);
            T("ffn_gate_shexp.weight", m, e, sh);
            T("ffn_up_shexp.weight", m, e, sh);
            T("ffn_down_shexp.weight", m, sh, e);
        } else {
            ABSENT("ffn_gate_inp_shexp.weight");
        }
        if (qwen2) {
            T("attn_q.bias", f, q, 1);
            T("attn_k.bias", f, kv, 1);
            T("attn_v.bias", f, kv, 1);
        }
        if (qk_norm) {
            T("attn_q_norm.weight", f, hd, 1);
            T("attn_k_norm.weight", f, hd, 1);
        }
        if (gemma) {
            T("post_attention_norm.weight", f, e, 1);
            T("post_ffw_norm.weight", f, e, 1);
        }
#undef T
#undef T3
#undef ABSENT
    }
    check_tensor(g, "output_norm.weight", f, e, 1), n++;
    if (p->tied_output)
        CHECK(meshlm_gguf_find_tensor(g, "output.weight") == NULL);
    else
        check_tensor(g, "output.weight", m, e, p->n_vocab), n++;
    if (p->rope_freqs) check_tensor(g, "rope_freqs.weight", f, hd / 2, 1), n++;
    if (phi3) {
        check_tensor(g, "rope_factors_long.weight", f, hd / 2, 1), n++;
        check_tensor(g, "rope_factors_short.weight", f, hd / 2, 1), n++;
    }
    return n;
}

static void check_keys(const meshlm_gguf *g, const meshlm_synth_params *p) {
    const char *a = p->arch;
    CHECK(str_is(g, "general.architecture", a));
    CHECK(meshlm_gguf_find_key(g, "general.name") >= 0);
    CHECK(key_int(g, "general.file_type") >= 0);
    CHECK(arch_int(g, a, "context_length") == p->n_ctx);
    CHECK(arch_int(g, a, "embedding_length") == p->n_embd);
    CHECK(arch_int(g, a, "block_count") == p->n_layer);
    CHECK(arch_int(g, a, "feed_forward_length") == p->n_ff);
    CHECK(arch_int(g, a, "attention.head_count") == p->n_head);
    CHECK(arch_int(g, a, "attention.head_count_kv") == p->n_head_kv);
    CHECK(arch_int(g, a, "vocab_size") == p->n_vocab);
    int64_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    CHECK(arch_int(g, a, "rope.dimension_count") == hd);
    if (!strcmp(a, "qwen3") || !strcmp(a, "qwen3moe") || !strcmp(a, "gemma2") || !strcmp(a, "gemma3")) {
        CHECK(arch_int(g, a, "attention.key_length") == hd);
        CHECK(arch_int(g, a, "attention.value_length") == hd);
    }
    char k[128];
    bool qwen_moe = !strcmp(a, "qwen3moe") || !strcmp(a, "qwen2moe");
    if (p->n_expert) {
        CHECK(arch_int(g, a, "expert_count") == p->n_expert);
        CHECK(arch_int(g, a, "expert_used_count") == p->n_expert_used);
    }
    /* llama's experts are feed_forward_length wide: it has no key of their own */
    snprintf(k, sizeof k, "%s.expert_feed_forward_length", a);
    if (qwen_moe)
        CHECK(arch_int(g, a, "expert_feed_forward_length") == (p->n_ff_exp ? p->n_ff_exp : p->n_ff));
    else
        CHECK(meshlm_gguf_find_key(g, k) < 0);
    snprintf(k, sizeof k, "%s.expert_shared_feed_forward_length", a);
    if (p->n_ff_shexp)
        CHECK(arch_int(g, a, "expert_shared_feed_forward_length") == p->n_ff_shexp);
    else
        CHECK(meshlm_gguf_find_key(g, k) < 0);
    snprintf(k, sizeof k, "%s.expert_count", a);
    if (!p->n_expert) CHECK(meshlm_gguf_find_key(g, k) < 0);
    double v;
    if (!strcmp(a, "gemma2")) {
        CHECK(arch_int(g, a, "attention.sliding_window") == (p->sliding_window ? p->sliding_window : 4096));
        snprintf(k, sizeof k, "%s.attn_logit_softcapping", a);
        CHECK(meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v == 50.0);
        snprintf(k, sizeof k, "%s.final_logit_softcapping", a);
        CHECK(meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v == 30.0);
    }
    if (!strcmp(a, "gemma3")) {
        /* llama.cpp's gemma3 has no attention cap, and a final one only when stated */
        CHECK(arch_int(g, a, "attention.sliding_window") == (p->sliding_window ? p->sliding_window : 512));
        snprintf(k, sizeof k, "%s.attn_logit_softcapping", a);
        CHECK(meshlm_gguf_find_key(g, k) < 0);
        snprintf(k, sizeof k, "%s.final_logit_softcapping", a);
        CHECK(p->final_softcap > 0 ? meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v == p->final_softcap
                                   : meshlm_gguf_find_key(g, k) < 0);
        if (p->swa_pattern) CHECK(arch_int(g, a, "attention.sliding_window_pattern") == p->swa_pattern);
    }
    snprintf(k, sizeof k, "%s.rope.scaling.factor", a);
    CHECK(p->rope_scale > 0 ? meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v == p->rope_scale
                            : meshlm_gguf_find_key(g, k) < 0);
    snprintf(k, sizeof k, "%s.rope.scaling.type", a);
    CHECK(p->rope_scale > 0 ? str_is(g, k, "linear") : meshlm_gguf_find_key(g, k) < 0);
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    CHECK(meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v > 0 && v < 1e-3);
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    CHECK(meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && v == p->rope_theta);
    if (!strcmp(a, "phi3")) {
        /* the original context (4096 unless stated, at most the context) and the converter's
         * attention factor sqrt(1 + ln(s) / ln(orig)) for the context ratio s */
        int64_t orig = p->n_ctx_orig ? p->n_ctx_orig : 4096;
        if (orig > p->n_ctx) orig = p->n_ctx;
        CHECK(arch_int(g, a, "rope.scaling.original_context_length") == orig);
        double s = (double)p->n_ctx / (double)orig, want = s > 1 ? sqrt(1 + log(s) / log((double)orig)) : 1.0;
        snprintf(k, sizeof k, "%s.rope.scaling.attn_factor", a);
        CHECK(meshlm_gguf_get_float(g, k, &v) == MESHLM_OK && fabs(v - want) < 1e-6);
    }
}

static void check_tokenizer_keys(const meshlm_gguf *g, const meshlm_synth_params *p) {
    bool llama = !strcmp(p->arch, "llama") || !strcmp(p->arch, "gemma2") || !strcmp(p->arch, "gemma3") ||
                 !strcmp(p->arch, "phi3");
    CHECK(str_is(g, "tokenizer.ggml.model", "gpt2"));
    CHECK(str_is(g, "tokenizer.ggml.pre", llama ? "llama-bpe" : "qwen2"));
    int et;
    uint64_t n = 0, nt = 0, nm = 0;
    const void *data;
    CHECK(meshlm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data) == MESHLM_OK);
    CHECK(et == MESHLM_GGUF_STRING && n == (uint64_t)p->n_vocab);
    CHECK(meshlm_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &nt, &data) == MESHLM_OK);
    CHECK(et == MESHLM_GGUF_I32 && nt == n);
    CHECK(meshlm_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &nm, &data) == MESHLM_OK);
    CHECK(et == MESHLM_GGUF_STRING && nm > 0 && nm < n);
    const char *keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.eot_token_id"};
    for (int i = 0; i < 3; i++) {
        int64_t id = key_int(g, keys[i]);
        CHECK_MSG(id >= 0 && id < p->n_vocab, "%s = %lld", keys[i], (long long)id);
    }
    bool add_bos = !llama;
    CHECK(meshlm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) == MESHLM_OK);
    CHECK(add_bos == llama);
    const char *s;
    size_t len;
    CHECK(meshlm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)key_int(g, "tokenizer.ggml.eot_token_id"), &s, &len) == MESHLM_OK);
    CHECK(len > 4 && s[0] == '<' && s[1] == '|');
}

static void test_arch_types(void) {
    /* the last llama is Mixtral's layout: llama with experts */
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "qwen3moe", "qwen2moe", "llama"};
    const int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0,
                         MESHLM_TYPE_Q4_K};
    for (int a = 0; a < 9; a++) {
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            meshlm_synth_params p;
            CHECK(meshlm_synth_preset("tiny", archs[a], &p) == MESHLM_OK);
            p.type = types[t];
            /* qwen2moe files are always untied (llama.cpp requires their output.weight) */
            p.tied_output = (t % 2 || !strcmp(archs[a], "gemma2")) && strcmp(archs[a], "qwen2moe");
            if (a == 8) p.n_expert = 4, p.n_expert_used = t % 2 ? 1 : 4;
            /* K-quants need the experts' rows in whole 256-blocks; tiny's experts are 128 wide */
            if (a >= 6 && types[t] == MESHLM_TYPE_Q4_K && p.n_ff_exp) p.n_ff_exp = 256;
            p.rope_freqs = !strcmp(archs[a], "llama") && t == 2;
            /* gemma3: untied files (llama.cpp takes them), a final cap, a pattern key and
             * rope scaling on some */
            if (a == 4 && t % 2 == 0) p.final_softcap = 20.0f, p.swa_pattern = 3, p.rope_scale = 8.0f;
            /* phi3: a stated original context on some */
            if (a == 5 && t % 2 == 0) p.n_ctx_orig = 64;
            const char *path = path_in("m.gguf");
            int rc = meshlm_synth_write(&p, path);
            CHECK_MSG(rc == MESHLM_OK, "%s %s: %s", archs[a], meshlm_type_name(types[t]),
                      meshlm_last_error());
            meshlm_gguf *g = NULL;
            rc = meshlm_gguf_open(path, &g);
            CHECK_MSG(rc == MESHLM_OK, "open: %s", meshlm_last_error());
            if (rc != MESHLM_OK) continue;
            CHECK(meshlm_gguf_version(g) == 3);
            check_keys(g, &p);
            check_tokenizer_keys(g, &p);
            int n = check_tensors(g, &p);
            CHECK_MSG(meshlm_gguf_n_tensors(g) == n, "%s: %lld tensors, want %d", archs[a],
                      (long long)meshlm_gguf_n_tensors(g), n);
            meshlm_gguf_close(g);
            unlink(path);
        }
    }
}

static void test_determinism(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "qwen2", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    const char *a = path_in("a.gguf"), *b = path_in("b.gguf"), *c = path_in("c.gguf");
    CHECK(meshlm_synth_write(&p, a) == MESHLM_OK);
    CHECK(meshlm_synth_write(&p, b) == MESHLM_OK);
    CHECK(same_file(a, b));
    p.seed = 2;
    CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
    CHECK(!same_file(a, c));
    CHECK(!same_tensor(a, c, "blk.0.attn_q.weight"));
    /* Values depend on seed and name only: more layers leave the first ones unchanged. */
    p.seed = 1;
    p.n_layer = 3;
    CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
    CHECK(same_tensor(a, c, "blk.1.ffn_down.weight"));
    CHECK(same_tensor(a, c, "token_embd.weight"));
    unlink(a);
    unlink(b);
    unlink(c);
}

/* A tensor's first n bytes in two files, compared. */
static bool same_prefix(const char *pa, const char *pb, const char *name, size_t n) {
    meshlm_gguf *a = NULL, *b = NULL;
    bool same = false;
    if (meshlm_gguf_open(pa, &a) == MESHLM_OK && meshlm_gguf_open(pb, &b) == MESHLM_OK) {
        const meshlm_gguf_tensor *ta = meshlm_gguf_find_tensor(a, name);
        const meshlm_gguf_tensor *tb = meshlm_gguf_find_tensor(b, name);
        same = ta && tb && ta->nbytes >= n && tb->nbytes >= n && !memcmp(ta->data, tb->data, n);
    }
    meshlm_gguf_close(a);
    meshlm_gguf_close(b);
    return same;
}

static size_t tensor_bytes(const char *path, const char *name) {
    meshlm_gguf *g = NULL;
    size_t n = 0;
    if (meshlm_gguf_open(path, &g) == MESHLM_OK) {
        const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
        n = t ? t->nbytes : 0;
    }
    meshlm_gguf_close(g);
    return n;
}

/* Experts of their own type beside the rest, as gpt-oss ships (MXFP4 experts, the rest
 * Q8_0): only the routed experts change type, the file is named by them, and an expert type
 * without experts is refused. */
static void test_expert_type(void) {
    meshlm_synth_params p;
    const char *a = path_in("et.gguf");
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0, p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
    CHECK_MSG(meshlm_synth_write(&p, a) == MESHLM_OK, "%s", meshlm_last_error());
    meshlm_gguf *g = NULL;
    CHECK(meshlm_gguf_open(a, &g) == MESHLM_OK);
    if (g) {
        int64_t e = p.n_embd, f = p.n_ff_exp, x = p.n_expert;
        check_tensor3(g, "blk.0.ffn_gate_exps.weight", MESHLM_TYPE_MXFP4, e, f, x);
        check_tensor3(g, "blk.1.ffn_down_exps.weight", MESHLM_TYPE_MXFP4, f, e, x);
        check_tensor(g, "blk.0.attn_q.weight", MESHLM_TYPE_Q8_0, e, (int64_t)p.n_head * 64);
        check_tensor(g, "blk.0.ffn_gate_inp.weight", MESHLM_TYPE_F32, e, x);
        CHECK(key_int(g, "general.file_type") == 38);
        meshlm_gguf_close(g);
    }
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
    CHECK(meshlm_synth_write(&p, a) == MESHLM_ERR_INVALID_ARG);
    unlink(a);
}

static void test_moe_determinism(void) {
    const char *archs[] = {"qwen3moe", "qwen2moe", "llama"};
    const char *a = path_in("ma.gguf"), *b = path_in("mb.gguf"), *c = path_in("mc.gguf");
    for (int k = 0; k < 3; k++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", archs[k], &p) == MESHLM_OK);
        if (k == 2) p.n_expert = 8, p.n_expert_used = 2;
        p.type = MESHLM_TYPE_Q8_0;
        CHECK_MSG(meshlm_synth_write(&p, a) == MESHLM_OK, "%s: %s", archs[k], meshlm_last_error());
        CHECK(meshlm_synth_write(&p, b) == MESHLM_OK);
        CHECK_MSG(same_file(a, b), "%s: two writes differ", archs[k]);
        p.seed = 2;
        CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
        CHECK(!same_file(a, c));
        CHECK(!same_tensor(a, c, "blk.1.ffn_down_exps.weight"));
        CHECK(!same_tensor(a, c, "blk.0.ffn_gate_inp.weight"));
        /* Values depend on seed, name and flattened row only: twice the experts keep the
         * first ones' rows (and router rows), and other tensors stay as they were. */
        p.seed = 1;
        p.n_expert = 16;
        CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
        const char *exps[] = {"blk.0.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight",
                              "blk.0.ffn_gate_inp.weight"};
        for (int i = 0; i < 4; i++) {
            size_t half = tensor_bytes(a, exps[i]);
            CHECK_MSG(half > 0 && tensor_bytes(c, exps[i]) == 2 * half, "%s %s", archs[k], exps[i]);
            CHECK_MSG(same_prefix(a, c, exps[i], half), "%s %s: first experts changed", archs[k], exps[i]);
        }
        CHECK(same_tensor(a, c, "blk.1.attn_v.weight"));
        CHECK(same_tensor(a, c, "output.weight"));
        if (k == 1) CHECK(same_tensor(a, c, "blk.1.ffn_down_shexp.weight"));
    }
    /* Name-keyed: qwen3moe's attention is qwen3's, byte for byte. */
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "qwen3", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    CHECK(meshlm_synth_write(&p, b) == MESHLM_OK);
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    CHECK(meshlm_synth_write(&p, a) == MESHLM_OK);
    CHECK(same_tensor(a, b, "blk.1.attn_q.weight"));
    CHECK(same_tensor(a, b, "blk.1.attn_k_norm.weight"));
    unlink(a);
    unlink(b);
    unlink(c);
}

static void tensor_stats(const meshlm_gguf_tensor *t, double *mean, double *std, double *lo,
                         double *hi) {
    int64_t n = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *row = malloc((size_t)n * sizeof *row);
    size_t rb = meshlm_type_row_bytes(t->type, n);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t r = 0; r < rows; r++) {
        meshlm_dequantize_row(t->type, (const char *)t->data + (size_t)r * rb, row, n);
        for (int64_t i = 0; i < n; i++) {
            s += row[i];
            s2 += (double)row[i] * row[i];
            if (row[i] < *lo) *lo = row[i];
            if (row[i] > *hi) *hi = row[i];
        }
    }
    double cnt = (double)n * (double)rows;
    *mean = s / cnt;
    *std = sqrt(s2 / cnt - *mean * *mean);
    free(row);
}

static void test_stats(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "qwen2", &p) == MESHLM_OK);
    const int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_K};
    for (int k = 0; k < 3; k++) {
        p.type = types[k];
        const char *path = path_in("s.gguf");
        CHECK(meshlm_synth_write(&p, path) == MESHLM_OK);
        meshlm_gguf *g = NULL;
        if (meshlm_gguf_open(path, &g) != MESHLM_OK) {
            CHECK_MSG(0, "open: %s", meshlm_last_error());
            continue;
        }
        double mean, std, lo, hi;
        const char *mats[] = {"blk.0.ffn_down.weight", "blk.1.attn_q.weight", "token_embd.weight"};
        for (int i = 0; i < 3; i++) {
            const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, mats[i]);
            tensor_stats(t, &mean, &std, &lo, &hi);
            double want = 1.0 / sqrt((double)t->ne[0]), tol = k == 2 ? 0.12 : 0.03;
            CHECK_MSG(fabs(mean) < 0.05 * want, "%s %s: mean %g", meshlm_type_name(p.type), mats[i], mean);
            CHECK_MSG(fabs(std / want - 1) < tol, "%s %s: std %g, want %g", meshlm_type_name(p.type),
                      mats[i], std, want);
            double edge = sqrt(3.0) * want * (k == 2 ? 1.25 : 1.05);
            CHECK_MSG(hi <= edge && lo >= -edge, "%s: range [%g, %g]", mats[i], lo, hi);
        }
        tensor_stats(meshlm_gguf_find_tensor(g, "blk.0.attn_norm.weight"), &mean, &std, &lo, &hi);
        CHECK(lo >= 0.9 && hi <= 1.1 && fabs(mean - 1) < 0.02);
        tensor_stats(meshlm_gguf_find_tensor(g, "blk.0.attn_k.bias"), &mean, &std, &lo, &hi);
        CHECK(lo >= -0.02 && hi <= 0.02 && std > 0.005);
        meshlm_gguf_close(g);
        unlink(path);
    }
}

/* Expert tensors scaled by their row length like any matrix; the router and the shared
 * expert's gate (F32 in every type) too, so routing logits spread by about 1. */
static void test_moe_stats(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "qwen2moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    const char *path = path_in("ms.gguf");
    CHECK(meshlm_synth_write(&p, path) == MESHLM_OK);
    meshlm_gguf *g = NULL;
    if (meshlm_gguf_open(path, &g) != MESHLM_OK) {
        CHECK_MSG(0, "open: %s", meshlm_last_error());
        return;
    }
    const char *mats[] = {"blk.0.ffn_gate_exps.weight", "blk.1.ffn_down_exps.weight", "blk.0.ffn_gate_inp.weight",
                          "blk.1.ffn_gate_inp_shexp.weight", "blk.0.ffn_down_shexp.weight"};
    for (int i = 0; i < 5; i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, mats[i]);
        CHECK_MSG(t != NULL, "%s", mats[i]);
        if (!t) continue;
        double mean, std, lo, hi, want = 1.0 / sqrt((double)t->ne[0]);
        /* the gate vector has only n_embd values */
        double tol = t->ne[1] == 1 ? 0.1 : 0.03;
        tensor_stats(t, &mean, &std, &lo, &hi);
        CHECK_MSG(fabs(mean) < (t->ne[1] == 1 ? 0.15 : 0.05) * want, "%s: mean %g", mats[i], mean);
        CHECK_MSG(fabs(std / want - 1) < tol, "%s: std %g, want %g", mats[i], std, want);
        CHECK_MSG(hi <= sqrt(3.0) * want * 1.05 && lo >= -sqrt(3.0) * want * 1.05, "%s: range [%g, %g]", mats[i],
                  lo, hi);
    }
    /* each expert its own: expert 0's and expert 1's first rows differ */
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, "blk.0.ffn_up_exps.weight");
    if (t) {
        size_t per_expert = t->nbytes / (size_t)t->ne[2];
        CHECK(memcmp(t->data, (const char *)t->data + per_expert, meshlm_type_row_bytes(t->type, t->ne[0])) != 0);
    }
    meshlm_gguf_close(g);
    unlink(path);
}

static void test_rope_freqs(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.rope_freqs = true;
    p.rope_freqs_factor = 32;
    p.rope_theta = 500000;
    const char *path = path_in("r.gguf");
    CHECK(meshlm_synth_write(&p, path) == MESHLM_OK);
    meshlm_gguf *g = NULL;
    CHECK(meshlm_gguf_open(path, &g) == MESHLM_OK);
    const meshlm_gguf_tensor *t = g ? meshlm_gguf_find_tensor(g, "rope_freqs.weight") : NULL;
    CHECK(t && t->ne[0] == 32 && t->type == MESHLM_TYPE_F32);
    if (t) {
        const float *f = t->data;
        CHECK(f[0] == 1.0f);
        CHECK(f[31] == 32.0f);
        for (int i = 1; i < 32; i++) CHECK(f[i] >= f[i - 1]);
    }
    meshlm_gguf_close(g);
    unlink(path);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Unique tokens, merges of existing tokens into existing tokens, control tokens last. */
static void check_vocab(const char *arch, int32_t n_vocab) {
    meshlm_synth_vocab v;
    double t0 = now_s();
    int rc = meshlm_synth_vocab_build(arch, n_vocab, &v);
    double dt = now_s() - t0;
    CHECK_MSG(rc == MESHLM_OK, "%s", meshlm_last_error());
    if (rc) return;
    CHECK_MSG(dt < 2.0, "vocab of %d took %.2f s", n_vocab, dt);
    CHECK(v.n_tokens == n_vocab);
    const char **sorted = malloc((size_t)v.n_tokens * sizeof *sorted);
    memcpy(sorted, v.tokens, (size_t)v.n_tokens * sizeof *sorted);
    qsort(sorted, (size_t)v.n_tokens, sizeof *sorted, cmp_str);
    int dups = 0;
    for (int32_t i = 1; i < v.n_tokens; i++) dups += !strcmp(sorted[i - 1], sorted[i]);
    CHECK_MSG(dups == 0, "%d duplicate tokens", dups);
    int bad = 0;
    for (int32_t i = 0; i < v.n_merges; i += 1 + v.n_merges / 3000) {
        const char *m = v.merges[i], *sp = strchr(m + 1, ' ');
        char left[256], right[256], cat[512];
        if (!sp || (size_t)(sp - m) >= sizeof left || strlen(sp + 1) >= sizeof right) {
            bad++;
            continue;
        }
        snprintf(left, sizeof left, "%.*s", (int)(sp - m), m);
        snprintf(right, sizeof right, "%s", sp + 1);
        snprintf(cat, sizeof cat, "%s%s", left, right);
        const char *keys[] = {left, right, cat};
        for (int k = 0; k < 3; k++) {
            const char *key = keys[k];
            bad += bsearch(&key, sorted, (size_t)v.n_tokens, sizeof *sorted, cmp_str) == NULL;
        }
    }
    CHECK_MSG(bad == 0, "%d merges with parts that are not tokens", bad);
    CHECK(v.types[0] == 1 && v.types[255] == 1 && v.types[v.n_tokens - 1] == 3);
    CHECK(v.types[256] == 1);
    CHECK(v.bos_id >= 0 && v.eos_id >= 0 && v.eot_id >= 0 && v.types[v.eot_id] == 3);
    CHECK(!strcmp(v.tokens[v.eot_id], !strcmp(arch, "llama") ? "<|eot_id|>" : "<|im_end|>"));
    free(sorted);
    meshlm_synth_vocab_free(&v);
}

static void test_vocab(void) {
    check_vocab("llama", 128256);
    check_vocab("qwen3", 151936);
    check_vocab("qwen2", 300);
    int32_t min = meshlm_synth_vocab_min("llama");
    check_vocab("llama", min);
    meshlm_synth_vocab v;
    CHECK(meshlm_synth_vocab_build("llama", min - 1, &v) != MESHLM_OK);
    CHECK(strstr(meshlm_last_error(), "n_vocab") != NULL);
}

/* Ids llama.cpp gives for this text with the tiny synthetic vocab (llama and qwen
 * pre-tokenizers agree on it), and with special tokens parsed. */
static const char tok_text[] = "Hello world, this is the test of 12345 tokens!\nNew line.";
static const int32_t tok_ids[] = {39, 68, 347, 78, 372, 298, 11, 269, 438, 287, 259, 256, 294, 288, 220,
                                  16, 17, 18, 19, 20, 331, 82, 0, 198, 45, 596, 326, 278, 13};
static const char special_text[] = "<|im_start|>hi<|eot_id|>";
static const int32_t llama_special_ids[] = {27, 91, 548, 62, 284, 290, 83, 91, 29, 283, 1021};
static const int32_t qwen_special_ids[] = {1022, 283, 27, 91, 68, 350, 62, 472, 91, 29};

static bool encode_is(const meshlm_tokenizer *t, const char *text, bool special,
                      const int32_t *want, int32_t n_want) {
    int32_t ids[256], n = 0;
    if (meshlm_tokenizer_encode(t, text, strlen(text), false, special, ids, 256, &n) != MESHLM_OK)
        return false;
    return n == n_want && !memcmp(ids, want, (size_t)n * sizeof *ids);
}

static bool round_trips(const meshlm_tokenizer *t, const char *text) {
    int32_t ids[512], n = 0;
    char out[2048];
    size_t len = 0;
    if (meshlm_tokenizer_encode(t, text, strlen(text), false, false, ids, 512, &n) != MESHLM_OK)
        return false;
    for (int32_t i = 0; i < n; i++) {
        const char *b;
        size_t bl;
        if (meshlm_tokenizer_piece(t, ids[i], &b, &bl) != MESHLM_OK || len + bl > sizeof out)
            return false;
        memcpy(out + len, b, bl);
        len += bl;
    }
    return len == strlen(text) && !memcmp(out, text, len);
}

static void test_tokenizer(void) {
    const char *archs[] = {"llama", "qwen2"};
    for (int a = 0; a < 2; a++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", archs[a], &p) == MESHLM_OK);
        const char *path = path_in("tok.gguf");
        CHECK(meshlm_synth_write(&p, path) == MESHLM_OK);
        meshlm_gguf *g = NULL;
        meshlm_tokenizer *t = NULL;
        CHECK(meshlm_gguf_open(path, &g) == MESHLM_OK);
        int rc = g ? meshlm_tokenizer_from_gguf(g, &t) : MESHLM_ERR_IO;
        CHECK_MSG(rc == MESHLM_OK, "%s: %s", archs[a], meshlm_last_error());
        if (t) {
            bool llama = a == 0;
            CHECK(meshlm_tokenizer_n_vocab(t) == p.n_vocab);
            CHECK(!strcmp(meshlm_tokenizer_pre(t), llama ? "llama-bpe" : "qwen2"));
            CHECK(meshlm_tokenizer_is_eog(t, p.n_vocab - (llama ? 3 : 1)));
            CHECK_MSG(encode_is(t, tok_text, false, tok_ids, (int32_t)(sizeof tok_ids / 4)),
                      "%s: ids differ from llama.cpp's", archs[a]);
            CHECK_MSG(llama ? encode_is(t, special_text, true, llama_special_ids, 11)
                            : encode_is(t, special_text, true, qwen_special_ids, 10),
                      "%s: special ids differ from llama.cpp's", archs[a]);
            CHECK(round_trips(t, tok_text));
            CHECK(round_trips(t, "Unicode: caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac, emoji \xf0\x9f\x99\x82 and\ttabs  "));
        }
        meshlm_tokenizer_free(t);
        meshlm_gguf_close(g);
        unlink(path);
    }
}

static void test_bad_params(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("qwen2-0.5b", NULL, &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q4_K;
    expect_fail(&p, "qwen2-0.5b Q4_K", (const char *const[]){"token_embd.weight", "896", "256", "Q4_K", NULL});
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.n_ff = 544;
    p.type = MESHLM_TYPE_Q6_K;
    expect_fail(&p, "n_ff 544 Q6_K", (const char *const[]){"blk.0.ffn_down.weight", "544", NULL});
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.n_vocab = 100;
    expect_fail(&p, "n_vocab 100", (const char *const[]){"n_vocab", "100", NULL});
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.n_head_kv = 3;
    expect_fail(&p, "n_head_kv 3", (const char *const[]){"n_head_kv", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen2", &p) == MESHLM_OK);
    p.rope_freqs = true;
    expect_fail(&p, "qwen2 rope_freqs", (const char *const[]){"rope_freqs", NULL});
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.arch = "gpt2";
    expect_fail(&p, "arch gpt2", (const char *const[]){"gpt2", NULL});
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK);
    p.n_embd = 0;
    expect_fail(&p, "n_embd 0", (const char *const[]){"n_embd", NULL});
    CHECK(meshlm_synth_preset("huge", NULL, &p) == MESHLM_ERR_NOT_FOUND);
    CHECK(strstr(meshlm_last_error(), "llama-1b") != NULL);
    CHECK(meshlm_synth_preset("tiny", "mistral", &p) != MESHLM_OK);
    CHECK(meshlm_synth_preset("qwen3-0.6b", "llama", &p) == MESHLM_OK && p.head_dim == 128);
    CHECK(meshlm_synth_preset("llama-1b", "qwen3", &p) == MESHLM_OK && !p.rope_freqs && p.tied_output);
    CHECK(meshlm_synth_preset("gemma2-2b", NULL, &p) == MESHLM_OK && p.head_dim == 256 && p.tied_output &&
          p.sliding_window == 4096 && p.n_layer == 26);
    CHECK(meshlm_synth_preset("llama-8b", "gemma2", &p) == MESHLM_OK && p.tied_output && !p.rope_freqs);
    p.tied_output = false;
    expect_fail(&p, "untied gemma2", (const char *const[]){"gemma2", "tied", NULL});
    CHECK(meshlm_synth_preset("gemma3-1b", NULL, &p) == MESHLM_OK && p.head_dim == 256 && p.tied_output &&
          p.sliding_window == 512 && p.n_layer == 26 && p.n_embd == 1152 && p.n_head == 4 && p.n_head_kv == 1 &&
          p.n_ff == 6912 && p.n_vocab == 262144 && p.rope_theta == 1e6f);
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.rope_scale = 8.0f;
    expect_fail(&p, "rope_scale on llama", (const char *const[]){"rope_scale", "gemma", NULL});
    CHECK(meshlm_synth_preset("phi3.5-mini", NULL, &p) == MESHLM_OK && !strcmp(p.arch, "phi3") && !p.tied_output &&
          p.n_embd == 3072 && p.n_layer == 32 && p.n_head == 32 && p.n_head_kv == 32 && p.n_ff == 8192 &&
          p.n_vocab == 32064 && p.n_ctx == 131072 && p.rope_theta == 10000.0f);
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.n_ctx_orig = 64;
    expect_fail(&p, "n_ctx_orig on llama", (const char *const[]){"n_ctx_orig", "phi3", NULL});
}

static void test_moe_params(void) {
    meshlm_synth_params p;
    /* the MoE presets: the real models' layers */
    CHECK(meshlm_synth_preset("qwen3-30b-a3b-4l", NULL, &p) == MESHLM_OK && !strcmp(p.arch, "qwen3moe") &&
          p.n_embd == 2048 && p.n_layer == 4 && p.n_head == 32 && p.n_head_kv == 4 && p.head_dim == 128 &&
          p.n_expert == 128 && p.n_expert_used == 8 && p.n_ff_exp == 768 && p.n_ff == 6144 && !p.n_ff_shexp &&
          p.n_vocab == 151936 && p.n_ctx == 40960 && p.rope_theta == 1e6f && p.rms_eps == 1e-6f && !p.tied_output);
    CHECK(meshlm_synth_preset("mixtral-8x7b-2l", NULL, &p) == MESHLM_OK && !strcmp(p.arch, "llama") &&
          p.n_embd == 4096 && p.n_layer == 2 && p.n_head == 32 && p.n_head_kv == 8 && p.n_ff == 14336 &&
          p.n_expert == 8 && p.n_expert_used == 2 && !p.n_ff_exp && p.n_vocab == 32000 && p.n_ctx == 32768 &&
          p.rope_theta == 1e6f && p.rms_eps == 1e-5f && !p.tied_output && !p.rope_freqs);
    CHECK(meshlm_synth_preset("qwen2moe-a2.7b-2l", NULL, &p) == MESHLM_OK && !strcmp(p.arch, "qwen2moe") &&
          p.n_embd == 2048 && p.n_layer == 2 && p.n_head == 16 && p.n_head_kv == 16 && !p.head_dim &&
          p.n_expert == 60 && p.n_expert_used == 4 && p.n_ff_exp == 1408 && p.n_ff_shexp == 5632 &&
          p.n_ff == 5632 && p.n_vocab == 151936 && p.n_ctx == 8192 && p.rope_theta == 1e6f && !p.tied_output);
    const char *names = meshlm_synth_preset_names();
    CHECK(strstr(names, "qwen3-30b-a3b-4l") && strstr(names, "mixtral-8x7b-2l") && strstr(names, "qwen2moe-a2.7b-2l"));
    /* experts follow the arch */
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK && p.n_expert == 8 && p.n_expert_used == 2 &&
          p.n_ff_exp == 128 && !p.n_ff_shexp);
    CHECK(meshlm_synth_preset("tiny", "qwen2moe", &p) == MESHLM_OK && p.n_expert == 8 && p.n_expert_used == 2 &&
          p.n_ff_exp == 128 && p.n_ff_shexp == 256 && !p.tied_output);
    CHECK(meshlm_synth_preset("tiny", NULL, &p) == MESHLM_OK && !p.n_expert && !p.n_ff_exp);
    CHECK(meshlm_synth_preset("qwen3-30b-a3b-4l", "qwen3", &p) == MESHLM_OK && !p.n_expert && !p.n_expert_used &&
          !p.n_ff_exp && p.n_ff == 6144);
    CHECK(meshlm_synth_preset("qwen3-30b-a3b-4l", "llama", &p) == MESHLM_OK && p.n_expert == 128 && p.n_ff == 768 &&
          !p.n_ff_exp);
    CHECK(meshlm_synth_preset("mixtral-8x7b-2l", "qwen2moe", &p) == MESHLM_OK && p.n_expert == 8 &&
          p.n_ff_exp == 14336 && p.n_ff_shexp == 7168);
    CHECK(meshlm_synth_preset("qwen2moe-a2.7b-2l", "qwen3moe", &p) == MESHLM_OK && p.n_expert == 60 && !p.n_ff_shexp);
    CHECK(meshlm_synth_preset("qwen2moe-a2.7b-2l", "gemma2", &p) == MESHLM_OK && !p.n_expert && !p.n_ff_shexp);
    /* the shapes llama.cpp refuses or cannot state */
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.n_expert = 0;
    expect_fail(&p, "qwen3moe without experts", (const char *const[]){"qwen3moe", "n_expert", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.n_expert_used = 9;
    expect_fail(&p, "9 of 8 experts", (const char *const[]){"n_expert_used", "9", NULL});
    p.n_expert_used = 0;
    expect_fail(&p, "0 of 8 experts", (const char *const[]){"n_expert_used", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.n_expert = 2048;
    expect_fail(&p, "2048 experts", (const char *const[]){"n_expert", "1024", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.n_ff_shexp = 256;
    expect_fail(&p, "qwen3moe shared expert", (const char *const[]){"n_ff_shexp", "qwen2moe", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen2moe", &p) == MESHLM_OK);
    p.n_ff_shexp = 0;
    expect_fail(&p, "qwen2moe without shared expert", (const char *const[]){"qwen2moe", "n_ff_shexp", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen2moe", &p) == MESHLM_OK);
    p.tied_output = true;
    expect_fail(&p, "tied qwen2moe", (const char *const[]){"qwen2moe", "output.weight", NULL});
    CHECK(meshlm_synth_preset("tiny", "qwen2moe", &p) == MESHLM_OK);
    p.head_dim = 32;
    expect_fail(&p, "qwen2moe head_dim", (const char *const[]){"n_head * head_dim", NULL});
    CHECK(meshlm_synth_preset("tiny", "gemma3", &p) == MESHLM_OK);
    p.n_expert = 4, p.n_expert_used = 2;
    expect_fail(&p, "gemma3 experts", (const char *const[]){"gemma3", "llama", NULL});
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.n_expert_used = 2;
    expect_fail(&p, "experts used without experts", (const char *const[]){"n_expert", NULL});
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.n_expert = 4, p.n_expert_used = 2, p.n_ff_exp = 128;
    expect_fail(&p, "llama n_ff_exp", (const char *const[]){"n_ff_exp", "128", "512", NULL});
    p.n_ff_exp = 512;
    const char *path = path_in("mixtral.gguf");
    CHECK_MSG(meshlm_synth_write(&p, path) == MESHLM_OK, "%s", meshlm_last_error());
    unlink(path);
    /* a K-quant's blocks against the experts' rows: down's are n_ff_exp long */
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q4_K;
    expect_fail(&p, "qwen3moe Q4_K",
                (const char *const[]){"blk.0.ffn_down_exps.weight", "128 x 256 x 8", "Q4_K", "256", NULL});
    /* the router stays F32, so its n_expert rows need no block */
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q4_0;
    p.n_expert = 5, p.n_expert_used = 3;
    CHECK_MSG(meshlm_synth_write(&p, path) == MESHLM_OK, "%s", meshlm_last_error());
    unlink(path);
}

static void test_command(void) {
    if (access(MESHLM_BIN, X_OK) != 0) {
        printf("note: %s not built; command checks skipped\n", MESHLM_BIN);
        return;
    }
    CHECK(run_cmd("--help") == 0 && cmd_output_has("--preset"));
    char args[512];
    snprintf(args, sizeof args, "--arch qwen3 --n-embd 256 --n-layer 1 --n-head 2 --n-ff 256 "
             "--n-vocab 600 --head-dim 64 --type Q8_0 --seed 7 -o %s", path_in("c.gguf"));
    CHECK(run_cmd(args) == 0);
    meshlm_gguf *g = NULL;
    CHECK(meshlm_gguf_open(path_in("c.gguf"), &g) == MESHLM_OK);
    if (g) CHECK(arch_int(g, "qwen3", "attention.key_length") == 64);
    meshlm_gguf_close(g);
    unlink(path_in("c.gguf"));
    snprintf(args, sizeof args, "--arch gemma3 --preset tiny --n-layer 7 --sliding-window 16 --swa-pattern 3 "
             "--rope-scale 8 --final-softcap 25 --type F32 -o %s", path_in("g.gguf"));
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("g.gguf"), &g) == MESHLM_OK);
    if (g) {
        double v;
        CHECK(arch_int(g, "gemma3", "attention.sliding_window") == 16);
        CHECK(arch_int(g, "gemma3", "attention.sliding_window_pattern") == 3);
        CHECK(meshlm_gguf_get_float(g, "gemma3.rope.scaling.factor", &v) == MESHLM_OK && v == 8.0);
        CHECK(meshlm_gguf_get_float(g, "gemma3.final_logit_softcapping", &v) == MESHLM_OK && v == 25.0);
        CHECK(meshlm_gguf_find_tensor(g, "blk.6.attn_k_norm.weight") != NULL);
        CHECK(meshlm_gguf_find_tensor(g, "output.weight") == NULL);
    }
    meshlm_gguf_close(g);
    unlink(path_in("g.gguf"));
    snprintf(args, sizeof args, "--arch phi3 --preset tiny --n-layer 3 --n-ctx-orig 128 --type Q8_0 -o %s",
             path_in("p.gguf"));
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("p.gguf"), &g) == MESHLM_OK);
    if (g) {
        CHECK(arch_int(g, "phi3", "rope.scaling.original_context_length") == 128);
        CHECK(meshlm_gguf_find_tensor(g, "blk.2.attn_qkv.weight") != NULL);
        CHECK(meshlm_gguf_find_tensor(g, "blk.2.ffn_gate.weight") == NULL);
        CHECK(meshlm_gguf_find_tensor(g, "rope_factors_long.weight") != NULL);
        CHECK(meshlm_gguf_find_tensor(g, "output.weight") != NULL);
    }
    meshlm_gguf_close(g);
    unlink(path_in("p.gguf"));
    CHECK(run_cmd("--help") == 0 && cmd_output_has("--n-ff-shexp") && cmd_output_has("qwen3moe"));
    snprintf(args, sizeof args, "--arch qwen3moe --preset tiny --n-expert 4 --n-expert-used 3 --n-ff-exp 64 "
             "--type Q8_0 -o %s", path_in("m.gguf"));
    CHECK(run_cmd(args) == 0 && cmd_output_has("4 experts (3 used)"));
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("m.gguf"), &g) == MESHLM_OK);
    if (g) {
        CHECK(arch_int(g, "qwen3moe", "expert_count") == 4);
        CHECK(arch_int(g, "qwen3moe", "expert_used_count") == 3);
        CHECK(arch_int(g, "qwen3moe", "expert_feed_forward_length") == 64);
        check_tensor3(g, "blk.1.ffn_down_exps.weight", MESHLM_TYPE_Q8_0, 64, 256, 4);
        check_tensor(g, "blk.1.ffn_gate_inp.weight", MESHLM_TYPE_F32, 256, 4);
    }
    meshlm_gguf_close(g);
    /* the shape alone: 8 experts a quarter of n-ff wide, 2 used, a shared one half of it */
    snprintf(args, sizeof args, "--arch qwen2moe --n-embd 128 --n-layer 1 --n-head 2 --n-ff 256 --n-vocab 600 "
             "--type F16 -o %s", path_in("m.gguf"));
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("m.gguf"), &g) == MESHLM_OK);
    if (g) {
        CHECK(arch_int(g, "qwen2moe", "expert_count") == 8);
        CHECK(arch_int(g, "qwen2moe", "expert_used_count") == 2);
        CHECK(arch_int(g, "qwen2moe", "expert_feed_forward_length") == 64);
        CHECK(arch_int(g, "qwen2moe", "expert_shared_feed_forward_length") == 128);
        check_tensor(g, "blk.0.ffn_gate_inp_shexp.weight", MESHLM_TYPE_F32, 128, 1);
        check_tensor(g, "blk.0.ffn_down_shexp.weight", MESHLM_TYPE_F16, 128, 128);
        CHECK(meshlm_gguf_find_tensor(g, "output.weight") != NULL);
    }
    meshlm_gguf_close(g);
    /* Mixtral's layout: llama's experts are n-ff wide, and the mixtral preset made dense */
    snprintf(args, sizeof args, "--preset tiny --n-expert 4 --type Q4_0 -o %s", path_in("m.gguf"));
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("m.gguf"), &g) == MESHLM_OK);
    if (g) {
        CHECK(arch_int(g, "llama", "expert_count") == 4);
        CHECK(arch_int(g, "llama", "expert_used_count") == 2);
        CHECK(meshlm_gguf_find_key(g, "llama.expert_feed_forward_length") < 0);
        check_tensor3(g, "blk.1.ffn_up_exps.weight", MESHLM_TYPE_Q4_0, 256, 512, 4);
        CHECK(meshlm_gguf_find_tensor(g, "blk.1.ffn_up.weight") == NULL);
    }
    meshlm_gguf_close(g);
    snprintf(args, sizeof args, "--preset mixtral-8x7b-2l --n-expert 0 --n-embd 256 --n-head 4 --n-head-kv 2 "
             "--n-ff 512 --n-vocab 600 --type Q8_0 -o %s", path_in("m.gguf"));
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(path_in("m.gguf"), &g) == MESHLM_OK);
    if (g) {
        CHECK(meshlm_gguf_find_key(g, "llama.expert_count") < 0);
        CHECK(meshlm_gguf_find_tensor(g, "blk.1.ffn_up.weight") != NULL);
        CHECK(meshlm_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight") == NULL);
    }
    meshlm_gguf_close(g);
    unlink(path_in("m.gguf"));
    CHECK(run_cmd("--preset tiny --arch qwen3 --n-expert 4 --type Q8_0 -o x") == 2 && cmd_output_has("qwen3"));
    CHECK(run_cmd("--preset tiny --arch qwen3moe --n-expert 4 --n-expert-used 5 --type Q8_0 -o x") == 2 &&
          cmd_output_has("--n-expert-used"));
    CHECK(run_cmd("--preset tiny --arch qwen3moe --n-ff-shexp 64 --type Q8_0 -o x") == 2 &&
          cmd_output_has("n_ff_shexp"));
    CHECK(run_cmd("--preset tiny --n-expert 4 --n-ff-exp 128 --type Q8_0 -o x") == 2 && cmd_output_has("n_ff"));
    CHECK(run_cmd("--preset tiny --arch qwen2moe --tied --type Q8_0 -o x") == 2 && cmd_output_has("untied"));
    CHECK(run_cmd("--preset tiny --arch qwen3moe --n-expert 0 --type Q8_0 -o x") == 2 && cmd_output_has("n_expert"));
    CHECK(access("x", F_OK) != 0);
    CHECK(run_cmd("--preset tiny --type Q9_9 -o x") == 2 && cmd_output_has("Q9_9"));
    CHECK(run_cmd("--preset tiny --type Q8_0 --n-head abc -o x") == 2 && cmd_output_has("--n-head"));
    CHECK(run_cmd("--preset nope --type Q8_0 -o x") == 2 && cmd_output_has("nope"));
    CHECK(run_cmd("--arch llama --n-embd 256 --type F32 -o x") == 2 && cmd_output_has("--n-layer"));
    CHECK(run_cmd("--preset tiny --type F32 --bogus -o x") == 2 && cmd_output_has("--bogus"));
    unlink(path_in("cmd.out"));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_synth.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_arch_types();
    test_determinism();
    test_stats();
    test_rope_freqs();
    test_vocab();
    test_tokenizer();
    test_bad_params();
    test_moe_determinism();
    test_expert_type();
    test_moe_stats();
    test_moe_params();
    test_command();
    rmdir(dir);
    return t_done();
}

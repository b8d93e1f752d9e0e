/* Synthetic gpt-oss models: the keys and tensors of llama.cpp's gpt-oss loader, the Harmony
 * control tokens, determinism, weights sized so that the sinks, the biases and the experts'
 * clamp all matter, the preset, and clear failures. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "model/synth.h"
#include "t.h"
#include "t_synth_check.h"

static double key_float(const meshlm_gguf *g, const char *key) {
    double v = NAN;
    CHECK_MSG(meshlm_gguf_get_float(g, key, &v) == MESHLM_OK, "%s: %s", key, meshlm_last_error());
    return v;
}

/* Every tensor of llama.cpp's gpt-oss loader with its shape (ne[0] = row length), and no
 * other: no ffn_norm, no q/k norms, no dense FFN. */
static void check_tensors(const meshlm_gguf *g, const meshlm_synth_params *p) {
    int64_t e = p->n_embd, hd = p->head_dim ? p->head_dim : e / p->n_head;
    int64_t q = p->n_head * hd, kv = p->n_head_kv * hd, x = p->n_expert, fx = p->n_ff;
    int m = p->type, et = p->expert_type_given ? p->expert_type : m, f = MESHLM_TYPE_F32;
    check_tensor3(g, "token_embd.weight", m, e, p->n_vocab, 1);
    check_tensor3(g, "output_norm.weight", f, e, 1, 1);
    check_tensor3(g, "output.weight", m, e, p->n_vocab, 1);
    for (int i = 0; i < p->n_layer; i++) {
        char n[64];
#define T(what, type, a, b, c) (snprintf(n, sizeof n, "blk.%d." what, i), check_tensor3(g, n, type, a, b, c))
#define ABSENT(what)                                                           \
    do {                                                                       \
        snprintf(n, sizeof n, "blk.%d." what, i);                              \
        CHECK_MSG(!meshlm_gguf_find_tensor(g, n), "%s: should be absent", n); \
    } while (0)
        T("attn_norm.weight", f, e, 1, 1);
        T("post_attention_norm.weight", f, e, 1, 1);
        T("attn_q.weight", m, e, q, 1);
        T("attn_k.weight", m, e, kv, 1);
        T("attn_v.weight", m, e, kv, 1);
        T("attn_q.bias", f, q, 1, 1);
        T("attn_k.bias", f, kv, 1, 1);
        T("attn_v.bias", f, kv, 1, 1);
        T("attn_output.weight", m, q, e, 1);
        T("attn_output.bias", f, e, 1, 1);
        T("attn_sinks.weight", f, p->n_head, 1, 1);
        T("ffn_gate_inp.weight", f, e, x, 1);
        T("ffn_gate_inp.bias", f, x, 1, 1);
        T("ffn_gate_exps.weight", et, e, fx, x);
        T("ffn_up_exps.weight", et, e, fx, x);
        T("ffn_down_exps.weight", et, fx, e, x);
        T("ffn_gate_exps.bias", f, fx, x, 1);
        T("ffn_up_exps.bias", f, fx, x, 1);
        T("ffn_down_exps.bias", f, e, x, 1);
        ABSENT("ffn_norm.weight");
        ABSENT("attn_q_norm.weight");
        ABSENT("ffn_gate.weight");
#undef T
#undef ABSENT
    }
    CHECK_MSG(meshlm_gguf_n_tensors(g) == 3 + 19 * (int64_t)p->n_layer, "%lld tensors",
              (long long)meshlm_gguf_n_tensors(g));
}

static void check_keys(const meshlm_gguf *g, const meshlm_synth_params *p) {
    int64_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    int64_t orig = p->n_ctx_orig ? p->n_ctx_orig : 4096;
    if (orig > p->n_ctx) orig = p->n_ctx;
    CHECK(str_is(g, "general.architecture", "gpt-oss"));
    CHECK(key_int(g, "gpt-oss.context_length") == p->n_ctx);
    CHECK(key_int(g, "gpt-oss.embedding_length") == p->n_embd);
    CHECK(key_int(g, "gpt-oss.block_count") == p->n_layer);
    /* the experts' width under both keys, as the converted files have it */
    CHECK(key_int(g, "gpt-oss.feed_forward_length") == p->n_ff);
    CHECK(key_int(g, "gpt-oss.expert_feed_forward_length") == p->n_ff);
    CHECK(key_int(g, "gpt-oss.expert_count") == p->n_expert);
    CHECK(key_int(g, "gpt-oss.expert_used_count") == p->n_expert_used);
    CHECK(key_int(g, "gpt-oss.attention.head_count") == p->n_head);
    CHECK(key_int(g, "gpt-oss.attention.head_count_kv") == p->n_head_kv);
    CHECK(key_int(g, "gpt-oss.attention.key_length") == hd);
    CHECK(key_int(g, "gpt-oss.attention.value_length") == hd);
    CHECK(key_int(g, "gpt-oss.attention.sliding_window") == (p->sliding_window ? p->sliding_window : 128));
    CHECK(meshlm_gguf_find_key(g, "gpt-oss.attention.sliding_window_pattern") < 0);
    CHECK(str_is(g, "gpt-oss.rope.scaling.type", "yarn"));
    CHECK(key_float(g, "gpt-oss.rope.scaling.factor") == (p->rope_scale > 0 ? p->rope_scale : 32.0));
    CHECK(key_int(g, "gpt-oss.rope.scaling.original_context_length") == orig);
    CHECK(key_float(g, "gpt-oss.rope.freq_base") == p->rope_theta);
    CHECK(key_float(g, "gpt-oss.attention.layer_norm_rms_epsilon") == p->rms_eps);
    CHECK(meshlm_gguf_find_key(g, "gpt-oss.expert_shared_feed_forward_length") < 0);
}

/* The token id of text among the last n_vocab tokens, or -1. */
static int64_t token_id(const meshlm_gguf *g, const char *text) {
    int et;
    uint64_t n = 0;
    const void *data;
    if (meshlm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data) != MESHLM_OK) return -1;
    for (uint64_t i = n; i-- > 0;) {
        const char *s;
        size_t len;
        if (meshlm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len) == MESHLM_OK && len == strlen(text) &&
            !memcmp(s, text, len))
            return (int64_t)i;
    }
    return -1;
}

/* Harmony's tokens last, in o200k_harmony's order, all control tokens; the real files' ids:
 * BOS <|startoftext|> (never added), EOS <|return|>, padding <|endoftext|>, no EOT. */
static void check_tokenizer(const meshlm_gguf *g, const meshlm_synth_params *p) {
    static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>", "<|return|>",
                                           "<|constrain|>",   "<|channel|>",   "<|start|>",
                                           "<|end|>",         "<|message|>",   "<|call|>"};
    int64_t first = p->n_vocab - 9;
    for (int i = 0; i < 9; i++) CHECK_MSG(token_id(g, specials[i]) == first + i, "%s", specials[i]);
    int et;
    uint64_t n = 0;
    const void *data;
    CHECK(meshlm_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data) == MESHLM_OK);
    /* The array sits in the mapped file wherever the strings before it end: read it bytewise. */
    if (n == (uint64_t)p->n_vocab) {
        int32_t type;
        for (int64_t i = first - 1; i < p->n_vocab; i++) {
            memcpy(&type, (const char *)data + (size_t)i * sizeof type, sizeof type);
            CHECK(type == (i == first - 1 ? 1 : 3));
        }
    }
    CHECK(str_is(g, "tokenizer.ggml.model", "gpt2"));
    CHECK(str_is(g, "tokenizer.ggml.pre", "gpt-4o"));
    CHECK(key_int(g, "tokenizer.ggml.bos_token_id") == first);
    CHECK(key_int(g, "tokenizer.ggml.padding_token_id") == first + 1);
    CHECK(key_int(g, "tokenizer.ggml.eos_token_id") == first + 2);
    CHECK(meshlm_gguf_find_key(g, "tokenizer.ggml.eot_token_id") < 0);
    CHECK(meshlm_gguf_find_key(g, "tokenizer.ggml.eom_token_id") < 0);
    bool add_bos = true;
    CHECK(meshlm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) == MESHLM_OK && !add_bos);
    const char *s;
    size_t len;
    CHECK(meshlm_gguf_get_str(g, "tokenizer.chat_template", &s, &len) == MESHLM_OK);
    /* llama.cpp knows a Harmony template by these two */
    CHECK(len > 0 && memmem(s, len, "<|start|>", 9) && memmem(s, len, "<|channel|>", 11));
}

static meshlm_gguf *write_open(const meshlm_synth_params *p, const char *path) {
    int rc = meshlm_synth_write(p, path);
    CHECK_MSG(rc == MESHLM_OK, "%s", meshlm_last_error());
    meshlm_gguf *g = NULL;
    if (rc == MESHLM_OK) CHECK_MSG(meshlm_gguf_open(path, &g) == MESHLM_OK, "%s", meshlm_last_error());
    return g;
}

static void test_files(void) {
    const int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_Q8_0, MESHLM_TYPE_F16, MESHLM_TYPE_Q4_0};
    for (int k = 0; k < 5; k++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
        p.type = types[k % 4];
        /* gpt-oss's own mix: Q8_0 beside MXFP4 experts */
        if (k == 4) p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
        /* heads that do not fill n_embd, and stated window, YaRN and original context */
        if (k == 2) {
            p.n_embd = 96, p.head_dim = 64, p.n_head_kv = 2, p.sliding_window = 8;
            p.rope_scale = 16.0f, p.n_ctx_orig = 256, p.n_layer = 3;
        }
        meshlm_gguf *g = write_open(&p, path_in("go.gguf"));
        if (!g) continue;
        check_keys(g, &p);
        check_tensors(g, &p);
        check_tokenizer(g, &p);
        CHECK(key_int(g, "general.file_type") == (k == 4 ? 38 : k == 1 ? 7 : k == 2 ? 1 : k == 3 ? 2 : 0));
        meshlm_gguf_close(g);
    }
    unlink(path_in("go.gguf"));
}

static void test_determinism(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0, p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
    const char *a = path_in("da.gguf"), *b = path_in("db.gguf"), *c = path_in("dc.gguf");
    CHECK(meshlm_synth_write(&p, a) == MESHLM_OK);
    CHECK(meshlm_synth_write(&p, b) == MESHLM_OK);
    CHECK(same_file(a, b));
    p.seed = 2;
    CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
    const char *changed[] = {"blk.0.attn_sinks.weight", "blk.1.ffn_up_exps.bias", "blk.0.ffn_gate_exps.weight",
                             "blk.1.attn_q.bias"};
    for (int i = 0; i < 4; i++) CHECK_MSG(!same_tensor(a, c, changed[i]), "%s", changed[i]);
    /* name-keyed: gpt-oss's q projection is qwen3moe's, byte for byte (same name, shape, scale) */
    CHECK(meshlm_synth_preset("tiny", "qwen3moe", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    CHECK(meshlm_synth_write(&p, c) == MESHLM_OK);
    CHECK(same_tensor(a, c, "blk.1.attn_q.weight"));
    CHECK(same_tensor(a, c, "token_embd.weight"));
    unlink(a);
    unlink(b);
    unlink(c);
}

static void row_of(const meshlm_gguf_tensor *t, int64_t r, float *out) {
    size_t rb = meshlm_type_row_bytes(t->type, t->ne[0]);
    meshlm_dequantize_row(t->type, (const char *)t->data + (size_t)r * rb, out, t->ne[0]);
}

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static const float *f32(const meshlm_gguf *g, const char *name) {
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
    CHECK_MSG(t && t->type == MESHLM_TYPE_F32, "%s", name);
    return t && t->type == MESHLM_TYPE_F32 ? t->data : NULL;
}

/* Layer 0's FFN on normed random inputs, as llama.cpp's gpt-oss runs it: the biased router's
 * choice varies, the clamp at 7 cuts some gate and up values but not most, and what the
 * experts give back spreads by about 1. The sinks spread over [-2, 2]. */
static void check_ffn(const meshlm_gguf *g, const meshlm_synth_params *p, const char *label) {
    enum { N_IN = 24 };
    int64_t e = p->n_embd, fx = p->n_ff, x = p->n_expert;
    const meshlm_gguf_tensor *tg = meshlm_gguf_find_tensor(g, "blk.0.ffn_gate_exps.weight");
    const meshlm_gguf_tensor *tu = meshlm_gguf_find_tensor(g, "blk.0.ffn_up_exps.weight");
    const meshlm_gguf_tensor *td = meshlm_gguf_find_tensor(g, "blk.0.ffn_down_exps.weight");
    const float *norm = f32(g, "blk.0.post_attention_norm.weight"), *router = f32(g, "blk.0.ffn_gate_inp.weight");
    const float *rb = f32(g, "blk.0.ffn_gate_inp.bias"), *gb = f32(g, "blk.0.ffn_gate_exps.bias");
    const float *ub = f32(g, "blk.0.ffn_up_exps.bias"), *db = f32(g, "blk.0.ffn_down_exps.bias");
    const float *sinks = f32(g, "blk.1.attn_sinks.weight");
    if (!tg || !tu || !td || !norm || !router || !rb || !gb || !ub || !db || !sinks) return;
    float *in = malloc((size_t)e * sizeof *in), *w = malloc((size_t)(e > fx ? e : fx) * sizeof *w);
    float *act = malloc((size_t)fx * sizeof *act);
    uint64_t st = 0x9e3779b97f4a7c15ull;
    int64_t gate_cut = 0, up_cut = 0, n_act = 0, n_out = 0;
    double act2 = 0, out2 = 0;
    bool top_seen[1024] = {false};
    for (int k = 0; k < N_IN; k++) {
        double ss = 0;
        for (int64_t i = 0; i < e; i++) in[i] = (float)t_xorshift(&st) / 2147483648.0f - 1.0f, ss += (double)in[i] * in[i];
        for (int64_t i = 0; i < e; i++) in[i] *= (float)(1.0 / sqrt(ss / (double)e)) * norm[i];
        int64_t top = 0;
        double best = -INFINITY;
        for (int64_t j = 0; j < x; j++) {
            double s = dot(router + j * e, in, e) + rb[j];
            if (s > best) best = s, top = j;
        }
        top_seen[top] = true;
        for (int64_t ex = 0; ex < x; ex += 3) {
            for (int64_t j = 0; j < fx; j++) {
                row_of(tg, ex * fx + j, w);
                double gv = dot(w, in, e) + gb[ex * fx + j];
                row_of(tu, ex * fx + j, w);
                double uv = dot(w, in, e) + ub[ex * fx + j];
                gate_cut += gv > 7, up_cut += fabs(uv) > 7;
                gv = gv < 7 ? gv : 7, uv = uv < -7 ? -7 : uv > 7 ? 7 : uv;
                act[j] = (float)(gv / (1 + exp(-1.702 * gv)) * (uv + 1));
                act2 += (double)act[j] * act[j], n_act++;
            }
            for (int64_t i = 0; i < e; i++) {
                row_of(td, ex * e + i, w);
                double o = dot(w, act, fx) + db[ex * e + i];
                out2 += o * o, n_out++;
            }
        }
    }
    int distinct = 0;
    for (int64_t j = 0; j < x && j < 1024; j++) distinct += top_seen[j];
    double gate_frac = (double)gate_cut / (double)n_act, up_frac = (double)up_cut / (double)n_act;
    double act_rms = sqrt(act2 / (double)n_act), out_rms = sqrt(out2 / (double)n_out);
    CHECK_MSG(distinct >= 3, "%s: %d experts ever ranked first", label, distinct);
    CHECK_MSG(gate_frac > 0.002 && gate_frac < 0.04, "%s: %.4f of gate values past the clamp", label, gate_frac);
    CHECK_MSG(up_frac > 0.004 && up_frac < 0.08, "%s: %.4f of up values past the clamp", label, up_frac);
    CHECK_MSG(act_rms > 3 && act_rms < 12, "%s: SwiGLU output RMS %g", label, act_rms);
    CHECK_MSG(out_rms > 0.5 && out_rms < 2, "%s: expert output RMS %g", label, out_rms);
    double lo = INFINITY, hi = -INFINITY, s2 = 0;
    for (int64_t h = 0; h < p->n_head; h++) {
        lo = sinks[h] < lo ? sinks[h] : lo, hi = sinks[h] > hi ? sinks[h] : hi;
        s2 += (double)sinks[h] * sinks[h];
    }
    CHECK_MSG(lo >= -2 && hi <= 2 && hi - lo > 1.5, "%s: sinks in [%g, %g]", label, lo, hi);
    CHECK_MSG(sqrt(s2 / p->n_head) > 0.5, "%s: sinks' RMS %g", label, sqrt(s2 / p->n_head));
    free(in);
    free(w);
    free(act);
}

static void test_weights(void) {
    /* 16 heads, so the sinks' spread is seen */
    const int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_MXFP4, MESHLM_TYPE_Q4_0};
    for (int k = 0; k < 3; k++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
        p.n_head = 16, p.n_head_kv = 4, p.head_dim = 64;
        p.type = MESHLM_TYPE_Q8_0, p.expert_type_given = true, p.expert_type = types[k];
        meshlm_gguf *g = write_open(&p, path_in("w.gguf"));
        if (!g) continue;
        check_ffn(g, &p, meshlm_type_name(types[k]));
        const float *qb = f32(g, "blk.0.attn_q.bias");
        double m = 0;
        for (int64_t i = 0; qb && i < (int64_t)p.n_head * 64; i++) m = fabs(qb[i]) > m ? fabs(qb[i]) : m;
        CHECK_MSG(m > 0.4 && m <= 0.5, "q bias up to %g", m);
        meshlm_gguf_close(g);
    }
    unlink(path_in("w.gguf"));
}

static void test_params(void) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("gpt-oss-20b-4l", NULL, &p) == MESHLM_OK && !strcmp(p.arch, "gpt-oss") &&
          p.n_embd == 2880 && p.n_layer == 4 && p.n_head == 64 && p.n_head_kv == 8 && p.head_dim == 64 &&
          p.n_ff == 2880 && p.n_ff_exp == 2880 && p.n_expert == 32 && p.n_expert_used == 4 && !p.n_ff_shexp &&
          p.n_vocab == 201088 && p.n_ctx == 131072 && p.rope_theta == 150000.0f && p.rms_eps == 1e-5f &&
          p.sliding_window == 128 && !p.tied_output && p.expert_type_given && p.expert_type == MESHLM_TYPE_MXFP4 &&
          p.type == MESHLM_TYPE_F32);
    /* the YaRN factor and original context are gpt-oss's defaults: 32 over 4096 */
    CHECK(p.rope_scale == 0 && p.n_ctx_orig == 0);
    CHECK(strstr(meshlm_synth_preset_names(), "gpt-oss-20b-4l") != NULL);
    CHECK(meshlm_synth_arch_known("gpt-oss") && !meshlm_synth_arch_known("gptoss"));
    CHECK(strstr(meshlm_synth_arch_names(), "gpt-oss") != NULL);
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK && p.n_expert == 8 && p.n_expert_used == 4 &&
          p.n_ff == 128 && p.n_ff_exp == 128 && !p.tied_output && p.sliding_window == 32 && !p.expert_type_given);
    CHECK(meshlm_synth_preset("qwen3-30b-a3b-4l", "gpt-oss", &p) == MESHLM_OK && p.n_expert == 128 &&
          p.n_ff == 768 && p.n_ff_exp == 768 && !p.tied_output);
    CHECK(meshlm_synth_preset("qwen2moe-a2.7b-2l", "gpt-oss", &p) == MESHLM_OK && !p.n_ff_shexp && p.n_ff == 1408);
    /* made another arch, the preset keeps its MXFP4 experts while it has experts */
    CHECK(meshlm_synth_preset("gpt-oss-20b-4l", "qwen3moe", &p) == MESHLM_OK && p.n_expert == 32 &&
          p.expert_type_given && p.expert_type == MESHLM_TYPE_MXFP4);
    CHECK(meshlm_synth_preset("gpt-oss-20b-4l", "qwen3", &p) == MESHLM_OK && !p.n_expert && !p.expert_type_given);
    CHECK(meshlm_synth_preset("gpt-oss-20b-4l", "llama", &p) == MESHLM_OK && p.n_expert == 32 && p.n_ff == 2880 &&
          !p.n_ff_exp);
    CHECK(meshlm_synth_vocab_min("gpt-oss") == 256 + 1 + 9);
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.n_expert = 0, p.n_expert_used = 0;
    expect_fail(&p, "gpt-oss without experts", (const char *const[]){"gpt-oss", "n_expert", NULL});
    CHECK(meshlm_synth_preset("gpt-oss-20b-4l", NULL, &p) == MESHLM_OK);
    p.n_expert = 0, p.n_expert_used = 0, p.n_ff_exp = 0;
    expect_fail(&p, "gpt-oss-20b-4l without experts", (const char *const[]){"gpt-oss", "n_expert", NULL});
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.tied_output = true;
    expect_fail(&p, "tied gpt-oss", (const char *const[]){"gpt-oss", "untied", NULL});
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.n_ff_exp = 64;
    expect_fail(&p, "gpt-oss n_ff_exp", (const char *const[]){"n_ff_exp", "64", "128", NULL});
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.n_ff_shexp = 64;
    expect_fail(&p, "gpt-oss shared expert", (const char *const[]){"n_ff_shexp", "qwen2moe", NULL});
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.rope_freqs = true;
    expect_fail(&p, "gpt-oss rope_freqs", (const char *const[]){"rope_freqs", "llama", NULL});
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.n_vocab = 265;
    expect_fail(&p, "gpt-oss n_vocab 265", (const char *const[]){"n_vocab", "266", NULL});
    /* MXFP4's blocks of 32 against the experts' rows */
    CHECK(meshlm_synth_preset("tiny", "gpt-oss", &p) == MESHLM_OK);
    p.n_ff = p.n_ff_exp = 80, p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
    expect_fail(&p, "gpt-oss n_ff 80 MXFP4", (const char *const[]){"ffn_down_exps.weight", "80", "MXFP4", NULL});
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.rope_scale = 4;
    expect_fail(&p, "llama rope_scale", (const char *const[]){"rope_scale", "gpt-oss", NULL});
}

static void test_command(void) {
    if (access(MESHLM_BIN, X_OK) != 0) {
        printf("note: %s not built; command checks skipped\n", MESHLM_BIN);
        return;
    }
    CHECK(run_cmd("--help") == 0 && cmd_output_has("gpt-oss") && cmd_output_has("gpt-oss-20b-4l") &&
          cmd_output_has("YaRN"));
    char args[512];
    char m[256];
    snprintf(m, sizeof m, "%s", path_in("c.gguf"));
    snprintf(args, sizeof args, "--preset tiny --arch gpt-oss --type Q8_0 --expert-type MXFP4 -o %s", m);
    CHECK(run_cmd(args) == 0 && cmd_output_has("8 MXFP4 experts (4 used)"));
    meshlm_gguf *g = NULL;
    CHECK(meshlm_gguf_open(m, &g) == MESHLM_OK);
    if (g) {
        check_tensor3(g, "blk.1.ffn_down_exps.weight", MESHLM_TYPE_MXFP4, 128, 256, 8);
        check_tensor3(g, "blk.1.ffn_down_exps.bias", MESHLM_TYPE_F32, 256, 8, 1);
        check_tensor3(g, "blk.1.attn_output.weight", MESHLM_TYPE_Q8_0, 256, 256, 1);
        CHECK(key_int(g, "general.file_type") == 38);
    }
    meshlm_gguf_close(g);
    /* the shape alone: heads of 64 over n_embd 96, experts n-ff wide, 8 of them, 4 used */
    snprintf(args, sizeof args, "--arch gpt-oss --n-embd 96 --n-layer 2 --n-head 4 --n-head-kv 2 --head-dim 64 "
             "--n-ff 64 --n-vocab 600 --sliding-window 8 --rope-scale 16 --n-ctx-orig 256 --type Q8_0 -o %s", m);
    CHECK(run_cmd(args) == 0);
    g = NULL;
    CHECK(meshlm_gguf_open(m, &g) == MESHLM_OK);
    if (g) {
        meshlm_synth_params p = {.arch = "gpt-oss", .n_embd = 96, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                                 .head_dim = 64, .n_ff = 64, .n_vocab = 600, .n_ctx = 2048, .type = MESHLM_TYPE_Q8_0,
                                 .rope_theta = 150000.0f, .rms_eps = 1e-5f, .sliding_window = 8, .rope_scale = 16.0f,
                                 .n_ctx_orig = 256, .n_expert = 8, .n_expert_used = 4, .n_ff_exp = 64};
        check_keys(g, &p);
        check_tensors(g, &p);
    }
    meshlm_gguf_close(g);
    /* gpt-oss's n-ff is its experts' width: --n-ff-exp alone sets both */
    snprintf(args, sizeof args, "--preset tiny --arch gpt-oss --n-ff-exp 64 --n-expert 4 --type F16 -o %s", m);
    CHECK(run_cmd(args) == 0 && cmd_output_has("4 experts (4 used)"));
    g = NULL;
    CHECK(meshlm_gguf_open(m, &g) == MESHLM_OK);
    if (g) {
        CHECK(key_int(g, "gpt-oss.feed_forward_length") == 64);
        CHECK(key_int(g, "gpt-oss.expert_feed_forward_length") == 64);
        check_tensor3(g, "blk.0.ffn_up_exps.weight", MESHLM_TYPE_F16, 256, 64, 4);
    }
    meshlm_gguf_close(g);
    unlink(m);
    CHECK(run_cmd("--preset tiny --arch gpt-oss --n-expert 0 --type Q8_0 -o x") == 2 && cmd_output_has("n_expert"));
    CHECK(run_cmd("--preset tiny --arch gpt-oss --tied --type Q8_0 -o x") == 2 && cmd_output_has("untied"));
    CHECK(run_cmd("--preset tiny --arch gpt-oss --n-ff 256 --n-ff-exp 128 --type Q8_0 -o x") == 2 &&
          cmd_output_has("n_ff_exp"));
    CHECK(run_cmd("--preset gpt-oss-20b-4l --n-expert 0 --type Q8_0 -o x") == 2 && cmd_output_has("gpt-oss"));
    CHECK(run_cmd("--preset tiny --arch gptoss --type Q8_0 -o x") == 2 && cmd_output_has("gpt-oss"));
    CHECK(access("x", F_OK) != 0);
    unlink(path_in("cmd.out"));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_synth_gpt_oss.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_files();
    test_determinism();
    test_weights();
    test_params();
    test_command();
    rmdir(dir);
    return t_done();
}

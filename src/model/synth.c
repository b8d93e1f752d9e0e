/* Synthetic models: shape checks, the GGUF metadata llama.cpp's loader expects, and
 * deterministic weights generated tensor by tensor straight into the writer (the presets
 * are synth_preset.c's). */
#include "model/synth.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"
#include "io/gguf.h"

#define ARCH_LIST "llama, qwen2, qwen3, qwen3moe, qwen2moe, gemma2, gemma3, phi3, smollm3, gpt-oss"

bool meshlm_synth_arch_known(const char *arch) {
    static const char *const archs[] = {"llama",  "qwen2",  "qwen3", "qwen3moe", "qwen2moe",
                                        "gemma2", "gemma3", "phi3",  "smollm3",  "gpt-oss"};
    for (size_t i = 0; arch && i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(arch, archs[i])) return true;
    return false;
}

const char *meshlm_synth_arch_names(void) { return ARCH_LIST; }

static bool is_gemma2(const char *arch) { return !strcmp(arch, "gemma2"); }
static bool is_gemma3(const char *arch) { return !strcmp(arch, "gemma3"); }
static bool is_gemma(const char *arch) { return is_gemma2(arch) || is_gemma3(arch); }
static bool is_phi3(const char *arch) { return !strcmp(arch, "phi3"); }
static bool is_gpt_oss(const char *arch) { return !strcmp(arch, "gpt-oss"); }
/* The archs whose every layer is MoE; llama's layers are when n_expert is set. */
static bool is_moe_arch(const char *arch) {
    return !strcmp(arch, "qwen3moe") || !strcmp(arch, "qwen2moe") || is_gpt_oss(arch);
}
/* qwen2's attention, with q/k/v biases; qwen3's, with per-head q/k norms. */
static bool has_qkv_bias(const char *arch) { return !strcmp(arch, "qwen2") || !strcmp(arch, "qwen2moe"); }
static bool is_qwen3_attn(const char *arch) { return !strcmp(arch, "qwen3") || !strcmp(arch, "qwen3moe"); }

/* phi3's and gpt-oss's original context: the stated one, else 4096, never past the file's
 * context. */
static int32_t ctx_orig(const meshlm_synth_params *p) {
    int32_t orig = p->n_ctx_orig > 0 ? p->n_ctx_orig : 4096;
    return orig < p->n_ctx ? orig : p->n_ctx;
}

/* ---- the tensor plan ---- */

typedef enum tkind { T_MATRIX, T_NORM, T_BIAS, T_ROPE_FREQS, T_ROPE_LONG, T_ROPE_SHORT } tkind;

typedef struct tspec {
    char name[48];
    tkind kind;
    int type;
    int n_dims;
    int64_t ne[3]; /* ne[2] = 1 but for the experts' 3-D tensors */
    /* A matrix's gain over the unit scale (fill_matrix); a bias's largest magnitude. */
    float scale;
} tspec;

typedef struct plan {
    tspec *t;
    int n;
    int32_t head_dim;
} plan;

static tspec *add_spec(plan *pl, tkind kind, int type, int64_t ne0, int64_t ne1, const char *fmt,
                       int layer, const char *what) {
    tspec *s = &pl->t[pl->n++];
    if (layer >= 0)
        snprintf(s->name, sizeof s->name, fmt, layer, what);
    else
        snprintf(s->name, sizeof s->name, "%s", fmt);
    s->kind = kind;
    s->type = kind == T_MATRIX ? type : MESHLM_TYPE_F32;
    s->n_dims = kind == T_MATRIX ? 2 : 1;
    s->ne[0] = ne0;
    s->ne[1] = ne1;
    s->ne[2] = 1;
    s->scale = kind == T_BIAS ? 0.02f : 1.0f;
    return s;
}

/* n_expert matrices [ne0 x ne1] in one tensor, as llama.cpp's converter stacks them. */
static tspec *add_experts(plan *pl, int type, int64_t ne0, int64_t ne1, int64_t n_expert, int layer,
                          const char *what) {
    tspec *s = add_spec(pl, T_MATRIX, type, ne0, ne1, "blk.%d.%s", layer, what);
    s->ne[2] = n_expert;
    s->n_dims = 3;
    return s;
}

/* An F32 bias of ne1 rows (1-D when ne1 is 1), uniform in [-amp, amp). */
static void add_bias(plan *pl, int64_t ne0, int64_t ne1, float amp, int layer, const char *what) {
    tspec *s = add_spec(pl, T_BIAS, 0, ne0, ne1, "blk.%d.%s", layer, what);
    s->n_dims = ne1 > 1 ? 2 : 1;
    s->scale = amp;
}

/* gpt-oss's layer, in its converted files' names: biased q/k/v and output projections, a
 * sink logit per head, the FFN's input norm named post_attention_norm, and a biased router
 * over biased experts. The sizes make each part matter: q and k spread by about 1 and so do
 * the scores q.k / sqrt(head_dim), which sinks of up to +-2 meet; q/k/v biases of up to 0.5
 * shift the projections visibly (k's moves every score of a query alike, which only the sink
 * sees). Gate and up take a gain of 3, so their outputs spread by about 3 and the SwiGLU's
 * clamp at 7 is hit now and then, by about 1% of gate and 2% of up values; what comes out
 * has an RMS near 6.5, which down's gain of 1/6 brings back to about 1. */
static void add_gpt_oss_layer(plan *pl, const meshlm_synth_params *p, int i) {
    const char *f = "blk.%d.%s";
    int64_t e = p->n_embd, q = (int64_t)p->n_head * pl->head_dim;
    int64_t kv = (int64_t)p->n_head_kv * pl->head_dim, x = p->n_expert, fx = p->n_ff_exp ? p->n_ff_exp : p->n_ff;
    int et = p->expert_type_given ? p->expert_type : p->type;
    add_spec(pl, T_NORM, 0, e, 1, f, i, "attn_norm.weight");
    add_spec(pl, T_MATRIX, p->type, e, q, f, i, "attn_q.weight");
    add_bias(pl, q, 1, 0.5f, i, "attn_q.bias");
    add_spec(pl, T_MATRIX, p->type, e, kv, f, i, "attn_k.weight");
    add_bias(pl, kv, 1, 0.5f, i, "attn_k.bias");
    add_spec(pl, T_MATRIX, p->type, e, kv, f, i, "attn_v.weight");
    add_bias(pl, kv, 1, 0.5f, i, "attn_v.bias");
    add_spec(pl, T_MATRIX, p->type, q, e, f, i, "attn_output.weight");
    add_bias(pl, e, 1, 0.2f, i, "attn_output.bias");
    add_bias(pl, p->n_head, 1, 2.0f, i, "attn_sinks.weight");
    add_spec(pl, T_NORM, 0, e, 1, f, i, "post_attention_norm.weight");
    add_spec(pl, T_MATRIX, MESHLM_TYPE_F32, e, x, f, i, "ffn_gate_inp.weight");
    add_bias(pl, x, 1, 0.5f, i, "ffn_gate_inp.bias");
    add_experts(pl, et, e, fx, x, i, "ffn_gate_exps.weight")->scale = 3.0f;
    add_bias(pl, fx, x, 1.0f, i, "ffn_gate_exps.bias");
    add_experts(pl, et, e, fx, x, i, "ffn_up_exps.weight")->scale = 3.0f;
    add_bias(pl, fx, x, 1.0f, i, "ffn_up_exps.bias");
    add_experts(pl, et, fx, e, x, i, "ffn_down_exps.weight")->scale = 1.0f / 6.0f;
    add_bias(pl, e, x, 0.2f, i, "ffn_down_exps.bias");
}

/* The FFN after ffn_norm: dense, or a router and stacked experts (and qwen2moe's shared
 * expert). Routers stay F32 whatever the type, as in llama.cpp's converted and quantized
 * files; they are filled like matrices, so router logits have about unit spread and the
 * top-k choice differs from token to token. */
static void add_ffn(plan *pl, const meshlm_synth_params *p, int i) {
    const char *f = "blk.%d.%s";
    int64_t e = p->n_embd, x = p->n_expert;
    if (!x) {
        add_spec(pl, T_MATRIX, p->type, e, p->n_ff, f, i, "ffn_gate.weight");
        add_spec(pl, T_MATRIX, p->type, e, p->n_ff, f, i, "ffn_up.weight");
        add_spec(pl, T_MATRIX, p->type, p->n_ff, e, f, i, "ffn_down.weight");
        return;
    }
    int64_t fx = p->n_ff_exp ? p->n_ff_exp : p->n_ff, sh = p->n_ff_shexp;
    int et = p->expert_type_given ? p->expert_type : p->type;
    add_spec(pl, T_MATRIX, MESHLM_TYPE_F32, e, x, f, i, "ffn_gate_inp.weight");
    add_experts(pl, et, e, fx, x, i, "ffn_gate_exps.weight");
    add_experts(pl, et, e, fx, x, i, "ffn_up_exps.weight");
    add_experts(pl, et, fx, e, x, i, "ffn_down_exps.weight");
    if (!sh) return;
    /* The shared expert's gate is one row, written 1-D as llama.cpp's loader declares it (and
     * the published Qwen1.5-MoE files have it): the sigmoid of its dot product with the normed
     * input scales the shared expert's output. Filled like a matrix row, that product spreads
     * by about 1, so the gate varies from token to token. */
    add_spec(pl, T_MATRIX, MESHLM_TYPE_F32, e, 1, f, i, "ffn_gate_inp_shexp.weight")->n_dims = 1;
    add_spec(pl, T_MATRIX, p->type, e, sh, f, i, "ffn_gate_shexp.weight");
    add_spec(pl, T_MATRIX, p->type, e, sh, f, i, "ffn_up_shexp.weight");
    add_spec(pl, T_MATRIX, p->type, sh, e, f, i, "ffn_down_shexp.weight");
}

static void add_layer(plan *pl, const meshlm_synth_params *p, int i) {
    const char *f = "blk.%d.%s";
    int64_t e = p->n_embd, q = (int64_t)p->n_head * pl->head_dim;
    int64_t kv = (int64_t)p->n_head_kv * pl->head_dim;
    bool qwen2 = has_qkv_bias(p->arch), qk_norm = is_qwen3_attn(p->arch) || is_gemma3(p->arch);
    if (is_gpt_oss(p->arch)) {
        add_gpt_oss_layer(pl, p, i);
        return;
    }
    add_spec(pl, T_NORM, 0, e, 1, f, i, "attn_norm.weight");
    if (is_phi3(p->arch)) {
        /* llama.cpp's phi3 layout: q, k, v in one tensor; gate and up in one. */
        add_spec(pl, T_MATRIX, p->type, e, q + 2 * kv, f, i, "attn_qkv.weight");
        add_spec(pl, T_MATRIX, p->type, q, e, f, i, "attn_output.weight");
        add_spec(pl, T_NORM, 0, e, 1, f, i, "ffn_norm.weight");
        add_spec(pl, T_MATRIX, p->type, p->n_ff, e, f, i, "ffn_down.weight");
        add_spec(pl, T_MATRIX, p->type, e, 2 * (int64_t)p->n_ff, f, i, "ffn_up.weight");
        return;
    }
    add_spec(pl, T_MATRIX, p->type, e, q, f, i, "attn_q.weight");
    if (qwen2) add_spec(pl, T_BIAS, 0, q, 1, f, i, "attn_q.bias");
    add_spec(pl, T_MATRIX, p->type, e, kv, f, i, "attn_k.weight");
    if (qwen2) add_spec(pl, T_BIAS, 0, kv, 1, f, i, "attn_k.bias");
    add_spec(pl, T_MATRIX, p->type, e, kv, f, i, "attn_v.weight");
    if (qwen2) add_spec(pl, T_BIAS, 0, kv, 1, f, i, "attn_v.bias");
    if (qk_norm) {
        add_spec(pl, T_NORM, 0, pl->head_dim, 1, f, i, "attn_q_norm.weight");
        add_spec(pl, T_NORM, 0, pl->head_dim, 1, f, i, "attn_k_norm.weight");
    }
    add_spec(pl, T_MATRIX, p->type, q, e, f, i, "attn_output.weight");
    if (is_gemma(p->arch)) add_spec(pl, T_NORM, 0, e, 1, f, i, "post_attention_norm.weight");
    add_spec(pl, T_NORM, 0, e, 1, f, i, "ffn_norm.weight");
    add_ffn(pl, p, i);
    if (is_gemma(p->arch)) add_spec(pl, T_NORM, 0, e, 1, f, i, "post_ffw_norm.weight");
}

/* Tensors in llama.cpp's usual file order: embedding, layers, final norm, LM head. */
static int make_plan(const meshlm_synth_params *p, int32_t head_dim, plan *pl) {
    pl->n = 0;
    pl->head_dim = head_dim;
    pl->t = malloc(((size_t)p->n_layer * 24 + 6) * sizeof *pl->t);
    if (!pl->t) return meshlm_fail(MESHLM_ERR_NOMEM, "synth: out of memory");
    add_spec(pl, T_MATRIX, p->type, p->n_embd, p->n_vocab, "token_embd.weight", -1, NULL);
    if (p->rope_freqs) add_spec(pl, T_ROPE_FREQS, 0, head_dim / 2, 1, "rope_freqs.weight", -1, NULL);
    if (is_phi3(p->arch)) {
        add_spec(pl, T_ROPE_LONG, 0, head_dim / 2, 1, "rope_factors_long.weight", -1, NULL);
        add_spec(pl, T_ROPE_SHORT, 0, head_dim / 2, 1, "rope_factors_short.weight", -1, NULL);
    }
    for (int i = 0; i < p->n_layer; i++) add_layer(pl, p, i);
    add_spec(pl, T_NORM, 0, p->n_embd, 1, "output_norm.weight", -1, NULL);
    if (!p->tied_output)
        add_spec(pl, T_MATRIX, p->type, p->n_embd, p->n_vocab, "output.weight", -1, NULL);
    return MESHLM_OK;
}

/* ---- checks ---- */

static int check_dims(const meshlm_synth_params *p) {
    const struct { const char *name; int32_t v; } dims[] = {
        {"n_embd", p->n_embd}, {"n_layer", p->n_layer}, {"n_head", p->n_head},
        {"n_head_kv", p->n_head_kv}, {"n_ff", p->n_ff}, {"n_vocab", p->n_vocab},
        {"n_ctx", p->n_ctx},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: %s must be positive (got %d)",
                               dims[i].name, dims[i].v);
    if (p->n_layer > 10000)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: n_layer %d is too large", p->n_layer);
    if (p->n_head % p->n_head_kv)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_head %d is not a multiple of n_head_kv %d", p->n_head,
                           p->n_head_kv);
    if (p->head_dim < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: head_dim must be >= 0 (got %d)",
                           p->head_dim);
    if (!p->head_dim && p->n_embd % p->n_head)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_embd %d is not a multiple of n_head %d (set head_dim)",
                           p->n_embd, p->n_head);
    return MESHLM_OK;
}

/* llama.cpp's limit (LLAMA_MAX_EXPERTS) */
enum { MAX_EXPERTS = 1024 };

static int check_experts(const meshlm_synth_params *p) {
    const char *a = p->arch;
    bool llama = !strcmp(a, "llama"), qwen2moe = !strcmp(a, "qwen2moe"), gpt_oss = is_gpt_oss(a);
    if (!p->n_expert && is_moe_arch(a))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: %s needs n_expert (its layers are all MoE)", a);
    if (p->n_expert < 0 || p->n_expert_used < 0 || p->n_ff_exp < 0 || p->n_ff_shexp < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_expert (%d), n_expert_used (%d), n_ff_exp (%d) and n_ff_shexp (%d) "
                           "must not be negative",
                           p->n_expert, p->n_expert_used, p->n_ff_exp, p->n_ff_shexp);
    if (p->expert_type_given && (!p->n_expert || !meshlm_type_known(p->expert_type)))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: an expert type needs experts and a weight type (%d experts)",
                           p->n_expert);
    if (!p->n_expert) {
        if (p->n_expert_used || p->n_ff_exp || p->n_ff_shexp)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                               "synth: n_expert_used, n_ff_exp and n_ff_shexp need n_expert (0: a dense model)");
        return MESHLM_OK;
    }
    if (!is_moe_arch(a) && !llama)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: experts are for qwen3moe, qwen2moe, gpt-oss and llama, not %s", a);
    if (p->n_expert > MAX_EXPERTS || p->n_expert_used < 1 || p->n_expert_used > p->n_expert)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_expert %d must be at most %d and n_expert_used %d from 1 to n_expert",
                           p->n_expert, MAX_EXPERTS, p->n_expert_used);
    if (llama && p->n_ff_exp && p->n_ff_exp != p->n_ff)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: llama's experts are n_ff wide (its files have no expert width): "
                           "n_ff_exp %d != n_ff %d",
                           p->n_ff_exp, p->n_ff);
    if (gpt_oss && p->n_ff_exp && p->n_ff_exp != p->n_ff)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: gpt-oss's feed_forward_length is its experts' width: n_ff_exp %d != n_ff %d",
                           p->n_ff_exp, p->n_ff);
    if (qwen2moe && !p->n_ff_shexp)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: qwen2moe needs n_ff_shexp (its shared expert's width)");
    if (!qwen2moe && p->n_ff_shexp)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: n_ff_shexp (a shared expert) is qwen2moe's, not %s's", a);
    if ((qwen2moe || gpt_oss) && p->tied_output)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: %s files are untied (llama.cpp requires their output.weight)", a);
    return MESHLM_OK;
}

static int check_params(const meshlm_synth_params *p, int32_t *head_dim) {
    if (!p) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: no params");
    if (!meshlm_synth_arch_known(p->arch))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: unknown arch '%s' (" ARCH_LIST ")", p->arch ? p->arch : "(null)");
    int rc = check_dims(p);
    if (rc) return rc;
    int32_t hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    if (hd % 2)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "synth: head_dim %d must be even (rope)", hd);
    if ((has_qkv_bias(p->arch) || is_phi3(p->arch)) && (int64_t)hd * p->n_head != p->n_embd)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: %s needs n_head * head_dim == n_embd (%d * %d != %d)",
                           p->arch, p->n_head, hd, p->n_embd);
    rc = check_experts(p);
    if (rc) return rc;
    if (is_gemma2(p->arch) && !p->tied_output)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: gemma2 files are tied (llama.cpp refuses an output.weight in them)");
    if (p->sliding_window < 0 || p->attn_softcap < 0 || p->final_softcap < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: sliding_window (%d) and the soft-caps (%g, %g) must not be negative",
                           p->sliding_window, (double)p->attn_softcap, (double)p->final_softcap);
    bool gpt_oss = is_gpt_oss(p->arch);
    if (p->swa_pattern < -1 || p->rope_scale < 0 || (p->rope_scale > 0 && !is_gemma(p->arch) && !gpt_oss))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: swa_pattern (%d) must be -1 or more and rope_scale (%g) not negative; rope_scale is for "
                           "the gemma families (linear) and gpt-oss (YaRN)",
                           p->swa_pattern, (double)p->rope_scale);
    if (p->n_ctx_orig < 0 || (p->n_ctx_orig > 0 && !is_phi3(p->arch) && !gpt_oss))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_ctx_orig (%d) is phi3's and gpt-oss's and must not be negative", p->n_ctx_orig);
    if (p->rope_freqs && strcmp(p->arch, "llama"))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: rope_freqs.weight is a llama tensor, not for %s", p->arch);
    if (!(p->rope_theta > 0) || !(p->rms_eps > 0) || p->rope_freqs_factor < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: rope_theta (%g) and rms_eps (%g) must be positive, "
                           "rope_freqs_factor (%g) not negative",
                           (double)p->rope_theta, (double)p->rms_eps, (double)p->rope_freqs_factor);
    if (!meshlm_type_supported(p->type))
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "synth: unsupported type id %d", p->type);
    int32_t vmin = meshlm_synth_vocab_min(p->arch);
    if (p->n_vocab < vmin)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: n_vocab %d is too small: the synthetic %s tokenizer needs "
                           "at least %d tokens", p->n_vocab, p->arch, vmin);
    *head_dim = hd;
    return MESHLM_OK;
}

/* Each matrix against its own type: the routers are F32 whatever the file's type. */
static int check_blocks(const plan *pl) {
    for (int i = 0; i < pl->n; i++) {
        const tspec *s = &pl->t[i];
        int64_t blk = meshlm_type_block_elems(s->type);
        if (s->kind != T_MATRIX || s->ne[0] % blk == 0) continue;
        char shape[64];
        int n = snprintf(shape, sizeof shape, "%lld x %lld", (long long)s->ne[0], (long long)s->ne[1]);
        if (s->n_dims == 3) snprintf(shape + n, sizeof shape - (size_t)n, " x %lld", (long long)s->ne[2]);
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "synth: tensor '%s' [%s]: row length %lld is not a multiple of %s's block "
                           "size %lld; pick a type with smaller blocks (e.g. Q8_0, F16) or other "
                           "dimensions",
                           s->name, shape, (long long)s->ne[0], meshlm_type_name(s->type), (long long)blk);
    }
    return MESHLM_OK;
}

/* ---- metadata ---- */

/* llama.cpp's general.file_type (enum llama_ftype) for files whose matrices are all one type. */
static uint32_t file_type_of(int type) {
    switch (type) {
    case MESHLM_TYPE_F16: return 1;
    case MESHLM_TYPE_Q4_0: return 2;
    case MESHLM_TYPE_Q4_1: return 3;
    case MESHLM_TYPE_Q8_0: return 7;
    case MESHLM_TYPE_Q5_0: return 8;
    case MESHLM_TYPE_Q5_1: return 9;
    case MESHLM_TYPE_Q4_K: return 14;
    case MESHLM_TYPE_Q5_K: return 16;
    case MESHLM_TYPE_Q6_K: return 18;
    case MESHLM_TYPE_BF16: return 32;
    case MESHLM_TYPE_MXFP4: return 38;
    default: return 0;
    }
}

static int set_arch_u32(meshlm_gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[96];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return meshlm_gguf_set_u32(w, k, v);
}

static int set_arch_f32(meshlm_gguf_writer *w, const char *arch, const char *key, float v) {
    char k[96];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return meshlm_gguf_set_f32(w, k, v);
}

/* The keys of the families with windows, soft-caps or rope scaling. */
static int write_family_hparams(meshlm_gguf_writer *w, const meshlm_synth_params *p) {
    const char *a = p->arch;
    int rc = MESHLM_OK;
    if (is_gemma2(a)) {
        rc = set_arch_u32(w, a, "attention.sliding_window", (uint32_t)(p->sliding_window ? p->sliding_window : 4096));
        if (!rc) rc = set_arch_f32(w, a, "attn_logit_softcapping", p->attn_softcap > 0 ? p->attn_softcap : 50.0f);
        if (!rc) rc = set_arch_f32(w, a, "final_logit_softcapping", p->final_softcap > 0 ? p->final_softcap : 30.0f);
    }
    if (is_gemma3(a)) {
        rc = set_arch_u32(w, a, "attention.sliding_window", (uint32_t)(p->sliding_window ? p->sliding_window : 512));
        if (!rc && p->swa_pattern != 0)
            rc = set_arch_u32(w, a, "attention.sliding_window_pattern", (uint32_t)(p->swa_pattern < 0 ? 0 : p->swa_pattern));
        if (!rc && p->final_softcap > 0) rc = set_arch_f32(w, a, "final_logit_softcapping", p->final_softcap);
    }
    if (is_phi3(a)) {
        /* The attention factor as llama.cpp's converter computes it for LongRoPE. */
        int32_t orig = ctx_orig(p);
        double s = (double)p->n_ctx / orig;
        double attn = s > 1.0 ? sqrt(1.0 + log(s) / log((double)orig)) : 1.0;
        rc = set_arch_u32(w, a, "rope.scaling.original_context_length", (uint32_t)orig);
        if (!rc) rc = set_arch_f32(w, a, "rope.scaling.attn_factor", (float)attn);
        /* Stated as Phi-3-mini's files state theirs; neither meshlm nor llama.cpp windows
         * a phi3 layer by it. */
        if (!rc && p->sliding_window > 0)
            rc = set_arch_u32(w, a, "attention.sliding_window", (uint32_t)p->sliding_window);
    }
    /* gpt-oss: no pattern key, as in its converted files; llama.cpp windows its even layers. */
    if (is_gpt_oss(a)) {
        rc = set_arch_u32(w, a, "attention.sliding_window", (uint32_t)(p->sliding_window ? p->sliding_window : 128));
        if (!rc) rc = set_arch_u32(w, a, "rope.scaling.original_context_length", (uint32_t)ctx_orig(p));
    }
    if (!rc && (p->rope_scale > 0 || is_gpt_oss(a))) {
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        rc = meshlm_gguf_set_str(w, key, is_gpt_oss(a) ? "yarn" : "linear");
        if (!rc) rc = set_arch_f32(w, a, "rope.scaling.factor", p->rope_scale > 0 ? p->rope_scale : 32.0f);
    }
    return rc;
}

static int write_hparams(meshlm_gguf_writer *w, const meshlm_synth_params *p, int32_t hd) {
    const char *a = p->arch;
    char name[64];
    /* llama.cpp looks up Phi-3's own special tokens in a vocabulary whose model name says
     * "phi3" or "phi-3"; the synthetic one has none of them. */
    snprintf(name, sizeof name, "meshlm-synth-%s", is_phi3(a) ? "phi" : a);
    int rc = meshlm_gguf_set_str(w, "general.architecture", a);
    if (!rc) rc = meshlm_gguf_set_str(w, "general.name", p->name ? p->name : name);
    /* llama.cpp names a file by its experts' type when that is MXFP4 (MOSTLY_MXFP4_MOE). */
    int ftype = p->expert_type_given && p->expert_type == MESHLM_TYPE_MXFP4 ? MESHLM_TYPE_MXFP4 : p->type;
    if (!rc) rc = meshlm_gguf_set_u32(w, "general.file_type", file_type_of(ftype));
    if (!rc) rc = meshlm_gguf_set_u32(w, "general.quantization_version", 2);
    if (!rc) rc = set_arch_u32(w, a, "vocab_size", (uint32_t)p->n_vocab);
    if (!rc) rc = set_arch_u32(w, a, "context_length", (uint32_t)p->n_ctx);
    if (!rc) rc = set_arch_u32(w, a, "embedding_length", (uint32_t)p->n_embd);
    if (!rc) rc = set_arch_u32(w, a, "block_count", (uint32_t)p->n_layer);
    if (!rc) rc = set_arch_u32(w, a, "feed_forward_length", (uint32_t)p->n_ff);
    if (!rc && p->n_expert) {
        rc = set_arch_u32(w, a, "expert_count", (uint32_t)p->n_expert);
        if (!rc) rc = set_arch_u32(w, a, "expert_used_count", (uint32_t)p->n_expert_used);
        /* llama reads no expert width: its experts are feed_forward_length wide */
        if (!rc && is_moe_arch(a))
            rc = set_arch_u32(w, a, "expert_feed_forward_length",
                              (uint32_t)(p->n_ff_exp ? p->n_ff_exp : p->n_ff));
        if (!rc && p->n_ff_shexp)
            rc = set_arch_u32(w, a, "expert_shared_feed_forward_length", (uint32_t)p->n_ff_shexp);
    }
    if (!rc) rc = set_arch_u32(w, a, "attention.head_count", (uint32_t)p->n_head);
    if (!rc) rc = set_arch_u32(w, a, "attention.head_count_kv", (uint32_t)p->n_head_kv);
    if (!rc) rc = set_arch_f32(w, a, "attention.layer_norm_rms_epsilon", p->rms_eps);
    if (!rc) rc = set_arch_f32(w, a, "rope.freq_base", p->rope_theta);
    if (!rc) rc = set_arch_u32(w, a, "rope.dimension_count", (uint32_t)hd);
    /* qwen3, qwen3moe, the gemma families and gpt-oss always state their head size; the
     * others only when it is not n_embd / n_head. */
    if (!rc && (is_qwen3_attn(a) || is_gemma(a) || is_gpt_oss(a) || (int64_t)hd * p->n_head != p->n_embd)) {
        rc = set_arch_u32(w, a, "attention.key_length", (uint32_t)hd);
        if (!rc) rc = set_arch_u32(w, a, "attention.value_length", (uint32_t)hd);
    }
    if (!rc) rc = write_family_hparams(w, p);
    return rc;
}

static int set_token_id(meshlm_gguf_writer *w, const char *key, int32_t id) {
    return id < 0 ? MESHLM_OK : meshlm_gguf_set_u32(w, key, (uint32_t)id);
}

static int write_vocab(meshlm_gguf_writer *w, const meshlm_synth_vocab *v) {
    int rc = meshlm_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!rc) rc = meshlm_gguf_set_str(w, "tokenizer.ggml.pre", v->pre);
    if (!rc) rc = meshlm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", v->tokens, (uint64_t)v->n_tokens);
    if (!rc) rc = meshlm_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n_tokens);
    if (!rc) rc = meshlm_gguf_set_arr_str(w, "tokenizer.ggml.merges", v->merges, (uint64_t)v->n_merges);
    if (!rc) rc = set_token_id(w, "tokenizer.ggml.bos_token_id", v->bos_id);
    if (!rc) rc = set_token_id(w, "tokenizer.ggml.eos_token_id", v->eos_id);
    if (!rc) rc = set_token_id(w, "tokenizer.ggml.eot_token_id", v->eot_id);
    if (!rc) rc = set_token_id(w, "tokenizer.ggml.eom_token_id", v->eom_id);
    if (!rc) rc = set_token_id(w, "tokenizer.ggml.padding_token_id", v->pad_id);
    if (!rc) rc = meshlm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (!rc) rc = meshlm_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (!rc) rc = meshlm_gguf_set_str(w, "tokenizer.chat_template", v->chat_template);
    return rc;
}

/* ---- weights ---- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Element i of the stream keyed by key, uniform in [-1, 1): a counter-based generator,
 * so any element can be made without the ones before it. */
static float uniform(uint64_t key, uint64_t i) {
    uint64_t r = mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull);
    return (float)((int64_t)(r >> 40) - (1 << 23)) * (1.0f / (float)(1 << 23));
}

/* Each tensor's stream depends only on the seed and its name. */
static uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return mix64(mix64(seed) ^ h);
}

/* llama3's rope scaling as per-frequency divisors: low frequencies (long wavelengths)
 * are divided by factor, high ones kept, the band between blended smoothly. */
static void rope_freqs(float *out, int32_t head_dim, float theta, float factor) {
    const double orig_ctx = 8192, low_ff = 1, high_ff = 4;
    const double low_wl = orig_ctx / low_ff, high_wl = orig_ctx / high_ff;
    for (int32_t i = 0; i < head_dim / 2; i++) {
        double freq = pow((double)theta, -2.0 * i / head_dim);
        double wl = 2 * M_PI / freq;
        double f;
        if (wl < high_wl) {
            f = 1;
        } else if (wl > low_wl) {
            f = factor;
        } else {
            double smooth = (orig_ctx / wl - low_ff) / (high_ff - low_ff);
            f = 1 / ((1 - smooth) / factor + smooth);
        }
        out[i] = (float)f;
    }
}

/* LongRoPE factor sets: short ones near 1, long ones rising geometrically to the context
 * ratio (at least 2, so the two sets differ) over the pairs, as Phi-3's do. */
static void longrope_factors(float *out, int32_t n, const meshlm_synth_params *p, bool longer) {
    double ratio = (double)p->n_ctx / ctx_orig(p);
    if (ratio < 2.0) ratio = 2.0;
    for (int32_t i = 0; i < n; i++) {
        double t = (double)(i + 1) / n;
        out[i] = (float)(longer ? pow(ratio, t) : 1.0 + 0.1 * t);
    }
}

typedef struct rows_job {
    const tspec *s;
    uint64_t key;
    float scale;
    uint8_t *dst;
    int64_t row0, row1;
    int rc;
} rows_job;

/* Uniform values scaled to std 1/sqrt(fan_in) (fan_in = the row length), so a matmul
 * keeps its input's scale and activations stay sane through many layers. */
static void *gen_rows(void *arg) {
    rows_job *j = arg;
    int64_t n = j->s->ne[0];
    size_t row_bytes = meshlm_type_row_bytes(j->s->type, n);
    float *row = malloc((size_t)n * sizeof *row);
    if (!row) {
        j->rc = MESHLM_ERR_NOMEM;
        return NULL;
    }
    for (int64_t r = j->row0; r < j->row1; r++) {
        uint64_t base = (uint64_t)r * (uint64_t)n;
        for (int64_t i = 0; i < n; i++) row[i] = j->scale * uniform(j->key, base + (uint64_t)i);
        meshlm_quantize_row(j->s->type, row, j->dst + (size_t)r * row_bytes, n);
    }
    free(row);
    return NULL;
}

static int n_workers(int64_t elems) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    return elems < (1 << 20) ? 1 : n;
}

static int fill_matrix(const tspec *s, uint64_t key, void *buf) {
    enum { MAX_WORKERS = 16 };
    rows_job jobs[MAX_WORKERS];
    pthread_t tid[MAX_WORKERS];
    bool started[MAX_WORKERS] = {false};
    /* An expert tensor's rows are its experts' rows one after the other: row r of the
     * stream is flattened row r, so a 2-D tensor's values are as they always were. */
    int64_t rows = s->ne[1] * s->ne[2];
    int nw = n_workers(s->ne[0] * rows);
    for (int k = 0; k < nw; k++) {
        jobs[k] = (rows_job){s, key, s->scale * sqrtf(3.0f / (float)s->ne[0]), buf,
                             rows * k / nw, rows * (k + 1) / nw, MESHLM_OK};
        if (k > 0) started[k] = pthread_create(&tid[k], NULL, gen_rows, &jobs[k]) == 0;
    }
    /* Jobs whose thread could not start run here, after this thread's own. */
    int rc = MESHLM_OK;
    for (int k = 0; k < nw; k++) {
        if (!started[k]) gen_rows(&jobs[k]);
    }
    for (int k = 0; k < nw; k++) {
        if (started[k]) pthread_join(tid[k], NULL);
        if (jobs[k].rc) rc = jobs[k].rc;
    }
    return rc ? meshlm_fail(rc, "synth: out of memory making '%s'", s->name) : MESHLM_OK;
}

typedef struct fill_ctx {
    const meshlm_synth_params *p;
    const plan *pl;
    uint64_t done, total;
} fill_ctx;

static int fill_tensor(void *user, int64_t index, const meshlm_gguf_tensor *t, void *buf) {
    fill_ctx *c = user;
    const tspec *s = &c->pl->t[index];
    if (strcmp(t->name, s->name))
        return meshlm_fail(MESHLM_ERR_INTERNAL, "synth: writer asked for '%s', expected '%s'",
                           t->name, s->name);
    uint64_t key = tensor_key(c->p->seed, s->name);
    float *f = buf;
    int rc = MESHLM_OK;
    switch (s->kind) {
    case T_MATRIX: rc = fill_matrix(s, key, buf); break;
    case T_NORM:
        for (int64_t i = 0; i < s->ne[0]; i++) f[i] = 1.0f + 0.1f * uniform(key, (uint64_t)i);
        break;
    case T_BIAS:
        for (int64_t i = 0; i < s->ne[0] * s->ne[1]; i++) f[i] = s->scale * uniform(key, (uint64_t)i);
        break;
    case T_ROPE_FREQS:
        rope_freqs(f, c->pl->head_dim, c->p->rope_theta,
                   c->p->rope_freqs_factor > 0 ? c->p->rope_freqs_factor : 8.0f);
        break;
    case T_ROPE_LONG:
    case T_ROPE_SHORT: longrope_factors(f, (int32_t)s->ne[0], c->p, s->kind == T_ROPE_LONG); break;
    }
    c->done += t->nbytes;
    if (!rc && c->p->progress) c->p->progress(c->p->progress_user, s->name, c->done, c->total);
    return rc;
}

static int add_tensors(meshlm_gguf_writer *w, const plan *pl, uint64_t *total) {
    *total = 0;
    for (int i = 0; i < pl->n; i++) {
        const tspec *s = &pl->t[i];
        int rc = meshlm_gguf_add_tensor(w, s->name, s->type, s->n_dims, s->ne);
        if (rc) return rc;
        *total += meshlm_type_row_bytes(s->type, s->ne[0]) * (uint64_t)s->ne[1] * (uint64_t)s->ne[2];
    }
    return MESHLM_OK;
}

int meshlm_synth_write(const meshlm_synth_params *p, const char *path) {
    int32_t hd = 0;
    int rc = check_params(p, &hd);
    if (rc) return rc;
    plan pl = {0};
    meshlm_synth_vocab v = {0};
    meshlm_gguf_writer *w = NULL;
    rc = make_plan(p, hd, &pl);
    if (!rc) rc = check_blocks(&pl);
    if (!rc) rc = meshlm_synth_vocab_build(p->arch, p->n_vocab, &v);
    if (!rc && p->pre) v.pre = p->pre;
    if (!rc) rc = meshlm_gguf_writer_create(&w);
    if (!rc) rc = write_hparams(w, p, hd);
    if (!rc) rc = write_vocab(w, &v);
    fill_ctx c = {p, &pl, 0, 0};
    if (!rc) rc = add_tensors(w, &pl, &c.total);
    if (!rc) rc = meshlm_gguf_write(w, path, fill_tensor, &c);
    meshlm_gguf_writer_free(w);
    meshlm_synth_vocab_free(&v);
    free(pl.t);
    return rc;
}

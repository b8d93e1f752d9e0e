/* Model loading: architecture and hyper-parameters from GGUF metadata, then every tensor
 * bound and shape-checked against what the architecture expects. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"

enum { MAX_LAYERS = 1024, MAX_DIM = 1 << 20 };

typedef struct arch_info {
    const char *name;
    meshlm_arch arch;
    bool neox, has_qkv_bias, has_qk_norm;
    bool gemma; /* post-norms, GeGLU, scaled embeddings, sliding windows (gemma_hparams) */
    bool phi3;  /* fused gate/up, fused (or separate) q/k/v, LongRoPE factors (phi3_hparams) */
    bool gptoss; /* sinks, biases everywhere, routed by softmax over the top k (gptoss_hparams) */
} arch_info;

static const arch_info archs[] = {
    {"llama", MESHLM_ARCH_LLAMA, false, false, false, false, false, false},
    {"qwen2", MESHLM_ARCH_QWEN2, true, true, false, false, false, false},
    {"qwen3", MESHLM_ARCH_QWEN3, true, false, true, false, false, false},
    {"gemma2", MESHLM_ARCH_GEMMA2, true, false, false, true, false, false},
    {"gemma3", MESHLM_ARCH_GEMMA3, true, false, true, true, false, false},
    {"phi3", MESHLM_ARCH_PHI3, true, false, false, false, true, false},
    {"smollm3", MESHLM_ARCH_SMOLLM3, false, false, false, false, false, false},
    {"qwen3moe", MESHLM_ARCH_QWEN3MOE, true, false, true, false, false, false},
    {"qwen2moe", MESHLM_ARCH_QWEN2MOE, true, true, false, false, false, false},
    {"gpt-oss", MESHLM_ARCH_GPTOSS, true, true, false, false, false, true},
};

static const arch_info *find_arch(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strlen(archs[i].name) == len && !memcmp(archs[i].name, name, len)) return &archs[i];
    return NULL;
}

/* Looks up "{arch}.suffix". A missing required key is appended to missing (so one message
 * can list them all) and reported as absent; a missing optional key is just absent. */
static void arch_key(const meshlm_gguf *g, const char *arch, const char *suffix, bool required, char *key,
                     size_t key_cap, char *missing, size_t cap, bool *present) {
    snprintf(key, key_cap, "%s.%s", arch, suffix);
    *present = meshlm_gguf_find_key(g, key) >= 0;
    if (!*present && required) {
        size_t n = strlen(missing);
        snprintf(missing + n, cap - n, "%s%s", n ? ", " : "", key);
    }
}

static int arch_int(const meshlm_gguf *g, const char *arch, const char *suffix, bool required,
                    int64_t lo, int64_t hi, int32_t *out, char *missing, size_t cap) {
    char key[128];
    bool present;
    arch_key(g, arch, suffix, required, key, sizeof key, missing, cap, &present);
    if (!present) return MESHLM_OK;
    int64_t v;
    int rc = meshlm_gguf_get_int(g, key, &v);
    if (rc != MESHLM_OK) return rc;
    if (v < lo || v > hi)
        return meshlm_fail(MESHLM_ERR_FORMAT, "key '%s' is %lld, outside [%lld, %lld]", key,
                           (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return MESHLM_OK;
}

static int arch_float(const meshlm_gguf *g, const char *arch, const char *suffix, bool required,
                      float *out, char *missing, size_t cap) {
    char key[128];
    bool present;
    arch_key(g, arch, suffix, required, key, sizeof key, missing, cap, &present);
    if (!present) return MESHLM_OK;
    double v;
    int rc = meshlm_gguf_get_float(g, key, &v);
    if (rc != MESHLM_OK) return rc;
    if (!isfinite(v) || v <= 0.0 || v > 1e30)
        return meshlm_fail(MESHLM_ERR_FORMAT, "key '%s' is %g, not a finite positive number", key, v);
    *out = (float)v;
    return MESHLM_OK;
}

/* Rope scaling: "rope.scaling.type" linear (the factor dividing positions) or yarn (the
 * factor over "original_context_length" positions, with llama.cpp's defaults for the rest);
 * the other kinds change more than the frequencies and are refused rather than run unscaled. */
static int rope_scaling(const meshlm_gguf *g, meshlm_hparams *hp, char *missing, size_t cap) {
    char key[128];
    const char *s;
    size_t len;
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch_name);
    bool none = false, yarn = false;
    if (meshlm_gguf_find_key(g, key) >= 0) {
        int rc = meshlm_gguf_get_str(g, key, &s, &len);
        if (rc) return rc;
        none = len == 4 && !memcmp(s, "none", 4);
        yarn = len == 4 && !memcmp(s, "yarn", 4);
        if (!none && !yarn && !(len == 6 && !memcmp(s, "linear", 6)))
            return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "rope scaling '%.*s' is not supported (linear, yarn or none)",
                               (int)(len > 32 ? 32 : len), s);
    }
    float factor = 0;
    const char *a = hp->arch_name;
    int rc = arch_float(g, a, "rope.scaling.factor", false, &factor, missing, cap);
    if (!rc && factor == 0) rc = arch_float(g, a, "rope.scale_linear", false, &factor, missing, cap);
    if (rc || none || factor <= 0) return rc;
    if (!yarn) {
        hp->rope_scale = factor;
        return MESHLM_OK;
    }
    hp->rope_yarn = factor;
    hp->yarn_beta_fast = 32.0f, hp->yarn_beta_slow = 1.0f;
    if ((rc = arch_int(g, a, "rope.scaling.original_context_length", false, 1, 1 << 24, &hp->n_ctx_orig, missing,
                       cap)) ||
        (rc = arch_float(g, a, "rope.scaling.attn_factor", false, &hp->rope_attn_factor, missing, cap)) ||
        (rc = arch_float(g, a, "rope.scaling.yarn_beta_fast", false, &hp->yarn_beta_fast, missing, cap)) ||
        (rc = arch_float(g, a, "rope.scaling.yarn_beta_slow", false, &hp->yarn_beta_slow, missing, cap)))
        return rc;
    snprintf(key, sizeof key, "%s.rope.scaling.yarn_log_multiplier", a);
    if (meshlm_gguf_find_key(g, key) >= 0)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "rope scaling: '%s' is not supported", key);
    return MESHLM_OK;
}

/* Which layers are windowed: "attention.sliding_window_pattern" is either a number n (layer
 * il is windowed when il % n < n - 1; 0 windows every layer) or one flag per layer. */
static int swa_pattern(const meshlm_gguf *g, meshlm_hparams *hp, char *missing, size_t cap) {
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", hp->arch_name);
    int64_t i = meshlm_gguf_find_key(g, key);
    if (i < 0 || meshlm_gguf_kv_type(g, i) != MESHLM_GGUF_ARRAY)
        return arch_int(g, hp->arch_name, "attention.sliding_window_pattern", false, 0, MAX_LAYERS, &hp->swa_pattern,
                        missing, cap);
    int type;
    uint64_t n;
    const void *data;
    int rc = meshlm_gguf_get_arr(g, key, &type, &n, &data);
    if (rc) return rc;
    if ((type != MESHLM_GGUF_BOOL && type != MESHLM_GGUF_U8 && type != MESHLM_GGUF_I8) || n != (uint64_t)hp->n_layer)
        return meshlm_fail(MESHLM_ERR_FORMAT, "key '%s' must be %d flags, one per layer (it has %llu of type %s)", key,
                           hp->n_layer, (unsigned long long)n, meshlm_gguf_vtype_name(type));
    if (!(hp->swa_flags = malloc(n))) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory for '%s'", key);
    for (uint64_t l = 0; l < n; l++) hp->swa_flags[l] = ((const uint8_t *)data)[l] != 0;
    return MESHLM_OK;
}

/* The Gemma parts, with the defaults llama.cpp assumes when a key is absent. Gemma 2 caps
 * attention scores and logits and windows every other layer. Gemma 3 has no attention cap,
 * a final cap only if its file states one, windows five layers of six (and none when the
 * file states no window), and rotates its windowed layers with a base of their own,
 * unscaled. Each family's largest model (46 and 62 layers) scales queries by
 * n_embd / n_head rather than by its head size. */
static int gemma_hparams(const meshlm_gguf *g, meshlm_hparams *hp) {
    char missing[256] = "";
    const char *a = hp->arch_name;
    bool gemma2 = hp->arch == MESHLM_ARCH_GEMMA2;
    hp->ffn_act = MESHLM_ACT_GELU;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    if (hp->n_layer == (gemma2 ? 46 : 62)) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    int rc = MESHLM_OK;
    if (gemma2) {
        hp->attn_softcap = 50.0f;
        hp->final_softcap = 30.0f;
        hp->n_swa = 4096;
        hp->swa_pattern = 2;
        if (!rc) rc = arch_float(g, a, "attn_logit_softcapping", false, &hp->attn_softcap, missing, sizeof missing);
    } else {
        hp->swa_pattern = 6;
        hp->rope_theta_swa = 10000.0f;
        if (!rc) rc = swa_pattern(g, hp, missing, sizeof missing);
        if (!rc) rc = arch_float(g, a, "rope.freq_base_swa", false, &hp->rope_theta_swa, missing, sizeof missing);
    }
    if (!rc) rc = arch_int(g, a, "attention.sliding_window", false, 1, 1 << 24, &hp->n_swa, missing, sizeof missing);
    if (!rc) rc = arch_float(g, a, "final_logit_softcapping", false, &hp->final_softcap, missing, sizeof missing);
    return rc;
}

/* Phi-3's LongRoPE: the context beyond which the long factors apply (the training context
 * unless the file states the original one) and the attention factor on the rope's cos and
 * sin. Its sliding_window key is not used: llama.cpp runs every phi3 layer unwindowed. */
static int phi3_hparams(const meshlm_gguf *g, meshlm_hparams *hp) {
    char missing[256] = "";
    const char *a = hp->arch_name;
    int rc = MESHLM_OK;
    if (!rc)
        rc = arch_int(g, a, "rope.scaling.original_context_length", false, 1, 1 << 24, &hp->n_ctx_orig, missing,
                      sizeof missing);
    if (!rc) rc = arch_float(g, a, "rope.scaling.attn_factor", false, &hp->rope_attn_factor, missing, sizeof missing);
    return rc;
}

/* Experts: "expert_count" makes any of these architectures a mixture (Mixtral is llama's);
 * the experts' width is "expert_feed_forward_length", else the dense one (Qwen2-MoE: that
 * over the experts used). Mixtral and Qwen3-MoE renormalise the chosen experts' weights;
 * Qwen2-MoE does not, and adds a shared expert of "expert_shared_feed_forward_length". */
static int moe_hparams(const meshlm_gguf *g, meshlm_hparams *hp) {
    char missing[256] = "";
    const char *a = hp->arch_name;
    bool qwen2 = hp->arch == MESHLM_ARCH_QWEN2MOE;
    bool needed = hp->arch == MESHLM_ARCH_QWEN3MOE || qwen2 || hp->arch == MESHLM_ARCH_GPTOSS;
    int rc = arch_int(g, a, "expert_count", needed, 1, 4096, &hp->n_expert, missing, sizeof missing);
    if (!rc && hp->n_expert > 0)
        rc = arch_int(g, a, "expert_used_count", true, 1, 4096, &hp->n_expert_used, missing, sizeof missing);
    if (rc) return rc;
    if (missing[0]) return meshlm_fail(MESHLM_ERR_FORMAT, "architecture '%s' needs keys that are missing: %s", a, missing);
    if (hp->n_expert == 0) return MESHLM_OK;
    if (hp->n_expert_used > hp->n_expert)
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s.expert_used_count %d exceeds expert_count %d", a, hp->n_expert_used,
                           hp->n_expert);
    hp->n_ff_exp = qwen2 ? hp->n_ff / hp->n_expert_used : hp->n_ff;
    hp->expert_norm = !qwen2;
    hp->shared_expert = qwen2;
    rc = arch_int(g, a, "expert_feed_forward_length", false, 1, MAX_DIM, &hp->n_ff_exp, missing, sizeof missing);
    if (!rc && qwen2)
        rc = arch_int(g, a, "expert_shared_feed_forward_length", false, 1, MAX_DIM, &hp->n_ff, missing, sizeof missing);
    if (!rc && hp->n_ff_exp < 1) return meshlm_fail(MESHLM_ERR_FORMAT, "%s: the experts' width is 0", a);
    return rc;
}

/* gpt-oss: every other layer windowed (the even ones), the windowed layers' rope (if it has
 * a base of its own) scaled as the others, and experts chosen by their raw scores with the
 * weights a softmax over the chosen, through the clamped SwiGLU. */
static int gptoss_hparams(const meshlm_gguf *g, meshlm_hparams *hp) {
    char missing[256] = "";
    const char *a = hp->arch_name;
    hp->swa_pattern = 2;
    hp->rope_swa_scaled = true;
    hp->expert_norm = false;
    hp->expert_softmax_k = true;
    hp->expert_act = MESHLM_ACT_SWIGLU_OAI;
    int rc = arch_int(g, a, "attention.sliding_window", true, 1, 1 << 24, &hp->n_swa, missing, sizeof missing);
    if (!rc) rc = arch_float(g, a, "rope.freq_base_swa", false, &hp->rope_theta_swa, missing, sizeof missing);
    if (!rc && missing[0])
        return meshlm_fail(MESHLM_ERR_FORMAT, "architecture '%s' needs keys that are missing: %s", a, missing);
    return rc;
}

static int load_hparams(const meshlm_gguf *g, meshlm_hparams *hp, const arch_info **ai_out) {
    const char *s;
    size_t len;
    int rc = meshlm_gguf_get_str(g, "general.architecture", &s, &len);
    if (rc != MESHLM_OK) return rc;
    const arch_info *ai = find_arch(s, len);
    if (!ai)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "architecture '%.*s' is not supported "
                           "(supported: llama, qwen2, qwen2moe, qwen3, qwen3moe, gemma2, gemma3, phi3, smollm3, "
                           "gpt-oss)",
                           (int)(len > 64 ? 64 : len), s);
    *ai_out = ai;
    memset(hp, 0, sizeof *hp);
    hp->arch = ai->arch;
    hp->arch_name = ai->name;
    hp->rope_neox = ai->neox;
    hp->rope_theta = 10000.0f;
    hp->rope_scale = 1.0f;
    hp->n_head_kv = -1;
    hp->head_dim = -1;
    hp->n_rot = -1;
    hp->n_vocab = -1;
    char missing[512] = "";
    const char *a = ai->name;
    if ((rc = arch_int(g, a, "context_length", true, 1, 1 << 24, &hp->n_ctx_train, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "embedding_length", true, 1, MAX_DIM, &hp->n_embd, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "block_count", true, 1, MAX_LAYERS, &hp->n_layer, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "feed_forward_length", true, 1, MAX_DIM, &hp->n_ff, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "attention.head_count", true, 1, 4096, &hp->n_head, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "attention.head_count_kv", false, 1, 4096, &hp->n_head_kv, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "attention.key_length", false, 2, 1024, &hp->head_dim, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "rope.dimension_count", false, 2, 1024, &hp->n_rot, missing, sizeof missing)) ||
        (rc = arch_int(g, a, "vocab_size", false, 1, 1 << 24, &hp->n_vocab, missing, sizeof missing)) ||
        (rc = arch_float(g, a, "attention.layer_norm_rms_epsilon", true, &hp->rms_eps, missing, sizeof missing)) ||
        (rc = arch_float(g, a, "rope.freq_base", false, &hp->rope_theta, missing, sizeof missing)))
        return rc;
    if (missing[0])
        return meshlm_fail(MESHLM_ERR_FORMAT, "architecture '%s' needs keys that are missing: %s", a, missing);
    if (hp->n_head_kv < 0) hp->n_head_kv = hp->n_head;
    if (hp->n_head % hp->n_head_kv)
        return meshlm_fail(MESHLM_ERR_FORMAT, "head count %d is not a multiple of the KV head count %d",
                           hp->n_head, hp->n_head_kv);
    if (hp->head_dim < 0) {
        if (hp->n_embd % hp->n_head)
            return meshlm_fail(MESHLM_ERR_FORMAT, "embedding length %d is not a multiple of the head count %d",
                               hp->n_embd, hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    int32_t value_len = hp->head_dim;
    if ((rc = arch_int(g, a, "attention.value_length", false, 2, 1024, &value_len, missing, sizeof missing)))
        return rc;
    if (value_len != hp->head_dim)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "key length %d differs from value length %d",
                           hp->head_dim, value_len);
    if (hp->head_dim % 2)
        return meshlm_fail(MESHLM_ERR_FORMAT, "head size %d is odd: rope needs pairs", hp->head_dim);
    if (hp->n_rot < 0) hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope dimension count %d must be even and at most the head size %d",
                           hp->n_rot, hp->head_dim);
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->n_ctx_orig = hp->n_ctx_train;
    hp->rope_attn_factor = 1.0f;
    if ((rc = moe_hparams(g, hp)) || (rc = rope_scaling(g, hp, missing, sizeof missing))) return rc;
    if (ai->gptoss) return gptoss_hparams(g, hp);
    if (ai->phi3) return phi3_hparams(g, hp);
    if (ai->arch == MESHLM_ARCH_SMOLLM3) hp->no_rope_step = 4; /* as its config's no_rope_layer_interval */
    return ai->gemma ? gemma_hparams(g, hp) : MESHLM_OK;
}

/* Finds a tensor and checks its shape; ne1 = 1 for vectors. */
static int find_checked(const meshlm_gguf *g, const char *name, int64_t ne0, int64_t ne1, bool required,
                        const meshlm_gguf_tensor **out) {
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
    *out = t;
    if (!t)
        return required ? meshlm_fail(MESHLM_ERR_FORMAT, "tensor '%s' is missing", name) : MESHLM_OK;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                           (long long)t->ne[3], (long long)ne0, (long long)ne1);
    return MESHLM_OK;
}

static int bind_matrix(const meshlm_gguf *g, const char *name, int64_t n_in, int64_t n_out, bool required,
                       meshlm_matrix *m) {
    const meshlm_gguf_tensor *t;
    int rc = find_checked(g, name, n_in, n_out, required, &t);
    if (rc || !t) return rc;
    *m = (meshlm_matrix){t->data, t->type, n_in, n_out, meshlm_type_row_bytes(t->type, n_in), false};
    return MESHLM_OK;
}

/* Vectors (norm weights, biases) are small: keep an f32 copy whatever the file's type. */
static int load_vector(const meshlm_gguf *g, const char *name, int64_t n, bool required, float **out) {
    const meshlm_gguf_tensor *t;
    *out = NULL;
    int rc = find_checked(g, name, n, 1, required, &t);
    if (rc || !t) return rc;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return meshlm_fail(MESHLM_ERR_NOMEM, "tensor '%s': out of memory", name);
    meshlm_dequantize_row(t->type, t->data, v, n);
    *out = v;
    return MESHLM_OK;
}

/* A 2-D table of n_rows vectors of n values each (per-expert biases), as one f32 copy. */
static int load_table(const meshlm_gguf *g, const char *name, int64_t n, int64_t n_rows, float **out) {
    const meshlm_gguf_tensor *t;
    *out = NULL;
    int rc = find_checked(g, name, n, n_rows, true, &t);
    if (rc) return rc;
    float *v = malloc((size_t)(n * n_rows) * sizeof *v);
    if (!v) return meshlm_fail(MESHLM_ERR_NOMEM, "tensor '%s': out of memory", name);
    size_t row_bytes = meshlm_type_row_bytes(t->type, n);
    for (int64_t r = 0; r < n_rows; r++)
        meshlm_dequantize_row(t->type, (const char *)t->data + (size_t)r * row_bytes, v + (size_t)(r * n), n);
    *out = v;
    return MESHLM_OK;
}

/* Rows [row0, row0 + n_out) of w as a matrix of their own: a view, exact for any type since
 * quantized blocks run along rows. */
static meshlm_matrix rows_of(const meshlm_matrix *w, int64_t row0, int64_t n_out) {
    meshlm_matrix r = *w;
    r.data = (const char *)w->data + (size_t)row0 * w->row_bytes;
    r.n_out = n_out;
    return r;
}

/* phi3's fused tensors as the separate matrices the shards split: attn_qkv holds q's rows,
 * then k's, then v's (files with separate q/k/v are taken as they are); ffn_up holds the
 * gate's rows, then the up projection's, as llama.cpp's SwiGLU on it reads them. */
static int load_phi3_fused(const meshlm_gguf *g, const meshlm_hparams *hp, int il, meshlm_layer *L) {
    int64_t e = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
    meshlm_matrix all = {0};
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    if ((rc = bind_matrix(g, NAME("attn_qkv.weight"), e, q + 2 * kv, false, &all))) return rc;
    if (all.data) {
        L->wq = rows_of(&all, 0, q);
        L->wk = rows_of(&all, q, kv);
        L->wv = rows_of(&all, q + kv, kv);
    } else if ((rc = bind_matrix(g, NAME("attn_q.weight"), e, q, true, &L->wq)) ||
               (rc = bind_matrix(g, NAME("attn_k.weight"), e, kv, true, &L->wk)) ||
               (rc = bind_matrix(g, NAME("attn_v.weight"), e, kv, true, &L->wv))) {
        return rc;
    }
    if ((rc = bind_matrix(g, NAME("ffn_up.weight"), e, 2 * (int64_t)hp->n_ff, true, &all))) return rc;
#undef NAME
    L->w1 = rows_of(&all, 0, hp->n_ff);
    L->w3 = rows_of(&all, hp->n_ff, hp->n_ff);
    return MESHLM_OK;
}

/* A 3-D tensor of n_expert matrices [n_in x n_out] as one view per expert: expert x's
 * rows follow expert x - 1's in the file. */
static int bind_experts(const meshlm_gguf *g, const char *name, int64_t n_in, int64_t n_out, int64_t n_expert,
                        meshlm_matrix **out) {
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
    if (!t) return meshlm_fail(MESHLM_ERR_FORMAT, "tensor '%s' is missing", name);
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != n_expert || t->ne[3] != 1)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                           (long long)n_in, (long long)n_out, (long long)n_expert);
    meshlm_matrix *w = calloc((size_t)n_expert, sizeof *w);
    if (!w) return meshlm_fail(MESHLM_ERR_NOMEM, "tensor '%s': out of memory", name);
    size_t row_bytes = meshlm_type_row_bytes(t->type, n_in);
    for (int64_t x = 0; x < n_expert; x++)
        w[x] = (meshlm_matrix){(const char *)t->data + (size_t)x * (size_t)n_out * row_bytes, t->type, n_in, n_out,
                               row_bytes, false};
    *out = w;
    return MESHLM_OK;
}

/* A mixture-of-experts FFN: the router and the experts' gate, up and down matrices. */
static int load_moe(const meshlm_gguf *g, const meshlm_hparams *hp, int il, meshlm_layer *L) {
    int64_t e = hp->n_embd, f = hp->n_ff_exp, x = hp->n_expert;
    char n[96];
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    if ((rc = bind_matrix(g, NAME("ffn_gate_inp.weight"), e, x, true, &L->router)) ||
        (rc = bind_experts(g, NAME("ffn_gate_exps.weight"), e, f, x, &L->exp_gate)) ||
        (rc = bind_experts(g, NAME("ffn_up_exps.weight"), e, f, x, &L->exp_up)) ||
        (rc = bind_experts(g, NAME("ffn_down_exps.weight"), f, e, x, &L->exp_down)))
        return rc;
    if (hp->shared_expert &&
        ((rc = load_vector(g, NAME("ffn_gate_inp_shexp.weight"), e, true, &L->shexp_gate)) ||
         (rc = bind_matrix(g, NAME("ffn_gate_shexp.weight"), e, hp->n_ff, true, &L->w1)) ||
         (rc = bind_matrix(g, NAME("ffn_up_shexp.weight"), e, hp->n_ff, true, &L->w3)) ||
         (rc = bind_matrix(g, NAME("ffn_down_shexp.weight"), hp->n_ff, e, true, &L->w2))))
        return rc;
#undef NAME
    if (L->exp_gate[0].type != L->exp_up[0].type)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "layer %d: expert gate (%s) and up (%s) types differ", il,
                           meshlm_type_name(L->exp_gate[0].type), meshlm_type_name(L->exp_up[0].type));
    return MESHLM_OK;
}

/* gpt-oss's extras: the output projection's bias, the attention sinks, and the biases of
 * the router and of every expert's three matrices. */
static int load_gptoss(const meshlm_gguf *g, const meshlm_hparams *hp, int il, meshlm_layer *L) {
    int64_t e = hp->n_embd, f = hp->n_ff_exp, x = hp->n_expert;
    char n[96];
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    if ((rc = load_vector(g, NAME("attn_output.bias"), e, true, &L->bo)) ||
        (rc = load_vector(g, NAME("attn_sinks.weight"), hp->n_head, true, &L->attn_sinks)) ||
        (rc = load_vector(g, NAME("ffn_gate_inp.bias"), x, true, &L->router_b)) ||
        (rc = load_table(g, NAME("ffn_gate_exps.bias"), f, x, &L->exp_gate_b)) ||
        (rc = load_table(g, NAME("ffn_up_exps.bias"), f, x, &L->exp_up_b)) ||
        (rc = load_table(g, NAME("ffn_down_exps.bias"), e, x, &L->exp_down_b)))
        return rc;
#undef NAME
    return MESHLM_OK;
}

static int load_layer(const meshlm_gguf *g, const meshlm_hparams *hp, const arch_info *ai, int il,
                      meshlm_layer *L) {
    int64_t e = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    /* gpt-oss names its FFN's input norm post_attention_norm (it follows the attention). */
    if ((rc = load_vector(g, NAME("attn_norm.weight"), e, true, &L->attn_norm)) ||
        (rc = load_vector(g, ai->gptoss ? NAME("post_attention_norm.weight") : NAME("ffn_norm.weight"), e, true,
                          &L->ffn_norm)) ||
        (rc = bind_matrix(g, NAME("attn_output.weight"), q, e, true, &L->wo)))
        return rc;
    if (!hp->n_expert && (rc = bind_matrix(g, NAME("ffn_down.weight"), hp->n_ff, e, true, &L->w2))) return rc;
    if (ai->phi3) return load_phi3_fused(g, hp, il, L);
    if ((rc = bind_matrix(g, NAME("attn_q.weight"), e, q, true, &L->wq)) ||
        (rc = bind_matrix(g, NAME("attn_k.weight"), e, kv, true, &L->wk)) ||
        (rc = bind_matrix(g, NAME("attn_v.weight"), e, kv, true, &L->wv)))
        return rc;
    if (hp->n_expert) {
        if ((rc = load_moe(g, hp, il, L))) return rc;
    } else if ((rc = bind_matrix(g, NAME("ffn_gate.weight"), e, hp->n_ff, true, &L->w1)) ||
               (rc = bind_matrix(g, NAME("ffn_up.weight"), e, hp->n_ff, true, &L->w3))) {
        return rc;
    }
    if (ai->has_qkv_bias &&
        ((rc = load_vector(g, NAME("attn_q.bias"), q, true, &L->bq)) ||
         (rc = load_vector(g, NAME("attn_k.bias"), kv, true, &L->bk)) ||
         (rc = load_vector(g, NAME("attn_v.bias"), kv, true, &L->bv))))
        return rc;
    if (ai->has_qk_norm &&
        ((rc = load_vector(g, NAME("attn_q_norm.weight"), hp->head_dim, true, &L->q_norm)) ||
         (rc = load_vector(g, NAME("attn_k_norm.weight"), hp->head_dim, true, &L->k_norm))))
        return rc;
    if (ai->gemma &&
        ((rc = load_vector(g, NAME("post_attention_norm.weight"), e, true, &L->attn_post_norm)) ||
         (rc = load_vector(g, NAME("post_ffw_norm.weight"), e, true, &L->ffn_post_norm))))
        return rc;
#undef NAME
    return ai->gptoss ? load_gptoss(g, hp, il, L) : MESHLM_OK;
}

static int load_weights(meshlm_model *m, const arch_info *ai) {
    const meshlm_gguf *g = m->gguf;
    meshlm_hparams *hp = &m->hp;
    const meshlm_gguf_tensor *emb = meshlm_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return meshlm_fail(MESHLM_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    int32_t n_vocab_tok = meshlm_tokenizer_n_vocab(m->tok);
    if (hp->n_vocab < 0) hp->n_vocab = n_vocab_tok;
    if (hp->n_vocab != n_vocab_tok)
        return meshlm_fail(MESHLM_ERR_FORMAT, "vocab_size %d differs from the tokenizer's %d tokens",
                           hp->n_vocab, n_vocab_tok);
    int rc = bind_matrix(g, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd);
    if (rc) return rc;
    hp->tied_output = meshlm_gguf_find_tensor(g, "output.weight") == NULL;
    if (hp->tied_output)
        m->output = m->tok_embd;
    else if ((rc = bind_matrix(g, "output.weight", hp->n_embd, hp->n_vocab, true, &m->output)))
        return rc;
    if ((rc = load_vector(g, "output_norm.weight", hp->n_embd, true, &m->output_norm)) ||
        (rc = load_vector(g, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs)))
        return rc;
    if (ai->phi3 && ((rc = load_vector(g, "rope_factors_long.weight", hp->n_rot / 2, false, &m->rope_long)) ||
                     (rc = load_vector(g, "rope_factors_short.weight", hp->n_rot / 2, false, &m->rope_short))))
        return rc;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++)
        if ((rc = load_layer(g, hp, ai, il, &m->layers[il]))) return rc;
    return MESHLM_OK;
}

meshlm_status meshlm_model_load(const char *path, meshlm_model **out) {
    if (!path || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_model_load: NULL argument");
    *out = NULL;
    meshlm_model *m = calloc(1, sizeof *m);
    if (!m) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory", path);
    const arch_info *ai = NULL;
    int rc = meshlm_gguf_open(path, &m->gguf);
    if (rc == MESHLM_OK) {
        if ((rc = load_hparams(m->gguf, &m->hp, &ai)) || (rc = meshlm_tokenizer_from_gguf(m->gguf, &m->tok)) ||
            (rc = load_weights(m, ai)))
            meshlm_fail_prefix(rc, "%s", path);
    }
    if (rc != MESHLM_OK) {
        meshlm_model_free(m);
        return (meshlm_status)rc;
    }
    *out = m;
    return MESHLM_OK;
}

void meshlm_model_free(meshlm_model *m) {
    if (!m) return;
    meshlm_prefetch_stop(m->prefetch);
    free(m->huge);
    if (m->layers) {
        for (int il = 0; il < m->hp.n_layer; il++) {
            meshlm_layer *L = &m->layers[il];
            free(L->attn_norm), free(L->ffn_norm), free(L->q_norm), free(L->k_norm);
            free(L->attn_post_norm), free(L->ffn_post_norm);
            free(L->bq), free(L->bk), free(L->bv), free(L->bo), free(L->attn_sinks);
            free(L->router_b), free(L->exp_gate_b), free(L->exp_up_b), free(L->exp_down_b);
            free(L->exp_gate), free(L->exp_up), free(L->exp_down), free(L->shexp_gate);
        }
        free(m->layers);
    }
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->output_norm);
    free(m->rope_freqs);
    free(m->rope_long), free(m->rope_short);
    free(m->hp.swa_flags);
    meshlm_tokenizer_free(m->tok);
    meshlm_gguf_close(m->gguf);
    free(m);
}

int32_t meshlm_model_n_vocab(const meshlm_model *m) { return m->hp.n_vocab; }
int32_t meshlm_model_n_ctx_train(const meshlm_model *m) { return m->hp.n_ctx_train; }
const char *meshlm_model_arch(const meshlm_model *m) { return m->hp.arch_name; }
int32_t meshlm_model_n_experts(const meshlm_model *m) { return m->hp.n_expert; }
int32_t meshlm_model_n_experts_used(const meshlm_model *m) { return m->hp.n_expert_used; }

static uint64_t matrix_bytes(const meshlm_matrix *w) { return (uint64_t)w->row_bytes * (uint64_t)w->n_out; }

/* A decode token reads the router and its n_expert_used experts of each MoE layer. */
uint64_t meshlm_model_weight_bytes(const meshlm_model *m) {
    uint64_t b = matrix_bytes(&m->output);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const meshlm_layer *L = &m->layers[il];
        b += matrix_bytes(&L->wq) + matrix_bytes(&L->wk) + matrix_bytes(&L->wv) + matrix_bytes(&L->wo) +
             matrix_bytes(&L->w1) + matrix_bytes(&L->w2) + matrix_bytes(&L->w3) + matrix_bytes(&L->router);
        if (L->exp_gate)
            b += (uint64_t)m->hp.n_expert_used *
                 (matrix_bytes(&L->exp_gate[0]) + matrix_bytes(&L->exp_up[0]) + matrix_bytes(&L->exp_down[0]));
    }
    return b;
}

uint64_t meshlm_model_n_params(const meshlm_model *m) {
    uint64_t n = 0;
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(m->gguf); i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(m->gguf, i);
        n += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    return n;
}

meshlm_status meshlm_tokenize(const meshlm_model *m, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t *out, int32_t cap, int32_t *n_out) {
    return (meshlm_status)meshlm_tokenizer_encode(m->tok, text, len, add_special, parse_special, out, cap, n_out);
}

meshlm_status meshlm_token_to_bytes(const meshlm_model *m, int32_t id, const char **bytes, size_t *len) {
    return (meshlm_status)meshlm_tokenizer_piece(m->tok, id, bytes, len);
}

bool meshlm_token_is_eog(const meshlm_model *m, int32_t id) { return meshlm_tokenizer_is_eog(m->tok, id); }

bool meshlm_token_is_control(const meshlm_model *m, int32_t id) {
    return meshlm_tokenizer_token_type(m->tok, id) == MESHLM_TOKEN_CONTROL;
}

int32_t meshlm_token_bos(const meshlm_model *m) { return meshlm_tokenizer_bos(m->tok); }
int32_t meshlm_token_eos(const meshlm_model *m) { return meshlm_tokenizer_eos(m->tok); }
int32_t meshlm_token_eot(const meshlm_model *m) { return meshlm_tokenizer_eot(m->tok); }

/* Appends matrix w's bytes as one prefetch region. */
static void add_region(meshlm_prefetch_region *r, int *n, const meshlm_matrix *w) {
    if (w->data) r[(*n)++] = (meshlm_prefetch_region){w->data, w->row_bytes * (size_t)w->n_out};
}

meshlm_status meshlm_model_prefetch(meshlm_model *m) {
    if (!m) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_model_prefetch: NULL model");
    if (m->prefetch) return MESHLM_OK;
    int cap = 7 * m->hp.n_layer + 1, n = 0;
    meshlm_prefetch_region *r = malloc((size_t)cap * sizeof *r);
    if (!r) return meshlm_fail(MESHLM_ERR_NOMEM, "prefetch: out of memory");
    /* The order a forward pass reads them, so the first layers are ready first; the
     * embedding is left out (a pass reads a few of its rows) unless it is the LM head. */
    for (int il = 0; il < m->hp.n_layer; il++) {
        const meshlm_layer *L = &m->layers[il];
        const meshlm_matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++) add_region(r, &n, ws[i]);
    }
    add_region(r, &n, &m->output);
    /* One pass, as far ahead as it can get: the point is the cold start (weights not yet
     * in the page cache), which it overlaps with the first layers' compute. */
    meshlm_prefetch_params p = {.mode = MESHLM_PREFETCH_PAGES, .window = SIZE_MAX, .cyclic = false};
    int rc = meshlm_prefetch_start(r, n, &p, &m->prefetch);
    free(r);
    return (meshlm_status)rc;
}

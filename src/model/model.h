/* A loaded model: hyper-parameters, tokenizer and weight views into the mapped GGUF file.
 * Immutable after load, except that model/repack.c may re-encode matrices before any
 * session is created; knows nothing of meshes or sessions. */
#ifndef MESHLM_MODEL_H
#define MESHLM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/ops.h"
#include "core/prefetch.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "tokenizer/tokenizer.h"

typedef enum meshlm_arch {
    MESHLM_ARCH_LLAMA,
    MESHLM_ARCH_QWEN2,
    MESHLM_ARCH_QWEN3,
    MESHLM_ARCH_GEMMA2,
    MESHLM_ARCH_GEMMA3,
    MESHLM_ARCH_PHI3,
    MESHLM_ARCH_SMOLLM3,
    MESHLM_ARCH_QWEN3MOE,
    MESHLM_ARCH_QWEN2MOE,
    MESHLM_ARCH_GPTOSS
} meshlm_arch;

/* The FFN's gate activation: silu (SwiGLU), tanh-approximated gelu (GeGLU), or gpt-oss's
 * clamped SwiGLU (gate clamped above at 7 into x * sigmoid(1.702 x), up clamped to
 * [-7, 7] and offset by 1). */
typedef enum meshlm_act { MESHLM_ACT_SILU, MESHLM_ACT_GELU, MESHLM_ACT_SWIGLU_OAI } meshlm_act;

typedef struct meshlm_hparams {
    meshlm_arch arch;
    const char *arch_name;
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot;
    float rms_eps, rope_theta;
    float rope_scale;     /* linear rope scaling: positions are divided by it (1 = none) */
    float rope_yarn;      /* YaRN rope scaling's factor (0 = none), over n_ctx_orig positions */
    float yarn_beta_fast, yarn_beta_slow;
    float rope_theta_swa; /* the windowed layers' own rope base (0 = they share rope_theta) */
    bool rope_swa_scaled; /* ... scaled as the others (gpt-oss); else unscaled (gemma3) */
    bool rope_neox;       /* qwen2/qwen3 rotate halves; llama rotates adjacent pairs */
    bool tied_output;     /* the LM head is the embedding table */
    meshlm_act ffn_act;
    float embd_scale;     /* embedding rows are multiplied by this (0 = not scaled) */
    float attn_scale;     /* multiplies q . k */
    float attn_softcap;   /* scores = cap * tanh(scores / cap) before softmax (0 = none) */
    float final_softcap;  /* the same on the logits (0 = none) */
    int32_t n_swa;        /* sliding window of the windowed layers, in positions (0 = none) */
    int32_t swa_pattern;  /* layer il is windowed when il % swa_pattern < swa_pattern - 1; 0 = all */
    uint8_t *swa_flags;   /* n_layer flags, 1 = windowed, when the file lists them (else NULL) */
    int32_t no_rope_step; /* layer il has no rope when (il + 1) % no_rope_step == 0 (0 = all roped) */
    int32_t n_ctx_orig;   /* LongRoPE: contexts longer than this take the long factors; YaRN: the
                           * context the model was trained at before scaling */
    float rope_attn_factor; /* LongRoPE: multiplies the rope cos and sin (1 = none) */
    /* Mixture of experts (n_expert = 0: dense): each token's FFN is the weighted sum of the
     * n_expert_used experts its router rates highest, each a SwiGLU of width n_ff_exp. */
    int32_t n_expert, n_expert_used, n_ff_exp;
    bool expert_norm;     /* the chosen experts' softmax weights renormalised to sum to 1 */
    bool expert_softmax_k; /* the top k are chosen by raw score, their weights a softmax over those k */
    meshlm_act expert_act; /* the experts' gate activation */
    bool shared_expert;   /* plus one expert every token takes, scaled by sigmoid(x . gate), held
                           * as the dense FFN (w1, w2, w3; n_ff is its width) */
} meshlm_hparams;

/* The attention window of layer il: a row at pos sees positions > pos - window (0 = all). */
static inline int32_t meshlm_layer_window(const meshlm_hparams *hp, int il) {
    if (hp->n_swa <= 0) return 0;
    if (hp->swa_flags) return hp->swa_flags[il] ? hp->n_swa : 0;
    return hp->swa_pattern == 0 || il % hp->swa_pattern < hp->swa_pattern - 1 ? hp->n_swa : 0;
}

/* The window every layer has, or 0 if some layer sees every position: positions older than
 * that are read by no layer, so their KV pages can go. */
static inline int32_t meshlm_model_window(const meshlm_hparams *hp) {
    for (int il = 0; il < hp->n_layer; il++)
        if (meshlm_layer_window(hp, il) == 0) return 0;
    return hp->n_swa;
}

/* Whether layer il rotates its queries and keys at all. */
static inline bool meshlm_layer_roped(const meshlm_hparams *hp, int il) {
    return hp->no_rope_step <= 0 || (il + 1) % hp->no_rope_step != 0;
}

/* Whether layer il rotates with the windowed layers' own rope (rope_theta_swa). */
static inline bool meshlm_layer_rope_swa(const meshlm_hparams *hp, int il) {
    return hp->rope_theta_swa > 0 && meshlm_layer_window(hp, il) > 0;
}

/* Per-layer weights. Vectors are f32 copies (owned); matrices are views into the file.
 * Optional pieces (biases, q/k norms, the norms of the attention and FFN outputs) are NULL
 * when the architecture has none. */
typedef struct meshlm_layer {
    float *attn_norm, *ffn_norm;
    float *attn_post_norm, *ffn_post_norm;
    float *q_norm, *k_norm;
    float *bq, *bk, *bv, *bo;
    float *attn_sinks; /* n_head: a logit per head that joins the softmax with no value (gpt-oss) */
    meshlm_matrix wq, wk, wv, wo;
    meshlm_matrix w1, w2, w3; /* gate, down, up; no data in a mixture-of-experts layer */
    meshlm_matrix router;     /* ffn_gate_inp: one output per expert (MoE layers) */
    meshlm_matrix *exp_gate, *exp_up, *exp_down; /* n_expert views each into the 3-D tensors */
    float *shexp_gate;        /* n_embd: the shared expert's gate (qwen2moe) */
    float *router_b;          /* n_expert: added to the router's scores (gpt-oss) */
    float *exp_gate_b, *exp_up_b, *exp_down_b; /* n_expert x (n_ff_exp, n_ff_exp, n_embd) biases */
} meshlm_layer;

struct meshlm_model {
    meshlm_gguf *gguf;
    meshlm_tokenizer *tok;
    meshlm_hparams hp;
    meshlm_matrix tok_embd, output;
    float *output_norm;
    float *rope_freqs; /* n_rot/2 llama3 scaling factors, or NULL */
    float *rope_long, *rope_short; /* n_rot/2 LongRoPE factors each (phi3), or NULL */
    meshlm_layer *layers;
    void **owned; /* buffers of repacked matrices (model/repack.c), freed with the model */
    int n_owned;
    meshlm_prefetch *prefetch; /* meshlm_model_prefetch's thread, stopped with the model */
    void *huge;                /* meshlm_model_hugepages' copy of the matrices, or NULL */
    size_t huge_bytes;
};

/* Moves every matrix a forward pass reads (the layers' and the LM head) into one buffer on
 * transparent huge pages, in forward order; a second call does nothing. With panels, the
 * matrices the shards will repack into panels stay where they are (the panel copies are on
 * huge pages already; a second copy would only cost memory). Call before creating sessions
 * (they take views of the matrices). MESHLM_ERR_NOMEM. */
int meshlm_model_hugepages(meshlm_model *m, bool panels);

/* Bytes of weights one decode token reads (every matrix once, the embedding row aside; of a
 * mixture-of-experts layer, the router and as many experts as a token uses). */
uint64_t meshlm_model_weight_bytes(const meshlm_model *m);
uint64_t meshlm_model_n_params(const meshlm_model *m);

#endif

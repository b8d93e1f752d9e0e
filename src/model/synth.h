/* Synthetic models: GGUF files with deterministic random weights and a valid synthetic
 * tokenizer, of any shape, that meshlm and llama.cpp both load. Tests and benchmarks
 * make their models with this. */
#ifndef MESHLM_MODEL_SYNTH_H
#define MESHLM_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct meshlm_synth_params {
    const char *arch;  /* "llama", "qwen2", "qwen3", "qwen3moe", "qwen2moe", "gemma2", "gemma3",
                        * "phi3", "smollm3" or "gpt-oss" */
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    int32_t head_dim;  /* 0 = n_embd / n_head */
    int32_t n_ctx;     /* context_length written to the file */
    int type;          /* meshlm_type of every 2-D matrix (embedding and LM head included) */
    bool tied_output;  /* no output.weight: the LM head is token_embd.weight */
    bool rope_freqs;   /* write a llama3-style rope_freqs.weight (rope scaling; llama only) */
    float rope_theta, rms_eps;
    uint64_t seed;
    float rope_freqs_factor; /* llama3 rope scaling factor for rope_freqs (0 = 8) */
    const char *name;        /* general.name (NULL = "meshlm-synth-ARCH", "meshlm-synth-phi" for phi3) */
    const char *pre;         /* tokenizer.ggml.pre (NULL = the arch's own); written as given */
    /* gemma2, gemma3 and gpt-oss: the sliding window of the windowed layers (0 = the
     * family's own: 4096, 512, 128; gpt-oss windows its even layers); phi3: stated only.
     * gemma2 and gemma3: the final logit soft-cap (0 = gemma2's 30, none for gemma3); gemma2
     * only: the attention soft-cap (0 = 50). gemma2 files are always tied. */
    int32_t sliding_window;
    float attn_softcap, final_softcap;
    /* gemma3 only: windowed layers are those where il % swa_pattern < swa_pattern - 1 (0 =
     * the key is not written: llama.cpp's 6; -1 = every layer, written as 0). rope_scale:
     * gemma2 and gemma3's linear rope scaling (0 = none), which gemma3 applies to its global
     * layers only; gpt-oss's YaRN factor (0 = 32). */
    int32_t swa_pattern;
    float rope_scale;
    /* phi3: the original context of its LongRoPE factors, contexts past it take the long
     * factors; gpt-oss: YaRN's original context. 0 = 4096; at most n_ctx. phi3 files always
     * have fused q/k/v and gate/up tensors and both factor sets. */
    int32_t n_ctx_orig;
    /* Mixture of experts (qwen3moe, qwen2moe and gpt-oss always, llama optionally; 0 =
     * dense): each MoE layer has an F32 router over n_expert SwiGLU experts of width
     * n_ff_exp, of which every token takes n_expert_used (1 to n_expert), stored as 3-D
     * tensors [row, rows, expert]; no dense FFN. n_ff_exp 0 = n_ff; llama's experts are
     * always n_ff wide (its files have no key for them: n_ff_exp is 0 or n_ff), and so are
     * gpt-oss's (n_ff is their width, written under both keys as the converted files have
     * it). gpt-oss's router and experts have F32 biases, its experts a SwiGLU clamped at 7,
     * and its files are always untied. qwen2moe only, and required there: a shared expert of
     * width n_ff_shexp beside the routed ones, with an F32 gate vector; qwen2moe files are
     * always untied. n_ff stays written as feed_forward_length, as the converted files have
     * it. */
    int32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
    /* The routed experts' type when expert_type_given (else type's), as quantized MoE files
     * have it: e.g. MXFP4 experts beside Q8_0 attention, as gpt-oss ships. */
    bool expert_type_given;
    int expert_type;
    /* Optional: called after each tensor with the bytes written so far and in total. */
    void (*progress)(void *user, const char *tensor, uint64_t done, uint64_t total);
    void *progress_user;
} meshlm_synth_params;

/* Fills p with a named shape ("tiny", "llama-1b", "llama-8b", "llama70b-2l", "qwen3-0.6b",
 * "qwen2-0.5b", "gemma2-2b", "gemma3-1b", "phi3.5-mini", "smollm3-3b", "qwen3-30b-a3b-4l",
 * "mixtral-8x7b-2l", "qwen2moe-a2.7b-2l", "gpt-oss-20b-4l") for arch (NULL = the preset's
 * own); type and seed keep their defaults (F32, 1), and gpt-oss-20b-4l's experts are MXFP4
 * (expert_type_given) as gpt-oss ships them. Unknown names fail with the list of known ones.
 * Experts follow the arch: a dense preset made qwen3moe or qwen2moe gets 8 experts, 2 used,
 * n_ff_exp n_ff / 4 (tiny: 128); made gpt-oss, 8 experts, 4 used, n_ff and n_ff_exp n_ff / 4
 * (tiny: 128), and is untied; made qwen2moe, a preset without a shared expert gets one
 * n_ff / 2 wide (tiny: 256), and is untied. An MoE preset made a dense arch loses its
 * experts (and their type); made llama or gpt-oss, it keeps them, with n_ff their width. */
int meshlm_synth_preset(const char *name, const char *arch, meshlm_synth_params *p);
/* A comma-separated list of preset names, for help texts. */
const char *meshlm_synth_preset_names(void);
/* Whether synth makes arch; the comma-separated list of the archs it makes. */
bool meshlm_synth_arch_known(const char *arch);
const char *meshlm_synth_arch_names(void);

/* Writes the model to path; the same params give the same bytes. Fails before
 * writing anything if a shape is invalid (e.g. a matrix row length that is not a
 * multiple of the type's block size: the message names the tensor and the sizes). */
int meshlm_synth_write(const meshlm_synth_params *p, const char *path);

/* The synthetic byte-level BPE vocabulary that meshlm_synth_write stores: 256 byte
 * tokens, merged tokens from a deterministic merge list, then the arch's control tokens.
 * Strings are NUL-terminated, in GPT-2's byte-level alphabet (a space is U+0120). */
typedef struct meshlm_synth_vocab {
    int32_t n_tokens;
    const char **tokens;
    int32_t *types;          /* meshlm_token_type values */
    int32_t n_merges;
    const char **merges;     /* "left right", best first */
    const char *pre;         /* tokenizer.ggml.pre */
    int32_t bos_id, eos_id, eot_id, eom_id, pad_id;
    bool add_bos;
    const char *chat_template;
    char *arena;             /* owns every string above */
} meshlm_synth_vocab;

/* Builds the vocabulary of n_vocab tokens for arch; fails if n_vocab is too small
 * (the message gives the minimum). */
int meshlm_synth_vocab_build(const char *arch, int32_t n_vocab, meshlm_synth_vocab *out);
void meshlm_synth_vocab_free(meshlm_synth_vocab *v);
/* The smallest n_vocab meshlm_synth_vocab_build accepts for arch. */
int32_t meshlm_synth_vocab_min(const char *arch);

#endif

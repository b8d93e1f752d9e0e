/* Synthetic models: GGUF files with deterministic random weights and a valid synthetic
 * tokenizer, of any shape, that meshlm and llama.cpp both load. Tests and benchmarks
 * make their models with this. */
#ifndef MESHLM_MODEL_SYNTH_H
#define MESHLM_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct meshlm_synth_params {
    const char *arch;  /* "llama", "qwen2" or "qwen3" */
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    int32_t head_dim;  /* 0 = n_embd / n_head */
    int32_t n_ctx;     /* context_length written to the file */
    int type;          /* meshlm_type of every 2-D matrix (embedding and LM head included) */
    bool tied_output;  /* no output.weight: the LM head is token_embd.weight */
    bool rope_freqs;   /* write a llama3-style rope_freqs.weight (rope scaling) */
    float rope_theta, rms_eps;
    uint64_t seed;
} meshlm_synth_params;

/* Fills p with a named shape ("tiny", "llama-1b", "llama-8b", "llama70b-2l",
 * "qwen3-0.6b", ...) for arch (NULL = the preset's own); type and seed keep their
 * defaults (F32, 1). Unknown names fail with the list of known ones. */
int meshlm_synth_preset(const char *name, const char *arch, meshlm_synth_params *p);
/* A comma-separated list of preset names, for help texts. */
const char *meshlm_synth_preset_names(void);

/* Writes the model to path; the same params give the same bytes. */
int meshlm_synth_write(const meshlm_synth_params *p, const char *path);

#endif

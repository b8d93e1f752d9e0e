/* The optimized tier's switches. Every optimization of the seed's specialized engine is one
 * option here, valid for every model and mesh; a preset is a set of values, and any single
 * option can be switched on top of a preset, so every ablation is one flag:
 *     --opt performance --opt-set fuse_w13=off
 * Presets never change arithmetic, except `accuracy` (f32 activations in the dots); weight
 * repacks change it too and are therefore only ever asked for by name. */
#ifndef MESHLM_MODEL_OPTIONS_H
#define MESHLM_MODEL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum meshlm_preset {
    MESHLM_PRESET_GENERIC = 0,     /* the seed's generic tier: separate ops, linear collectives */
    MESHLM_PRESET_PERFORMANCE = 1, /* every option that pays on CPUs */
    MESHLM_PRESET_ACCURACY = 2,    /* performance's scheduling with f32 activations */
} meshlm_preset;

/* Tensor classes a repack can target. */
enum { MESHLM_CLASS_WQKV, MESHLM_CLASS_WO, MESHLM_CLASS_W13, MESHLM_CLASS_W2, MESHLM_CLASS_EMBD,
       MESHLM_CLASS_OUTPUT, MESHLM_CLASS_COUNT };

typedef struct meshlm_opts {
    meshlm_preset preset;  /* the preset these values started from */
    bool fuse_qkv;         /* QKV matmul + head split + rope + KV write in one pass */
    bool fuse_w13;         /* W1 and W3 in one pass over x, silu(w1)*w3 in the epilogue */
    bool fuse_rs;          /* on a mesh: reduce-scatter fused into the producing matmul */
    bool fuse_ag;          /* on a mesh: all-gather + concat of heads before the output matmul */
    bool ring;             /* ring collectives (else linear) */
    bool prefetch;         /* a thread faulting the weights in ahead of the first pass (cold start) */
    bool stream;           /* a thread streaming each step's weights toward the cache ahead of compute */
    bool persistent;       /* every buffer allocated when the plan is built */
    bool f32_act;          /* f32 activations in quantized dots (else int8 blocks) */
    bool hugepages;        /* the matrices copied onto transparent huge pages at load */
    bool panels;           /* Q8_0/Q4_0 matrices repacked per device in panels of 16 rows (core/panel.h) */
    bool expert_parallel;  /* on a mesh: each device keeps a share of the experts whole (else a slice
                            * of every expert); same tokens either way */
    int repack[MESHLM_CLASS_COUNT]; /* meshlm_type per class, or -1 to keep the file's type */
} meshlm_opts;

/* The values of a preset. */
meshlm_opts meshlm_opts_preset(meshlm_preset p);

/* Parses a preset name ("generic", "performance", "accuracy"). MESHLM_ERR_INVALID_ARG
 * naming the accepted names. */
int meshlm_preset_parse(const char *name, meshlm_preset *out);

/* Applies "name=value,name=value" on top of *o: booleans take on/off/1/0/true/false/yes/no,
 * "topology" takes linear/ring, a tensor class (wqkv, wo, w13, w2, embd, output) takes a
 * type name (q8_0, q4_0, f16, bf16, f32, bfp8, bfp4). All or nothing: on error *o is
 * unchanged and the message names the item. */
int meshlm_opts_set(meshlm_opts *o, const char *spec);

/* The options of preset name (NULL = performance) with spec (NULL or "" = none) applied:
 * what --opt NAME --opt-set SPEC ask for. Errors as the two parsers above. */
int meshlm_opts_make(const char *preset, const char *spec, meshlm_opts *out);

/* Whether o's matrices go into panels: asked for, and with int8 activations (panels hold
 * only int8 dots). */
static inline bool meshlm_opts_panels(const meshlm_opts *o) { return o->panels && !o->f32_act; }

/* One line describing o ("preset=performance fuse_qkv=on ... w13=BFP4") into buf. */
void meshlm_opts_describe(const meshlm_opts *o, char *buf, size_t size);

/* The name of tensor class c ("w13"), or NULL outside [0, MESHLM_CLASS_COUNT). */
const char *meshlm_class_name(int c);

#endif

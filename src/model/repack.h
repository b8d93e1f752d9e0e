/* Repacking a loaded model's weight matrices into another type at load, per tensor class
 * (e.g. the seed's w1/w3 in BFP4 and the rest in BFP8): each row is decoded to f32
 * and encoded in the target type, into memory the model owns. Call it after
 * meshlm_model_load and before creating any session: sessions take views of the matrices
 * (and mesh shards copy slices of them) when they are created. */
#ifndef MESHLM_MODEL_REPACK_H
#define MESHLM_MODEL_REPACK_H

#include <stdbool.h>

#include "model/model.h"

/* The tensor classes, as the seed groups its weights. */
typedef enum meshlm_wclass {
    MESHLM_WCLASS_WQKV,   /* attn_q, attn_k, attn_v of every layer */
    MESHLM_WCLASS_WO,     /* attn_output */
    MESHLM_WCLASS_W13,    /* ffn_gate (w1) and ffn_up (w3) */
    MESHLM_WCLASS_W2,     /* ffn_down */
    MESHLM_WCLASS_EMBD,   /* token_embd (the embedding lookup) */
    MESHLM_WCLASS_OUTPUT, /* the LM head; with tied embeddings only the head's copy changes */
    MESHLM_WCLASS_COUNT
} meshlm_wclass;

/* The target type of each class, or -1 to keep it as loaded. */
typedef struct meshlm_repack_spec {
    int type[MESHLM_WCLASS_COUNT];
} meshlm_repack_spec;

/* "wqkv", "wo", "w13", "w2", "embd", "output"; NULL outside the enum. */
const char *meshlm_wclass_name(int c);

/* True for the types a class may be repacked to: F32, F16, BF16, Q8_0, Q4_0, BFP8, BFP4. */
bool meshlm_repack_target(int type);

/* Parses "CLASS=TYPE[,CLASS=TYPE...]" (e.g. "w13=bfp4,wqkv=bfp8"; names case-insensitive,
 * spaces around items allowed; "" keeps everything). MESHLM_ERR_INVALID_ARG with a message
 * naming the item for a missing '=', an unknown class or type, a type that is not a repack
 * target, or a class given twice. */
int meshlm_repack_parse(const char *text, meshlm_repack_spec *out);

/* Re-encodes every matrix of class c in type; matrices already in type are left as they
 * are. All or nothing: before anything changes it fails with MESHLM_ERR_INVALID_ARG for a
 * type that is no repack target or a row length that is not a multiple of the type's block
 * (the message names the tensor), MESHLM_ERR_UNSUPPORTED for a type the kernels of this
 * build do not compute with, and MESHLM_ERR_NOMEM. */
int meshlm_repack_class(meshlm_model *m, meshlm_wclass c, int type);

/* meshlm_repack_class for every class spec gives a type; stops at the first failure
 * (classes before it stay repacked). */
int meshlm_repack(meshlm_model *m, const meshlm_repack_spec *spec);

#endif

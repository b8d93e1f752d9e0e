/* meshlm: Llama-family language models on CPU meshes.
 *
 * Every call returns a meshlm_status; on failure, meshlm_last_error() gives a readable
 * message for the calling thread (file, field, offset, value where they apply).
 * Handles are opaque; each _free/_close accepts NULL. */
#ifndef MESHLM_H
#define MESHLM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum meshlm_status {
    MESHLM_OK = 0,
    MESHLM_ERR_INVALID_ARG = -1, /* a caller passed a bad value */
    MESHLM_ERR_IO = -2,          /* a file could not be opened, read, mapped or written */
    MESHLM_ERR_FORMAT = -3,      /* a file is malformed */
    MESHLM_ERR_UNSUPPORTED = -4, /* well-formed but not supported (architecture, type, ...) */
    MESHLM_ERR_NOMEM = -5,       /* out of memory */
    MESHLM_ERR_RANGE = -6,       /* a limit was reached (context full, buffer too small) */
    MESHLM_ERR_NOT_FOUND = -7,   /* a key, tensor or name does not exist */
    MESHLM_ERR_INTERNAL = -8,    /* a bug: please report */
} meshlm_status;

/* The message of the last failed call on this thread ("" if none). */
const char *meshlm_last_error(void);
/* A short name for a status code ("format error", ...). */
const char *meshlm_status_name(meshlm_status s);

typedef struct meshlm_model meshlm_model;
typedef struct meshlm_session meshlm_session;

/* Loads a GGUF model file (memory-mapped, every field validated). */
meshlm_status meshlm_model_load(const char *path, meshlm_model **out);
void meshlm_model_free(meshlm_model *m);

/* Model facts. */
int32_t meshlm_model_n_vocab(const meshlm_model *m);
int32_t meshlm_model_n_ctx_train(const meshlm_model *m);
const char *meshlm_model_arch(const meshlm_model *m);

/* Text to token ids. add_special adds BOS/EOS as the model's flags say; parse_special
 * turns the text of control tokens (e.g. "<|eot_id|>") into those tokens. If cap is too
 * small, returns MESHLM_ERR_RANGE with *n_out set to the number needed. */
meshlm_status meshlm_tokenize(const meshlm_model *m, const char *text, size_t len,
                              bool add_special, bool parse_special,
                              int32_t *out, int32_t cap, int32_t *n_out);

/* The bytes a token stands for (may be a partial UTF-8 character). */
meshlm_status meshlm_token_to_bytes(const meshlm_model *m, int32_t id,
                                    const char **bytes, size_t *len);
/* True for tokens that end generation (EOS, EOT, <|im_end|>, ...). */
bool meshlm_token_is_eog(const meshlm_model *m, int32_t id);

typedef struct meshlm_sampler_params {
    float temperature;    /* 0 = greedy */
    int32_t top_k;        /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off */
    int32_t repeat_last_n;
    uint64_t seed;
} meshlm_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty. */
meshlm_sampler_params meshlm_sampler_defaults(void);

typedef struct meshlm_session_params {
    int32_t n_ctx;     /* 0 = the model's training context, capped at 4096 */
    int32_t n_threads; /* per device; 0 = all cores on a 1x1 mesh, 1 per device on larger ones */
    meshlm_sampler_params sampler;
    /* Tensor parallelism: the model is split over a mesh of R x C devices (threads). */
    const char *mesh;     /* "RxC"; NULL = "1x1" */
    const char *topology; /* collectives: "linear" (NULL) or "ring" */
    int32_t links;        /* chunks in flight per collective step; 0 = 1 */
    /* "threads" (NULL: every device a thread of this process) or "mpi" (one device per
     * rank of an MPI job of R*C ranks, each making this same call; see meshlm_mpi_init). */
    const char *transport;
    /* On a mesh, only each shard's best sampling candidates are exchanged; set this to
     * also gather every logit for meshlm_session_logits (which is NULL otherwise). */
    bool full_logits;
} meshlm_session_params;

meshlm_session_params meshlm_session_defaults(void);

/* A session holds one sequence: its KV cache, its position and its sampler state. */
meshlm_status meshlm_session_create(const meshlm_model *m, const meshlm_session_params *p,
                                    meshlm_session **out);
void meshlm_session_free(meshlm_session *s);

/* Feeds tokens (the prompt at once, or one generated token); afterwards
 * meshlm_session_logits() holds the logits of the last position. */
meshlm_status meshlm_session_eval(meshlm_session *s, const int32_t *tokens, int32_t n);
const float *meshlm_session_logits(const meshlm_session *s);
/* For the "mpi" transport: start MPI before anything else (it may edit argc/argv), and
 * finish it at the end; this process's rank and the job's size. MESHLM_ERR_UNSUPPORTED
 * when meshlm was built without MPI. */
meshlm_status meshlm_mpi_start(int *argc, char ***argv, int *rank, int *size);
meshlm_status meshlm_mpi_stop(void);

/* The mesh shape the session runs on (1x1 for one device). */
void meshlm_session_mesh(const meshlm_session *s, int *rows, int *cols);
int32_t meshlm_session_pos(const meshlm_session *s);
/* The context size in positions (after the default of n_ctx = 0 is applied). */
int32_t meshlm_session_n_ctx(const meshlm_session *s);
/* Forgets the sequence (position 0, empty penalty history) but keeps every buffer, shard
 * and thread, so the session can start over at no cost. */
void meshlm_session_reset(meshlm_session *s);
/* Draws the next token from the current logits with the session's sampler. */
meshlm_status meshlm_session_sample(meshlm_session *s, int32_t *token);

#ifdef __cplusplus
}
#endif
#endif

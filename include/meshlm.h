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
/* Starts a thread that reads the weights into memory in the order a forward pass uses
 * them, so a model not yet in the page cache loads while its first layers already compute
 * (a second call does nothing; the thread ends with the model or when it is done). */
meshlm_status meshlm_model_prefetch(meshlm_model *m);

/* Applies the options that act on the model itself, as sessions with the same opt and
 * opt_set expect (call it once, after loading and before creating sessions): re-encodes
 * the weight classes opt_set names ("w13=bfp4,wqkv=bfp8", into memory the model owns; this
 * changes results), copies the matrices onto transparent huge pages (hugepages), and starts
 * the cold-start prefetcher (prefetch; not needed after the huge-page copy, which reads
 * every matrix itself). */
meshlm_status meshlm_model_prepare(meshlm_model *m, const char *opt, const char *opt_set);

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
    /* KV cache type: "f32" (NULL, the default), "f16", "bf16" or "q8_0" (smaller, for long
     * contexts; q8_0 needs a head size that is a multiple of 32). */
    const char *kv_type;
    /* The optimized tier's switches (issue 6): a preset, "generic", "performance" (NULL) or
     * "accuracy", and "name=value,..." overrides (fuse_qkv, fuse_w13, fuse_rs, fuse_ag, ring,
     * stream, persistent, f32_act; see `meshlm run --help`). The presets give the same tokens;
     * accuracy's f32 activations and the weight classes' repacks change arithmetic. The
     * classes' types (w13=bfp4, ...) and hugepages take effect through meshlm_model_prepare. When topology is
     * NULL, the options' ring switch chooses it. */
    const char *opt;
    const char *opt_set;
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
/* Heap allocations the session's forward steps have made so far, over all its devices in
 * this process: none with persistent buffers (every preset but generic, which allocates
 * each step's activations, as the seed's generic tier does). */
uint64_t meshlm_session_step_allocs(const meshlm_session *s);
/* Draws the next token from the current logits with the session's sampler. */
meshlm_status meshlm_session_sample(meshlm_session *s, int32_t *token);

/* ---- Serving many sequences at once ----
 * A batch runs up to n_batch sequences together: every step advances each running sequence
 * by one token (or a prefill chunk of up to n_chunk prompt tokens) in one pass over the
 * weights. Their KV lives in a paged cache shared by all; a request waits in a queue until
 * a slot and the pages of its whole length (prompt + n_predict, at most n_ctx) are free,
 * and its pages go back to the cache when it finishes. A sequence's logits are bitwise the
 * same whatever else shares its steps, so its greedy text equals its text run alone. */
typedef struct meshlm_batch meshlm_batch;

typedef struct meshlm_batch_params {
    int32_t n_batch;   /* sequences running at once (default 32) */
    int32_t n_ctx;     /* positions per sequence; 0 = the model's, capped at 4096 */
    int32_t n_chunk;   /* prompt tokens per sequence per step (default 64) */
    int32_t n_threads; /* 0 = all cores */
    int32_t page_size; /* positions per KV page (default 64) */
    const char *kv_type; /* "f32" (NULL, the default), "f16", "bf16" or "q8_0" */
    size_t kv_mem;     /* KV budget in bytes (of the whole model's KV: on a mesh each device holds
                        * its heads' share); 0 = n_ctx x n_batch positions, capped at 1 GiB */
    const char *mesh;     /* "RxC"; NULL = "1x1" */
    const char *topology; /* "linear" or "ring"; NULL = the options' ring switch */
    /* "threads" (NULL) or "mpi": every rank of an MPI job makes this same batch, with the
     * same requests, and gets the same results (one device per rank, or a row per rank). */
    const char *transport;
    bool ignore_eog;      /* generate n_predict tokens even past end-of-generation (benchmarks) */
    const char *opt;      /* preset and overrides, as for sessions */
    const char *opt_set;
} meshlm_batch_params;

meshlm_batch_params meshlm_batch_defaults(void);
meshlm_status meshlm_batch_create(const meshlm_model *m, const meshlm_batch_params *p, meshlm_batch **out);
void meshlm_batch_free(meshlm_batch *b);

/* Queues a request: the prompt's tokens (copied), its own sampler, at most n_predict
 * generated tokens (-1 = until end of generation or context). Its id is 0, 1, 2, ... in
 * order of submission. A request that could never fit (longer than n_ctx or than the whole
 * KV budget) fails here with MESHLM_ERR_RANGE. */
meshlm_status meshlm_batch_submit(meshlm_batch *b, const int32_t *tokens, int32_t n_tokens,
                                  const meshlm_sampler_params *sp, int32_t n_predict, int32_t *id);

/* Admits waiting requests, then runs one step. *n_left = requests not yet finished. */
meshlm_status meshlm_batch_step(meshlm_batch *b, int32_t *n_left);

typedef enum meshlm_finish {
    MESHLM_FINISH_NONE = 0,   /* still waiting or running */
    MESHLM_FINISH_STOP = 1,   /* an end-of-generation token (not included in the tokens) */
    MESHLM_FINISH_LENGTH = 2, /* n_predict tokens, or the context is full */
} meshlm_finish;

typedef struct meshlm_batch_result {
    const int32_t *tokens; /* generated, valid until the batch is freed */
    int32_t n_prompt, n_gen;
    meshlm_finish finish;
    double prompt_ms; /* from admission to the first generated token */
    double gen_ms;    /* from the first generated token to the finish */
} meshlm_batch_result;

meshlm_status meshlm_batch_result_get(const meshlm_batch *b, int32_t id, meshlm_batch_result *out);
/* Pages in the KV cache, and those free now. */
void meshlm_batch_kv_pages(const meshlm_batch *b, int32_t *total, int32_t *free_pages);

#ifdef __cplusplus
}
#endif
#endif

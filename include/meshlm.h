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

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *meshlm_version(void);

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
/* Experts of each FFN layer (0 for a dense model), and how many each token uses. */
int32_t meshlm_model_n_experts(const meshlm_model *m);
int32_t meshlm_model_n_experts_used(const meshlm_model *m);

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
/* True for control tokens (<s>, <|eot_id|>, <|im_start|>, ...): markup for the model,
 * not text for the user; the detokenizer hides them unless asked. */
bool meshlm_token_is_control(const meshlm_model *m, int32_t id);
/* The special ids the vocabulary names, -1 where it names none (EOT: end of turn, as
 * <|eot_id|> or <|im_end|>; found by its text when the file does not say). */
int32_t meshlm_token_bos(const meshlm_model *m);
int32_t meshlm_token_eos(const meshlm_model *m);
int32_t meshlm_token_eot(const meshlm_model *m);

/* Frees memory meshlm handed to the caller (rendered templates). */
void meshlm_free(void *p);

/* ---- Streaming text ----
 * A detokenizer turns generated ids into text as they come: it returns only whole UTF-8
 * characters (holding back the bytes of one a token left incomplete) and drops control
 * tokens unless special is set. */
typedef struct meshlm_detokenizer meshlm_detokenizer;

meshlm_status meshlm_detokenizer_create(const meshlm_model *m, bool special, meshlm_detokenizer **out);
void meshlm_detokenizer_free(meshlm_detokenizer *d);
/* Adds a token; *text and *len get the characters it completed (valid until the next call;
 * often empty). */
meshlm_status meshlm_detokenizer_push(meshlm_detokenizer *d, int32_t id, const char **text, size_t *len);
/* Ends the stream: bytes still held back come out (an incomplete character as U+FFFD);
 * the detokenizer is then empty, ready for a new stream. */
meshlm_status meshlm_detokenizer_flush(meshlm_detokenizer *d, const char **text, size_t *len);

/* Stop strings, matched on the text as it streams: push returns the text that can be
 * shown now, holding back any tail that could still begin a stop string. When one
 * completes, *stopped is set, the text before it is returned and the rest (the stop
 * string included) is dropped. */
typedef struct meshlm_stop meshlm_stop;

/* n strings, none empty (copied). */
meshlm_status meshlm_stop_create(const char *const *stops, size_t n, meshlm_stop **out);
void meshlm_stop_free(meshlm_stop *s);
meshlm_status meshlm_stop_push(meshlm_stop *s, const char *text, size_t len, const char **out, size_t *out_len,
                               bool *stopped);
/* Ends the stream without a stop: the held-back text comes out; s is ready for a new one. */
meshlm_status meshlm_stop_flush(meshlm_stop *s, const char **out, size_t *out_len);
/* Which string stopped the stream (-1 if none has). */
int meshlm_stop_which(const meshlm_stop *s);

/* ---- Chat templates ----
 * Instruct models carry their prompt format as a Jinja template (tokenizer.chat_template).
 * meshlm renders it as Hugging Face transformers does (trim_blocks, lstrip_blocks, an
 * immutable sandbox, tojson as Python's json.dumps, raise_exception, strftime_now). */
typedef struct meshlm_chat_template meshlm_chat_template;

typedef struct meshlm_chat_message {
    const char *role;    /* "system", "user", "assistant", "tool", ... */
    const char *content;
} meshlm_chat_message;

/* Parses a template text; bos and eos are the bos_token/eos_token it sees (NULL = "").
 * Syntax errors name the line and column. */
meshlm_status meshlm_chat_template_parse(const char *text, size_t len, const char *bos, const char *eos,
                                         meshlm_chat_template **out);
/* The model's template: text if not NULL (an override), else the file's
 * tokenizer.chat_template, else ChatML (meshlm_chat_template_is_fallback then says so);
 * bos_token/eos_token come from the vocabulary. */
meshlm_status meshlm_chat_template_from_model(const meshlm_model *m, const char *text, meshlm_chat_template **out);
bool meshlm_chat_template_is_fallback(const meshlm_chat_template *t);
void meshlm_chat_template_free(meshlm_chat_template *t);
/* Renders a conversation of role/content pairs; add_generation_prompt opens the
 * assistant's turn. *out (NUL-terminated, *len bytes) is freed with meshlm_free. */
meshlm_status meshlm_chat_render(const meshlm_chat_template *t, const meshlm_chat_message *msgs, size_t n,
                                 bool add_generation_prompt, char **out, size_t *len);
/* The JSON form, for tool calls and tools: vars is a JSON object whose keys become the
 * template's variables (messages, tools, documents, add_generation_prompt, and any a
 * template reads, e.g. enable_thinking); bos_token and eos_token default to the
 * template's. A template that raises returns MESHLM_ERR_INVALID_ARG with its message. */
meshlm_status meshlm_chat_render_json(const meshlm_chat_template *t, const char *vars, char **out, size_t *len);

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
    /* mpi: seconds a collective may wait for its peers before the step fails with an error
     * naming the rank and host (a peer's host or link down, a peer hung); 0 = 60, below 0 =
     * wait for ever. After such a failure the job should end. */
    float ccl_timeout;
    /* On a mesh, only each shard's best sampling candidates are exchanged; set this to
     * also gather every logit for meshlm_session_logits (which is NULL otherwise). */
    bool full_logits;
    /* KV cache type: "f32" (NULL, the default), "f16", "bf16" or "q8_0" (smaller, for long
     * contexts; q8_0 needs a head size that is a multiple of 32). */
    const char *kv_type;
    /* The optimized tier's switches: a preset, "generic", "performance" (NULL) or
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
/* Replaces the sampler's parameters for the tokens drawn from now on (its penalty
 * history is kept; a new seed restarts the random sequence). */
meshlm_status meshlm_session_set_sampler(meshlm_session *s, const meshlm_sampler_params *p);
/* Forgets every position from pos on (0 <= pos <= meshlm_session_pos), keeping the KV
 * cache of those before: a chat turn then evaluates only what it does not share with
 * the previous one. The logits are stale until the next eval. MESHLM_ERR_RANGE when every
 * layer of the model is windowed and the positions pos would see were already dropped. */
meshlm_status meshlm_session_truncate(meshlm_session *s, int32_t pos);
/* The tokens the session holds, positions 0 .. meshlm_session_pos - 1 (valid until the
 * next eval, truncate or reset). */
const int32_t *meshlm_session_tokens(const meshlm_session *s);
/* Brings the session to hold exactly tokens[0..n): keeps the KV cache of the longest
 * prefix it shares with what it holds and evaluates the rest (at least the last token, so
 * the logits are fresh). *n_eval gets the number evaluated. How a chat turn reuses the
 * conversation before it. */
meshlm_status meshlm_session_sync(meshlm_session *s, const int32_t *tokens, int32_t n, int32_t *n_eval);

/* ---- Serving many sequences at once ----
 * A batch runs up to n_batch sequences together: every step advances each running sequence
 * by one token (or a prefill chunk of up to n_chunk prompt tokens) in one pass over the
 * weights. Their KV lives in a paged cache shared by all; a request waits in a queue until
 * a slot and the pages of its whole length (prompt + n_predict, at most n_ctx) are free,
 * and its pages go back to the cache when it finishes. A sequence's logits are bitwise the
 * same whatever else shares its steps, so its greedy text equals its text run alone.
 * Prefix caching (on unless no_prefix_cache): every full page of KV is kept, keyed by the
 * tokens up to its end, after its request finishes, until its memory is needed (least
 * recently used first); a request whose prompt starts with the same tokens shares those
 * pages and prefills only the rest (a chat resending its history, prompts sharing a system
 * prompt). Its tokens and logits are bitwise the same as without the cache. */
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
    float ccl_timeout;    /* as meshlm_session_params' */
    bool ignore_eog;      /* generate n_predict tokens even past end-of-generation (benchmarks) */
    const char *opt;      /* preset and overrides, as for sessions */
    const char *opt_set;
    bool no_prefix_cache; /* true: compute every prompt in full and keep no pages after a request
                           * (false, the zeroed default, shares cached prompt prefixes) */
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
    MESHLM_FINISH_CANCELLED = 3, /* meshlm_batch_cancel */
} meshlm_finish;

typedef struct meshlm_batch_result {
    const int32_t *tokens; /* generated, valid until the request is released or the batch freed */
    int32_t n_prompt, n_gen;
    meshlm_finish finish;
    double prompt_ms; /* from admission to the first generated token */
    double gen_ms;    /* from the first generated token to the finish */
} meshlm_batch_result;

/* A request's state: while it runs, tokens and n_gen show what it has generated so far. */
meshlm_status meshlm_batch_result_get(const meshlm_batch *b, int32_t id, meshlm_batch_result *out);
/* Ends a request, waiting or running, as MESHLM_FINISH_CANCELLED (a finished one is left
 * as it is); its slot and KV pages are free for the next step. */
meshlm_status meshlm_batch_cancel(meshlm_batch *b, int32_t id);
/* Frees a finished request's tokens and record: its id is unknown afterwards. A process
 * that releases what it has read holds memory bounded by the requests in flight. */
meshlm_status meshlm_batch_release(meshlm_batch *b, int32_t id);
/* Pages in the KV cache, and those free now (including cached pages no request holds: the
 * next request may take them). */
void meshlm_batch_kv_pages(const meshlm_batch *b, int32_t *total, int32_t *free_pages);

typedef struct meshlm_batch_stats {
    /* Prompt tokens looked up in the prefix cache, summed over admitted requests (vLLM's
     * prefix_cache_queries); 0 with no_prefix_cache. */
    int64_t prefix_queries;
    /* Of those, tokens whose KV came from cached pages instead of being computed (vLLM's
     * prefix_cache_hits); whole pages, never a prompt's last token. */
    int64_t prefix_hits;
    /* Prompt tokens evaluated by prefill steps: the prefill work done, which the hits
     * spared (prompt_rows + prefix_hits = the admitted prompts' tokens). */
    int64_t prompt_rows;
    /* KV pages in all (fixed at create): free + cached + those requests hold now.
     * On a mesh, every device has this many pages of its heads' share. */
    int32_t pages_total;
    /* Pages holding nothing: a request takes these first. */
    int32_t pages_free;
    /* Pages of cached prefixes that no request holds: kept for later hits, and evicted
     * (least recently used first) when free pages run out. */
    int32_t pages_cached;
    /* Requests submitted and not finished that wait for a slot or for pages (in
     * submission order). */
    int32_t requests_waiting;
    /* Requests that hold a slot and their pages: prefilling or generating (at most
     * n_batch). */
    int32_t requests_running;
} meshlm_batch_stats;

/* Fills *out with the batch's counters since create and its state now (between steps). */
meshlm_status meshlm_batch_stats_get(const meshlm_batch *b, meshlm_batch_stats *out);

#ifdef __cplusplus
}
#endif
#endif

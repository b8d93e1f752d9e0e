/* OpenAI request bodies decoded into native structs: JSON types, ranges and the fields
 * meshlm does not support are checked here, before any model is involved, so the decoder
 * runs (and is fuzzed) without a tokenizer. */
#ifndef MESHLM_SERVER_REQUEST_H
#define MESHLM_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshlm.h"

typedef enum srv_kind { SRV_CHAT, SRV_COMPLETION, SRV_TOKENIZE, SRV_DETOKENIZE } srv_kind;

/* An error as OpenAI reports it: the HTTP status, message, type, param and code. */
typedef struct srv_error {
    int status;
    char message[512];
    const char *type;  /* "invalid_request_error", ... */
    const char *param; /* the field at fault, or NULL */
    const char *code;  /* or NULL */
} srv_error;

/* One prompt of a completion: text, or token ids. */
typedef struct srv_prompt {
    char *text; /* NUL-terminated, or NULL when ids are given */
    size_t len;
    int32_t *ids;
    int32_t n_ids;
} srv_prompt;

typedef struct srv_request {
    srv_kind kind;
    char *model;    /* NULL when absent */
    char *messages; /* chat: {"messages": [...], "add_generation_prompt": true} for the template */
    srv_prompt *prompts; /* completions: one or more; tokenize: the content */
    size_t n_prompts;
    int32_t *tokens; /* detokenize */
    int32_t n_tokens;
    int64_t max_tokens; /* -1 = until end of generation or context */
    meshlm_sampler_params sp;
    char **stops;
    size_t n_stops;
    int32_t n; /* choices per prompt */
    bool stream, include_usage;
    bool add_special; /* tokenize */
} srv_request;

/* Decodes body as a request of kind; on failure fills err (status 400) and returns -1
 * with *out empty. Unknown fields are ignored; known ones meshlm does not support are
 * refused when they carry a non-default value. */
int meshlm_srv_decode(srv_kind kind, const char *body, size_t len, srv_request *out, srv_error *err);
void meshlm_srv_request_free(srv_request *r);

/* Sets err to status with a printf-style message (type from the status). */
void meshlm_srv_error(srv_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

enum { SRV_MAX_STOPS = 16, SRV_MAX_N = 16, SRV_MAX_PROMPTS = 64 };

#endif

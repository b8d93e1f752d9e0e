/* OpenAI's response shapes: errors, model lists, completions and their streamed chunks,
 * as JSON text. */
#ifndef MESHLM_SERVER_OAI_H
#define MESHLM_SERVER_OAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "server/request.h"

/* One finished choice of a response. */
typedef struct srv_choice {
    const char *text;
    size_t len;
    const char *finish; /* "stop", "length" */
} srv_choice;

typedef struct srv_usage {
    int64_t prompt, completion;
} srv_usage;

/* Every function returns malloc'd NUL-terminated text (*len bytes), NULL when out of memory. */
char *meshlm_srv_error_json(const srv_error *e, size_t *len);
/* The model list; max_model_len (vLLM's name for the context size) when n_ctx > 0. */
char *meshlm_srv_models_json(const char *id, time_t created, int32_t n_ctx, size_t *len);
char *meshlm_srv_response_json(srv_kind kind, const char *id, time_t created, const char *model,
                               const srv_choice *choices, size_t n, srv_usage u, size_t *len);
/* An SSE event "data: {...}\n\n" of one choice: role (chat's first chunk), text, or the
 * finish reason (final chunk); n_choice < 0 for the usage chunk. */
char *meshlm_srv_chunk(srv_kind kind, const char *id, time_t created, const char *model, int n_choice, bool role,
                       const char *text, size_t len, const char *finish, const srv_usage *usage, size_t *len_out);
/* {"tokens": [...]} and {"content": "..."}. */
char *meshlm_srv_tokens_json(const int32_t *ids, int32_t n, size_t *len);
char *meshlm_srv_content_json(const char *text, size_t n, size_t *len);

#endif

/* OpenAI's response shapes built with jansson; text from the model is made valid UTF-8
 * (U+FFFD for bad bytes) before it goes into JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/oai.h"

/* The length of the valid UTF-8 character at s[0..n), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    size_t need = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!need || need > n || (need == 2 && s[0] < 0xC2)) return 0;
    for (size_t k = 1; k < need; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    uint32_t cp = need == 1 ? s[0] : need == 2 ? s[0] & 0x1Fu : need == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t k = 1; k < need; k++) cp = cp << 6 | (s[k] & 0x3Fu);
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

/* A JSON string of text, invalid bytes replaced. */
static json_t *text_json(const char *text, size_t len) {
    json_t *s = json_stringn(text ? text : "", len);
    if (s) return s;
    char *buf = malloc(3 * len + 1);
    if (!buf) return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_char(p + i, len - i);
        if (k) {
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    s = json_stringn(buf, o);
    free(buf);
    return s;
}

static char *dump(json_t *v, size_t *len) {
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (s) *len = strlen(s);
    return s;
}

char *meshlm_srv_error_json(const srv_error *e, size_t *len) {
    json_t *msg = text_json(e->message, strlen(e->message));
    return dump(json_pack("{s:{s:o*, s:s, s:s?, s:s?}}", "error", "message", msg, "type", e->type ? e->type : "error",
                          "param", e->param, "code", e->code),
                len);
}

char *meshlm_srv_models_json(const char *id, time_t created, int32_t n_ctx, size_t *len) {
    json_t *model = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created", (json_int_t)created,
                              "owned_by", "meshlm");
    if (!model) return NULL;
    if (n_ctx > 0 && json_object_set_new(model, "max_model_len", json_integer(n_ctx)) < 0) {
        json_decref(model);
        return NULL;
    }
    return dump(json_pack("{s:s, s:[o]}", "object", "list", "data", model), len);
}

static json_t *usage_json(srv_usage u) {
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)u.prompt, "completion_tokens",
                     (json_int_t)u.completion, "total_tokens", (json_int_t)(u.prompt + u.completion));
}

char *meshlm_srv_response_json(srv_kind kind, const char *id, time_t created, const char *model,
                               const srv_choice *choices, size_t n, srv_usage u, size_t *len) {
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *text = text_json(choices[i].text, choices[i].len), *c;
        if (kind == SRV_CHAT)
            c = json_pack("{s:I, s:{s:s, s:o*}, s:n, s:s}", "index", (json_int_t)i, "message", "role", "assistant",
                          "content", text, "logprobs", "finish_reason", choices[i].finish);
        else
            c = json_pack("{s:I, s:o*, s:n, s:s}", "index", (json_int_t)i, "text", text, "logprobs", "finish_reason",
                          choices[i].finish);
        if (!c || json_array_append_new(arr, c) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:o, s:o*}", "id", id, "object",
                          kind == SRV_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)created,
                          "model", model, "choices", arr, "usage", usage_json(u)),
                len);
}

/* Wraps JSON text as one server-sent event. */
static char *sse(char *json, size_t *len) {
    if (!json) return NULL;
    size_t n = strlen(json);
    char *out = malloc(n + 9);
    if (out) {
        memcpy(out, "data: ", 6);
        memcpy(out + 6, json, n);
        memcpy(out + 6 + n, "\n\n", 3);
        *len = n + 8;
    }
    free(json);
    return out;
}

char *meshlm_srv_chunk(srv_kind kind, const char *id, time_t created, const char *model, int n_choice, bool role,
                       const char *text, size_t len, const char *finish, const srv_usage *usage, size_t *len_out) {
    json_t *choices = json_array(), *c = NULL;
    if (!choices) return NULL;
    if (n_choice >= 0) {
        json_t *t = finish && !len ? NULL : text_json(text, len);
        if (kind == SRV_CHAT) {
            json_t *delta = json_object();
            if (delta && ((role && json_object_set_new(delta, "role", json_string("assistant")) < 0) ||
                          (t && json_object_set(delta, "content", t) < 0))) {
                json_decref(delta);
                delta = NULL;
            }
            c = json_pack("{s:i, s:o*, s:n, s:s?}", "index", n_choice, "delta", delta, "logprobs", "finish_reason",
                          finish);
            json_decref(t);
        } else {
            c = json_pack("{s:i, s:o*, s:n, s:s?}", "index", n_choice, "text", t ? t : json_string(""), "logprobs",
                          "finish_reason", finish);
        }
        if (!c || json_array_append_new(choices, c) < 0) {
            json_decref(choices);
            return NULL;
        }
    }
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "object",
                              kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)created, "model", model, "choices", choices);
    if (chunk && usage && json_object_set_new(chunk, "usage", usage_json(*usage)) < 0) {
        json_decref(chunk);
        return NULL;
    }
    size_t n;
    return sse(dump(chunk, &n), len_out);
}

char *meshlm_srv_tokens_json(const int32_t *ids, int32_t n, size_t *len) {
    json_t *arr = json_array();
    for (int32_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_integer(ids[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    return arr ? dump(json_pack("{s:o}", "tokens", arr), len) : NULL;
}

char *meshlm_srv_content_json(const char *text, size_t n, size_t *len) {
    return dump(json_pack("{s:o*}", "content", text_json(text, n)), len);
}

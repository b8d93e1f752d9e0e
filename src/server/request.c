/* JSON request bodies to srv_request: OpenAI's chat and completions fields, llama-server's
 * tokenize and detokenize. Types, ranges and unsupported fields are checked here. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

void meshlm_srv_error(srv_error *err, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
    err->param = param;
    err->code = NULL;
    err->type = status == 401   ? "authentication_error"
                : status == 404 ? "not_found_error"
                : status == 503 ? "server_error"
                : status >= 500 ? "server_error"
                                : "invalid_request_error";
}

/* A field that is absent or JSON null takes its default. */
static json_t *field(json_t *obj, const char *name) {
    json_t *v = json_object_get(obj, name);
    return v && !json_is_null(v) ? v : NULL;
}

static int bad_type(srv_error *err, const char *name, const char *want) {
    meshlm_srv_error(err, 400, name, "'%s' must be %s", name, want);
    return -1;
}

/* An optional number in [lo, hi] into *out; 1 if present, 0 if absent, -1 on an error. */
static int get_number(json_t *obj, const char *name, double lo, double hi, double *out, srv_error *err) {
    json_t *v = field(obj, name);
    if (!v) return 0;
    if (!json_is_number(v)) return bad_type(err, name, "a number");
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) {
        meshlm_srv_error(err, 400, name, "'%s' is %g; it must be between %g and %g", name, x, lo, hi);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_int(json_t *obj, const char *name, int64_t lo, int64_t hi, int64_t *out, srv_error *err) {
    json_t *v = field(obj, name);
    if (!v) return 0;
    if (!json_is_integer(v)) return bad_type(err, name, "an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        meshlm_srv_error(err, 400, name, "'%s' is %lld; it must be between %lld and %lld", name, (long long)x,
                         (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 1;
}

static int get_bool(json_t *obj, const char *name, bool *out, srv_error *err) {
    json_t *v = field(obj, name);
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad_type(err, name, "a boolean");
    *out = json_is_true(v);
    return 1;
}

static int unsupported(srv_error *err, const char *name) {
    meshlm_srv_error(err, 400, name, "%s is not supported", name);
    return -1;
}

/* Known OpenAI fields meshlm does not implement: refused unless they hold their default. */
static int check_unsupported(json_t *o, srv_error *err) {
    static const char *const zero_numbers[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof zero_numbers / sizeof zero_numbers[0]; i++) {
        double x = 0;
        if (get_number(o, zero_numbers[i], -2, 2, &x, err) < 0) return -1;
        if (x != 0) return unsupported(err, zero_numbers[i]);
    }
    json_t *v;
    if ((v = field(o, "logprobs"))) {
        if (!json_is_boolean(v) && !json_is_integer(v)) return bad_type(err, "logprobs", "a boolean or an integer");
        if (json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0)) return unsupported(err, "logprobs");
    }
    if ((v = field(o, "top_logprobs"))) {
        if (!json_is_integer(v)) return bad_type(err, "top_logprobs", "an integer");
        if (json_integer_value(v) != 0) return unsupported(err, "top_logprobs");
    }
    if ((v = field(o, "logit_bias"))) {
        if (!json_is_object(v)) return bad_type(err, "logit_bias", "an object");
        if (json_object_size(v)) return unsupported(err, "logit_bias");
    }
    bool echo = false;
    if (get_bool(o, "echo", &echo, err) < 0) return -1;
    if (echo) return unsupported(err, "echo");
    if ((v = field(o, "suffix"))) {
        if (!json_is_string(v)) return bad_type(err, "suffix", "a string");
        if (json_string_length(v)) return unsupported(err, "suffix");
    }
    int64_t best_of = 1;
    if (get_int(o, "best_of", 1, SRV_MAX_N, &best_of, err) < 0) return -1;
    if (best_of != 1) return unsupported(err, "best_of");
    if ((v = field(o, "tools"))) {
        if (!json_is_array(v)) return bad_type(err, "tools", "an array");
        if (json_array_size(v)) return unsupported(err, "tools");
    }
    if ((v = field(o, "response_format"))) {
        json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
        if (!json_is_string(t)) return bad_type(err, "response_format", "an object with a string 'type'");
        if (strcmp(json_string_value(t), "text") != 0) return unsupported(err, "response_format");
    }
    return 0;
}

/* Sampling: meshlm's defaults (llama.cpp's) for what the request leaves out. */
static int decode_sampling(json_t *o, srv_request *r, srv_error *err) {
    double x;
    int64_t k;
    int rc;
    r->sp = meshlm_sampler_defaults();
    if ((rc = get_number(o, "temperature", 0, 2, &x, err)) < 0) return -1;
    if (rc) r->sp.temperature = (float)x;
    if ((rc = get_number(o, "top_p", 0, 1, &x, err)) < 0) return -1;
    if (rc) {
        /* top_p 0 keeps the single most likely token: greedy. */
        if (x == 0) r->sp.temperature = 0;
        else r->sp.top_p = (float)x;
    }
    if ((rc = get_number(o, "min_p", 0, 1, &x, err)) < 0) return -1;
    if (rc) r->sp.min_p = (float)x;
    if ((rc = get_number(o, "repeat_penalty", 0.01, 100, &x, err)) < 0) return -1;
    if (rc) r->sp.repeat_penalty = (float)x;
    if ((rc = get_int(o, "top_k", 0, INT32_MAX, &k, err)) < 0) return -1;
    if (rc) r->sp.top_k = (int32_t)k;
    if ((rc = get_int(o, "seed", INT64_MIN, INT64_MAX, &k, err)) < 0) return -1;
    if (rc) r->sp.seed = k < 0 ? UINT64_MAX : (uint64_t)k;
    return 0;
}

static int add_stop(srv_request *r, json_t *s, srv_error *err) {
    if (!json_is_string(s)) return bad_type(err, "stop", "a string or an array of strings");
    if (!json_string_length(s)) {
        meshlm_srv_error(err, 400, "stop", "stop strings must not be empty");
        return -1;
    }
    if (r->n_stops == SRV_MAX_STOPS) {
        meshlm_srv_error(err, 400, "stop", "at most %d stop strings", SRV_MAX_STOPS);
        return -1;
    }
    if (!(r->stops[r->n_stops] = strndup(json_string_value(s), json_string_length(s)))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    r->n_stops++;
    return 0;
}

static int decode_stops(json_t *o, srv_request *r, srv_error *err) {
    json_t *v = field(o, "stop");
    if (!v) return 0;
    if (!(r->stops = calloc(SRV_MAX_STOPS, sizeof *r->stops))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    if (!json_is_array(v)) return add_stop(r, v, err);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) if (add_stop(r, s, err) < 0) return -1;
    return 0;
}

/* Generation fields shared by chat and completions. */
static int decode_generation(json_t *o, srv_request *r, srv_error *err) {
    int64_t k;
    int rc;
    if (check_unsupported(o, err) < 0 || decode_sampling(o, r, err) < 0 || decode_stops(o, r, err) < 0) return -1;
    json_t *model = field(o, "model");
    if (model && !json_is_string(model)) return bad_type(err, "model", "a string");
    if (model && !(r->model = strdup(json_string_value(model)))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    r->max_tokens = -1;
    const char *mt = field(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(o, mt, 1, INT32_MAX, &k, err)) < 0) return -1;
    if (rc) r->max_tokens = k;
    r->n = 1;
    if ((rc = get_int(o, "n", 1, SRV_MAX_N, &k, err)) < 0) return -1;
    if (rc) r->n = (int32_t)k;
    if (get_bool(o, "stream", &r->stream, err) < 0) return -1;
    json_t *so = field(o, "stream_options");
    if (so && !json_is_object(so)) return bad_type(err, "stream_options", "an object");
    if (so && get_bool(so, "include_usage", &r->include_usage, err) < 0) return -1;
    return 0;
}

/* A message's content: a string, or an array of text parts joined; null only for an
 * assistant turn (one that made tool calls). */
static json_t *message_content(json_t *c, const char *role, srv_error *err) {
    if (!c || json_is_null(c)) {
        if (!strcmp(role, "assistant")) return json_string("");
        meshlm_srv_error(err, 400, "messages", "a '%s' message needs 'content'", role);
        return NULL;
    }
    if (json_is_string(c)) return json_incref(c);
    if (!json_is_array(c)) {
        bad_type(err, "messages", "made of messages whose 'content' is a string or an array of text parts");
        return NULL;
    }
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
        json_t *text = json_is_object(part) ? json_object_get(part, "text") : NULL;
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            meshlm_srv_error(err, 400, "messages", "content parts must be {\"type\": \"text\", \"text\": ...} "
                                                   "(other part types are not supported)");
            return NULL;
        }
        total += json_string_length(text);
    }
    char *buf = malloc(total + 1);
    if (!buf) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return NULL;
    }
    size_t off = 0;
    json_array_foreach(c, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(buf + off, json_string_value(text), json_string_length(text));
        off += json_string_length(text);
    }
    json_t *s = json_stringn_nocheck(buf, off);
    free(buf);
    if (!s) meshlm_srv_error(err, 500, NULL, "out of memory");
    return s;
}

/* The messages, checked and reduced to role and content, as the template's variables. */
static int decode_messages(json_t *o, srv_request *r, srv_error *err) {
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    json_t *msgs = json_object_get(o, "messages");
    if (!msgs) {
        meshlm_srv_error(err, 400, "messages", "'messages' is required");
        return -1;
    }
    if (!json_is_array(msgs)) return bad_type(err, "messages", "an array");
    if (!json_array_size(msgs)) {
        meshlm_srv_error(err, 400, "messages", "'messages' must not be empty");
        return -1;
    }
    json_t *out = json_array(), *vars = json_object();
    int rc = -1;
    if (!out || !vars) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        goto done;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
        if (!json_is_string(role)) {
            bad_type(err, "messages", "an array of objects with a string 'role'");
            goto done;
        }
        const char *rs = json_string_value(role);
        size_t k = 0;
        while (k < sizeof roles / sizeof roles[0] && strcmp(rs, roles[k]) != 0) k++;
        if (k == sizeof roles / sizeof roles[0]) {
            meshlm_srv_error(err, 400, "messages", "unknown role '%.64s' in message %zu", rs, i);
            goto done;
        }
        json_t *content = message_content(json_object_get(m, "content"), rs, err);
        if (!content) goto done;
        json_t *msg = json_pack("{s:s, s:o}", "role", k == 1 ? "system" : rs, "content", content);
        if (!msg || json_array_append_new(out, msg) < 0) {
            meshlm_srv_error(err, 500, NULL, "out of memory");
            goto done;
        }
    }
    if (json_object_set(vars, "messages", out) < 0 || json_object_set_new(vars, "add_generation_prompt", json_true()) < 0 ||
        !(r->messages = json_dumps(vars, JSON_COMPACT))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        goto done;
    }
    rc = 0;
done:
    json_decref(out);
    json_decref(vars);
    return rc;
}

/* Token ids of an array (non-negative integers; the vocabulary's bound is checked later). */
static int decode_ids(json_t *a, const char *name, int32_t **ids, int32_t *n, srv_error *err) {
    size_t len = json_array_size(a), i;
    if (!(*ids = malloc((len ? len : 1) * sizeof **ids))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return bad_type(err, name, "made of token ids (non-negative integers)");
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    *n = (int32_t)len;
    return 0;
}

static int set_text(srv_prompt *p, json_t *s, srv_error *err) {
    p->len = json_string_length(s);
    if (!(p->text = malloc(p->len + 1))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    memcpy(p->text, json_string_value(s), p->len);
    p->text[p->len] = '\0';
    return 0;
}

/* prompt: a string, an array of strings, an array of token ids or an array of such arrays. */
static int decode_prompt(json_t *o, srv_request *r, srv_error *err) {
    static const char *const want = "a string, an array of strings, an array of token ids or an array of arrays of "
                                    "token ids";
    json_t *v = json_object_get(o, "prompt");
    if (!v) {
        meshlm_srv_error(err, 400, "prompt", "'prompt' is required");
        return -1;
    }
    if (!json_is_string(v) && !json_is_array(v)) return bad_type(err, "prompt", want);
    bool ids = json_is_array(v) && json_array_size(v) && json_is_integer(json_array_get(v, 0));
    size_t n = json_is_string(v) || ids ? 1 : json_array_size(v);
    if (!n) {
        meshlm_srv_error(err, 400, "prompt", "'prompt' must not be empty");
        return -1;
    }
    if (n > SRV_MAX_PROMPTS) {
        meshlm_srv_error(err, 400, "prompt", "at most %d prompts per request", SRV_MAX_PROMPTS);
        return -1;
    }
    if (!(r->prompts = calloc(n, sizeof *r->prompts))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    r->n_prompts = n;
    if (json_is_string(v)) return set_text(&r->prompts[0], v, err);
    if (ids) return decode_ids(v, "prompt", &r->prompts[0].ids, &r->prompts[0].n_ids, err);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(v, i);
        if (json_is_string(p)) {
            if (set_text(&r->prompts[i], p, err) < 0) return -1;
        } else if (json_is_array(p) && json_array_size(p)) {
            if (decode_ids(p, "prompt", &r->prompts[i].ids, &r->prompts[i].n_ids, err) < 0) return -1;
        } else {
            return bad_type(err, "prompt", want);
        }
    }
    return 0;
}

static int decode_tokenize(json_t *o, srv_request *r, srv_error *err) {
    json_t *c = json_object_get(o, "content");
    if (!json_is_string(c)) return bad_type(err, "content", "a string");
    if (!(r->prompts = calloc(1, sizeof *r->prompts))) {
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return -1;
    }
    r->n_prompts = 1;
    if (set_text(&r->prompts[0], c, err) < 0) return -1;
    return get_bool(o, "add_special", &r->add_special, err) < 0 ? -1 : 0;
}

int meshlm_srv_decode(srv_kind kind, const char *body, size_t len, srv_request *out, srv_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!o) {
        meshlm_srv_error(err, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                         jerr.column);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(o)) {
        meshlm_srv_error(err, 400, NULL, "the body must be a JSON object");
    } else if (kind == SRV_CHAT) {
        rc = decode_generation(o, out, err) < 0 || decode_messages(o, out, err) < 0 ? -1 : 0;
    } else if (kind == SRV_COMPLETION) {
        rc = decode_generation(o, out, err) < 0 || decode_prompt(o, out, err) < 0 ? -1 : 0;
    } else if (kind == SRV_TOKENIZE) {
        rc = decode_tokenize(o, out, err);
    } else {
        json_t *t = json_object_get(o, "tokens");
        rc = !json_is_array(t) ? bad_type(err, "tokens", "an array of token ids")
                               : decode_ids(t, "tokens", &out->tokens, &out->n_tokens, err);
    }
    json_decref(o);
    if (rc < 0) meshlm_srv_request_free(out);
    return rc;
}

void meshlm_srv_request_free(srv_request *r) {
    free(r->model);
    free(r->messages);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    free(r->tokens);
    for (size_t i = 0; r->stops && i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    srv_kind kind = r->kind;
    memset(r, 0, sizeof *r);
    r->kind = kind;
}

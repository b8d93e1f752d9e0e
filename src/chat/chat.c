/* Chat templates: the Jinja engine bound to a vocabulary's bos/eos texts, rendering
 * conversations handed in as role/content pairs or as JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/jinja.h"
#include "core/status.h"

struct meshlm_chat_template {
    meshlm_jinja *jinja;
    char *bos, *eos;
    bool fallback;
};

void meshlm_free(void *p) { free(p); }

const char meshlm_chat_chatml[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

meshlm_status meshlm_chat_template_parse(const char *text, size_t len, const char *bos, const char *eos,
                                         meshlm_chat_template **out) {
    return (meshlm_status)meshlm_chat_template_create(text, len, bos, eos, false, out);
}

int meshlm_chat_template_create(const char *text, size_t len, const char *bos, const char *eos, bool fallback,
                                meshlm_chat_template **out) {
    if (!text || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_template_parse: NULL argument");
    *out = NULL;
    meshlm_chat_template *t = calloc(1, sizeof *t);
    if (!t) return meshlm_fail(MESHLM_ERR_NOMEM, "chat template: out of memory");
    t->bos = strdup(bos ? bos : "");
    t->eos = strdup(eos ? eos : "");
    if (!t->bos || !t->eos) {
        meshlm_chat_template_free(t);
        return meshlm_fail(MESHLM_ERR_NOMEM, "chat template: out of memory");
    }
    t->fallback = fallback;
    int rc = meshlm_jinja_parse(text, len, &t->jinja);
    if (rc) {
        meshlm_chat_template_free(t);
        return meshlm_fail_prefix(rc, "chat template");
    }
    *out = t;
    return MESHLM_OK;
}

bool meshlm_chat_template_is_fallback(const meshlm_chat_template *t) { return t && t->fallback; }

void meshlm_chat_template_free(meshlm_chat_template *t) {
    if (!t) return;
    meshlm_jinja_free(t->jinja);
    free(t->bos);
    free(t->eos);
    free(t);
}

/* Fills in what Hugging Face's apply_chat_template always defines: the special tokens'
 * texts, and tools/documents as None when the caller gave none. */
static int add_defaults(const meshlm_chat_template *t, json_t *vars) {
    int bad = 0;
    if (!json_object_get(vars, "bos_token")) bad |= json_object_set_new(vars, "bos_token", json_string(t->bos));
    if (!json_object_get(vars, "eos_token")) bad |= json_object_set_new(vars, "eos_token", json_string(t->eos));
    if (!json_object_get(vars, "tools")) bad |= json_object_set_new(vars, "tools", json_null());
    if (!json_object_get(vars, "documents")) bad |= json_object_set_new(vars, "documents", json_null());
    return bad ? meshlm_fail(MESHLM_ERR_NOMEM, "chat template: out of memory") : MESHLM_OK;
}

static int render(const meshlm_chat_template *t, json_t *vars, char **out, size_t *len) {
    int rc = add_defaults(t, vars);
    if (!rc) rc = meshlm_jinja_render(t->jinja, vars, out, len);
    return rc;
}

meshlm_status meshlm_chat_render_json(const meshlm_chat_template *t, const char *vars, char **out, size_t *len) {
    if (!t || !vars || !out || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_render_json: NULL argument");
    *out = NULL;
    json_error_t err;
    json_t *v = json_loads(vars, JSON_REJECT_DUPLICATES, &err);
    if (!v)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat variables: invalid JSON at line %d, column %d: %s", err.line,
                           err.column, err.text);
    int rc = json_is_object(v) ? render(t, v, out, len)
                               : meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat variables: expected a JSON object");
    json_decref(v);
    return (meshlm_status)rc;
}

meshlm_status meshlm_chat_render(const meshlm_chat_template *t, const meshlm_chat_message *msgs, size_t n,
                                 bool add_generation_prompt, char **out, size_t *len) {
    if (!t || (n && !msgs) || !out || !len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_render: NULL argument");
    *out = NULL;
    json_t *vars = json_object(), *list = json_array();
    int bad = !vars || !list || json_object_set(vars, "messages", list) ||
              json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt));
    for (size_t i = 0; i < n && !bad; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            json_decref(list);
            json_decref(vars);
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_render: message %zu has no role or content", i);
        }
        json_t *msg = json_pack("{s:s, s:s}", "role", msgs[i].role, "content", msgs[i].content);
        bad = !msg || json_array_append_new(list, msg);
    }
    int rc = bad ? meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_render: out of memory or a message is not UTF-8")
                 : render(t, vars, out, len);
    json_decref(list);
    json_decref(vars);
    return (meshlm_status)rc;
}

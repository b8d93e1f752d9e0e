/* Runs the shared reference cases (real chat templates rendered by Jinja2 the way Hugging Face
 * transformers does) through the template engine in-process: each rendering must match byte for
 * byte, and each case the reference rejects must fail. Skips when the shared data is absent. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"
#include "core/status.h"
#include "t.h"

#define CASES MESHLM_SHARED_DIR "/chat-templates/cases.jsonl"
#define TEMPLATES MESHLM_SHARED_DIR "/chat-templates/templates/"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

/* The template's variables: every key but the case's bookkeeping. */
static json_t *case_vars(json_t *rec) {
    static const char *const keys[] = {"messages", "add_generation_prompt", "bos_token", "eos_token", "tools",
                                       "documents"};
    json_t *vars = json_object();
    for (size_t i = 0; vars && i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(rec, keys[i]);
        json_object_set(vars, keys[i], v ? v : json_null());
    }
    return vars;
}

static void run_case(json_t *rec) {
    const char *name = json_string_value(json_object_get(rec, "template"));
    const char *which = json_string_value(json_object_get(rec, "case"));
    json_t *expected = json_object_get(rec, "expected");
    bool want_error = !json_is_null(json_object_get(rec, "error"));
    char path[1024];
    snprintf(path, sizeof path, "%s%s", TEMPLATES, name ? name : "");
    size_t len, out_len = 0;
    char *src = read_all(path, &len), *out = NULL;
    CHECK_MSG(src != NULL, "cannot read %s", path);
    if (!src) return;
    meshlm_jinja *t = NULL;
    json_t *vars = case_vars(rec);
    int rc = meshlm_jinja_parse(src, len, &t);
    if (!rc) rc = meshlm_jinja_render(t, vars, &out, &out_len);
    if (want_error) {
        CHECK_MSG(rc != 0, "%s case %s: expected an error, rendered", name, which);
    } else {
        const char *exp = json_string_value(expected);
        CHECK_MSG(rc == 0 && exp && out_len == strlen(exp) && !memcmp(out, exp, out_len), "%s case %s: %s", name, which,
                  rc ? meshlm_last_error() : "rendering differs");
    }
    free(out);
    json_decref(vars);
    meshlm_jinja_free(t);
    free(src);
}

int main(void) {
    size_t len;
    char *all = read_all(CASES, &len);
    if (!all) t_skip("no " CASES " (the shared chat-template cases)");
    int count = 0;
    for (char *line = all, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!*line) continue;
        json_error_t err;
        json_t *rec = json_loads(line, 0, &err);
        CHECK_MSG(rec != NULL, "bad JSON line: %s", err.text);
        if (!rec) continue;
        run_case(rec);
        json_decref(rec);
        count++;
    }
    free(all);
    printf("%d reference cases\n", count);
    return t_done();
}

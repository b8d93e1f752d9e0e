/* The engine's JSON edge, the only file that sees jansson: render variables come in as JSON,
 * and tojson writes what Python's json.dumps(x, ensure_ascii=False) would. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

static int from_object(const json_t *j, int depth, jv *out) {
    int rc = meshlm_jinja_dict_new(JV_DICT, out);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val) {
        jv k, v;
        if (rc) break;
        rc = meshlm_jinja_str_new(key, strlen(key), &k);
        if (rc) break;
        rc = meshlm_jinja_from_json(val, depth + 1, &v);
        if (rc) {
            meshlm_jinja_unref(k);
            break;
        }
        rc = meshlm_jinja_dict_set(*out, k, v);
    }
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

int meshlm_jinja_from_json(const json_t *j, int depth, jv *out) {
    if (depth > JINJA_VALUE_DEPTH)
        return meshlm_fail(MESHLM_ERR_RANGE, "JSON nested deeper than %d", JINJA_VALUE_DEPTH);
    switch (json_typeof(j)) {
    case JSON_OBJECT: return from_object(j, depth, out);
    case JSON_ARRAY: {
        int rc = meshlm_jinja_list_new(json_array_size(j), out);
        for (size_t i = 0; i < json_array_size(j) && !rc; i++) {
            jv v;
            rc = meshlm_jinja_from_json(json_array_get(j, i), depth + 1, &v);
            if (!rc) rc = meshlm_jinja_list_push(*out, v);
        }
        if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
        return rc;
    }
    case JSON_STRING: return meshlm_jinja_str_new(json_string_value(j), json_string_length(j), out);
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_NULL: *out = jv_none(); return 0;
    }
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "unknown JSON value");
}

static int write_json_str(jbuf *b, const char *s, size_t n) {
    int rc = meshlm_jinja_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        rc = meshlm_jinja_buf_put(b, s + run, i - run);
        run = i + 1;
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (rc) break;
        rc = e ? meshlm_jinja_buf_put(b, e, 2) : meshlm_jinja_buf_printf(b, "\\u%04x", c);
    }
    if (!rc) rc = meshlm_jinja_buf_put(b, s + run, n - run);
    return rc ? rc : meshlm_jinja_buf_putc(b, '"');
}

static int newline_indent(jbuf *b, const char *indent, size_t indent_n, int level, size_t cap) {
    int rc = meshlm_jinja_buf_putc(b, '\n');
    for (int i = 0; i < level && !rc; i++) {
        if (b->n + indent_n > cap) return meshlm_fail(MESHLM_ERR_RANGE, "tojson output exceeds %zu bytes", cap);
        rc = meshlm_jinja_buf_put(b, indent, indent_n);
    }
    return rc;
}

/* A dict key as json.dumps converts it: strings as they are, numbers, booleans and None
 * as their JSON text; anything else is an error. */
static int write_json_key(jbuf *b, jv k) {
    switch (k.kind) {
    case JV_STR: return write_json_str(b, k.u.s->p, k.u.s->n);
    case JV_NONE: return meshlm_jinja_buf_put(b, "\"null\"", 6);
    case JV_BOOL: return k.u.b ? meshlm_jinja_buf_put(b, "\"true\"", 6) : meshlm_jinja_buf_put(b, "\"false\"", 7);
    case JV_INT:
    case JV_FLOAT: {
        int rc = meshlm_jinja_buf_putc(b, '"');
        if (!rc) rc = meshlm_jinja_write_str(b, k);
        return rc ? rc : meshlm_jinja_buf_putc(b, '"');
    }
    default:
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "keys must be str, int, float, bool or None, not %s",
                           meshlm_jinja_type_name(k));
    }
}

static _Thread_local const jdict *sort_dict;

static int cmp_keys(const void *x, const void *y) {
    int r = 0;
    meshlm_jinja_compare(sort_dict->k[*(const size_t *)x], sort_dict->k[*(const size_t *)y], &r);
    return r;
}

/* Key order: insertion order, or sorted for sort_keys (string keys only, as Python requires). */
static int key_order(const jdict *d, bool sort_keys, size_t **order) {
    *order = malloc((d->n ? d->n : 1) * sizeof **order);
    if (!*order) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n; i++) (*order)[i] = i;
    if (!sort_keys) return 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].kind != JV_STR) {
            free(*order);
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "sort_keys needs string keys");
        }
    sort_dict = d;
    qsort(*order, d->n, sizeof **order, cmp_keys);
    return 0;
}

static int write_json_dict(jbuf *b, const jdict *d, const char *indent, size_t indent_n, bool sort_keys,
                           int level, size_t cap) {
    if (d->n == 0) return meshlm_jinja_buf_put(b, "{}", 2);
    size_t *order;
    int rc = key_order(d, sort_keys, &order);
    if (!rc) rc = meshlm_jinja_buf_putc(b, '{');
    for (size_t i = 0; i < d->n && !rc; i++) {
        if (i) rc = indent ? meshlm_jinja_buf_putc(b, ',') : meshlm_jinja_buf_put(b, ", ", 2);
        if (!rc && indent) rc = newline_indent(b, indent, indent_n, level + 1, cap);
        if (!rc) rc = write_json_key(b, d->k[order[i]]);
        if (!rc) rc = meshlm_jinja_buf_put(b, ": ", 2);
        if (!rc) rc = meshlm_jinja_write_json(b, d->v[order[i]], indent, indent_n, sort_keys, level + 1, cap);
    }
    if (!rc && indent) rc = newline_indent(b, indent, indent_n, level, cap);
    if (!rc) rc = meshlm_jinja_buf_putc(b, '}');
    free(order);
    return rc;
}

static int write_json_list(jbuf *b, const jlist *l, const char *indent, size_t indent_n, bool sort_keys,
                           int level, size_t cap) {
    if (l->n == 0) return meshlm_jinja_buf_put(b, "[]", 2);
    int rc = meshlm_jinja_buf_putc(b, '[');
    for (size_t i = 0; i < l->n && !rc; i++) {
        if (i) rc = indent ? meshlm_jinja_buf_putc(b, ',') : meshlm_jinja_buf_put(b, ", ", 2);
        if (!rc && indent) rc = newline_indent(b, indent, indent_n, level + 1, cap);
        if (!rc) rc = meshlm_jinja_write_json(b, l->v[i], indent, indent_n, sort_keys, level + 1, cap);
    }
    if (!rc && indent) rc = newline_indent(b, indent, indent_n, level, cap);
    return rc ? rc : meshlm_jinja_buf_putc(b, ']');
}

int meshlm_jinja_write_json(jbuf *b, jv v, const char *indent, size_t indent_n, bool sort_keys, int level,
                            size_t cap) {
    if (b->n > cap) return meshlm_fail(MESHLM_ERR_RANGE, "tojson output exceeds %zu bytes", cap);
    switch (v.kind) {
    case JV_NONE: return meshlm_jinja_buf_put(b, "null", 4);
    case JV_BOOL: return v.u.b ? meshlm_jinja_buf_put(b, "true", 4) : meshlm_jinja_buf_put(b, "false", 5);
    case JV_INT: return meshlm_jinja_write_str(b, v);
    case JV_FLOAT:
        if (v.u.f != v.u.f) return meshlm_jinja_buf_put(b, "NaN", 3);
        if (v.u.f > 1.7976931348623157e308) return meshlm_jinja_buf_put(b, "Infinity", 8);
        if (v.u.f < -1.7976931348623157e308) return meshlm_jinja_buf_put(b, "-Infinity", 9);
        return meshlm_jinja_write_float(b, v.u.f);
    case JV_STR: return write_json_str(b, v.u.s->p, v.u.s->n);
    case JV_LIST: return write_json_list(b, v.u.l, indent, indent_n, sort_keys, level, cap);
    case JV_DICT: return write_json_dict(b, v.u.d, indent, indent_n, sort_keys, level, cap);
    default:
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "Object of type %s is not JSON serializable",
                           meshlm_jinja_type_name(v));
    }
}

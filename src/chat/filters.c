/* Jinja2's built-in filters as Jinja2 3.1 defines them (default, join, map, select, sort,
 * indent, tojson as Hugging Face's json.dumps, ...). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

typedef int (*filter_fn)(jctx *c, jv in, const jargs *a, jv *out);

static int nomem(void) { return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory"); }

bool meshlm_jinja_flag(const jargs *a, size_t i, const char *name) {
    const jv *v = meshlm_jinja_arg(a, i, name);
    return v && meshlm_jinja_truthy(*v);
}

int meshlm_jinja_buf_finish(jbuf *b, int rc, jv *out) {
    if (rc) {
        free(b->p);
        return rc;
    }
    return meshlm_jinja_buf_take(b, out);
}

/* Looks up a dotted attribute path ("a.b", "items.0") the way Jinja2's attribute= does. */
static int attr_path(jctx *c, jv v, const jv *path, jv *out) {
    *out = jv_undef(NULL); /* on failure too: callers release what they get */
    if (path->kind == JV_INT) return meshlm_jinja_getitem(c, v, *path, out);
    if (path->kind != JV_STR) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "attribute must be a string");
    const char *p = path->u.s->p, *end = p + path->u.s->n;
    *out = meshlm_jinja_ref(v);
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        jv key, next;
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++) digits = digits && *q >= '0' && *q <= '9';
        int rc = digits ? (key = jv_int(strtoll(p, NULL, 10)), 0) : meshlm_jinja_str_new(p, (size_t)(dot - p), &key);
        if (!rc) rc = meshlm_jinja_getitem(c, *out, key, &next);
        meshlm_jinja_unref(key);
        meshlm_jinja_unref(*out);
        *out = jv_undef(NULL);
        if (rc) return rc;
        *out = next;
        p = dot + 1;
    }
    return 0;
}

static int f_default(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    const jv *d = meshlm_jinja_arg(a, 0, "default_value");
    bool use = in.kind == JV_UNDEF || (meshlm_jinja_flag(a, 1, "boolean") && !meshlm_jinja_truthy(in));
    if (!use) *out = meshlm_jinja_ref(in);
    else if (d) *out = meshlm_jinja_ref(*d);
    else return meshlm_jinja_str_new("", 0, out);
    return 0;
}

static int f_length(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    switch (in.kind) {
    case JV_STR: *out = jv_int((int64_t)meshlm_jinja_utf8_len(in.u.s->p, in.u.s->n)); return 0;
    case JV_LIST: *out = jv_int((int64_t)in.u.l->n); return 0;
    case JV_DICT:
    case JV_NS: *out = jv_int((int64_t)in.u.d->n); return 0;
    case JV_UNDEF: *out = jv_int(0); return 0;
    default: return meshlm_fail(MESHLM_ERR_INVALID_ARG, "object of type '%s' has no len()", meshlm_jinja_type_name(in));
    }
}

static int f_first_last(jctx *c, jv in, bool last, jv *out) {
    (void)c;
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    size_t n = items.u.l->n;
    *out = n ? meshlm_jinja_ref(items.u.l->v[last ? n - 1 : 0]) : jv_undef(NULL);
    meshlm_jinja_unref(items);
    return 0;
}

static int f_first(jctx *c, jv in, const jargs *a, jv *out) { return (void)a, f_first_last(c, in, false, out); }
static int f_last(jctx *c, jv in, const jargs *a, jv *out) { return (void)a, f_first_last(c, in, true, out); }

static int f_join(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *sep = meshlm_jinja_arg(a, 0, "d"), *attr = meshlm_jinja_arg(a, 1, "attribute");
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    jbuf b = {0};
    rc = meshlm_jinja_buf_put(&b, "", 0);
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        if (i && sep) rc = meshlm_jinja_write_str(&b, *sep);
        jv v = meshlm_jinja_ref(items.u.l->v[i]);
        if (!rc && attr) {
            jv base = v;
            rc = attr_path(c, base, attr, &v);
            meshlm_jinja_unref(base);
        }
        if (!rc) rc = meshlm_jinja_write_str(&b, v);
        meshlm_jinja_unref(v);
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
    }
    meshlm_jinja_unref(items);
    return meshlm_jinja_buf_finish(&b, rc, out);
}

/* Arguments a..end shifted by skip positions, for filters that pass the rest on. */
static jargs shift_args(const jargs *a, size_t skip) {
    jargs r = *a;
    r.pos = a->npos > skip ? a->pos + skip : a->pos;
    r.npos = a->npos > skip ? a->npos - skip : 0;
    return r;
}

static int f_map(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *attr = meshlm_jinja_arg(a, JINJA_KW_ONLY, "attribute"), *def = meshlm_jinja_arg(a, JINJA_KW_ONLY, "default");
    const jv *fname = a->npos ? &a->pos[0] : NULL;
    if (!attr && (!fname || fname->kind != JV_STR)) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "map needs a filter name or attribute=");
    jargs rest = shift_args(a, 1);
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    if ((rc = meshlm_jinja_list_new(items.u.l->n, out))) {
        meshlm_jinja_unref(items);
        return rc;
    }
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        jv v;
        if (attr) {
            rc = attr_path(c, items.u.l->v[i], attr, &v);
            if (!rc && v.kind == JV_UNDEF && def) v = meshlm_jinja_ref(*def);
        } else {
            rc = meshlm_jinja_filter(c, fname->u.s->p, items.u.l->v[i], &rest, &v);
        }
        if (!rc) rc = meshlm_jinja_list_push(*out, v);
    }
    meshlm_jinja_unref(items);
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

/* select/reject/selectattr/rejectattr: keep items whose test result equals keep. */
static int select_items(jctx *c, jv in, const jargs *a, bool by_attr, bool keep, jv *out) {
    const jv *attr = by_attr ? meshlm_jinja_arg(a, 0, NULL) : NULL;
    if (by_attr && !attr) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "selectattr needs an attribute");
    const jv *test = meshlm_jinja_arg(a, by_attr ? 1 : 0, NULL);
    if (test && test->kind != JV_STR) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "test name must be a string");
    jargs rest = shift_args(a, by_attr ? 2 : 1);
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    if ((rc = meshlm_jinja_list_new(0, out))) {
        meshlm_jinja_unref(items);
        return rc;
    }
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        jv v = meshlm_jinja_ref(items.u.l->v[i]);
        if (attr) {
            jv base = v;
            rc = attr_path(c, base, attr, &v);
            meshlm_jinja_unref(base);
        }
        bool r = false;
        if (!rc && test) rc = meshlm_jinja_test(c, test->u.s->p, v, &rest, &r);
        else if (!rc) r = meshlm_jinja_truthy(v);
        meshlm_jinja_unref(v);
        if (!rc && r == keep) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(items.u.l->v[i]));
    }
    meshlm_jinja_unref(items);
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int f_select(jctx *c, jv in, const jargs *a, jv *out) { return select_items(c, in, a, false, true, out); }
static int f_reject(jctx *c, jv in, const jargs *a, jv *out) { return select_items(c, in, a, false, false, out); }
static int f_selectattr(jctx *c, jv in, const jargs *a, jv *out) { return select_items(c, in, a, true, true, out); }
static int f_rejectattr(jctx *c, jv in, const jargs *a, jv *out) { return select_items(c, in, a, true, false, out); }

/* Ordering for sort/dictsort/unique/min/max: strings compare case-insensitively unless
 * case_sensitive is set. */
static int order(jv x, jv y, bool cs, int *r) {
    if (cs || x.kind != JV_STR || y.kind != JV_STR) return meshlm_jinja_compare(x, y, r);
    size_t n = x.u.s->n < y.u.s->n ? x.u.s->n : y.u.s->n;
    for (size_t i = 0; i < n; i++) {
        unsigned char p = (unsigned char)x.u.s->p[i], q = (unsigned char)y.u.s->p[i];
        if (p >= 'A' && p <= 'Z') p += 32;
        if (q >= 'A' && q <= 'Z') q += 32;
        if (p != q) {
            *r = p < q ? -1 : 1;
            return 0;
        }
    }
    *r = (x.u.s->n > n) - (y.u.s->n > n);
    return 0;
}

typedef struct keyed {
    jv key, item;
} keyed;

/* Stable merge sort (Python's sort is stable); a comparison error aborts it. */
static int merge_sort(keyed *v, keyed *tmp, size_t n, bool cs, bool rev) {
    if (n < 2) return 0;
    size_t h = n / 2;
    int rc = merge_sort(v, tmp, h, cs, rev);
    if (!rc) rc = merge_sort(v + h, tmp, n - h, cs, rev);
    size_t i = 0, j = h, k = 0;
    while (!rc && i < h && j < n) {
        int r;
        rc = order(v[j].key, v[i].key, cs, &r);
        if (rev) r = -r;
        tmp[k++] = r < 0 ? v[j++] : v[i++];
    }
    if (rc) return rc;
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    return 0;
}

/* Sorts items (a list) by key (the item, or its attribute path) into a new list. */
static int sorted(jctx *c, jv items, const jv *attr, bool cs, bool rev, jv *out) {
    size_t n = items.u.l->n;
    keyed *v = calloc(n ? n : 1, sizeof *v), *tmp = malloc((n ? n : 1) * sizeof *tmp);
    int rc = v && tmp ? 0 : nomem();
    for (size_t i = 0; i < n && !rc; i++) {
        v[i].item = items.u.l->v[i];
        v[i].key = jv_undef(NULL);
        rc = attr ? attr_path(c, v[i].item, attr, &v[i].key) : (v[i].key = meshlm_jinja_ref(v[i].item), 0);
    }
    if (!rc) rc = merge_sort(v, tmp, n, cs, rev);
    if (!rc) rc = meshlm_jinja_list_new(n, out);
    for (size_t i = 0; i < n && !rc; i++) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(v[i].item));
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    for (size_t i = 0; v && i < n; i++) meshlm_jinja_unref(v[i].key);
    free(v);
    free(tmp);
    return rc;
}

static int f_sort(jctx *c, jv in, const jargs *a, jv *out) {
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    *out = jv_undef(NULL);
    rc = sorted(c, items, meshlm_jinja_arg(a, 2, "attribute"), meshlm_jinja_flag(a, 1, "case_sensitive"),
                meshlm_jinja_flag(a, 0, "reverse"), out);
    meshlm_jinja_unref(items);
    return rc;
}

static int f_dictsort(jctx *c, jv in, const jargs *a, jv *out) {
    if (in.kind != JV_DICT) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "dictsort needs a mapping");
    const jv *by = meshlm_jinja_arg(a, 1, "by");
    jv items, attr = jv_int(by && by->kind == JV_STR && !strcmp(by->u.s->p, "value") ? 1 : 0);
    int rc = meshlm_jinja_dict_items(in, &items);
    if (rc) return rc;
    *out = jv_undef(NULL);
    rc = sorted(c, items, &attr, meshlm_jinja_flag(a, 0, "case_sensitive"), meshlm_jinja_flag(a, 2, "reverse"), out);
    meshlm_jinja_unref(items);
    return rc;
}

static int f_unique(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *attr = meshlm_jinja_arg(a, 1, "attribute");
    bool cs = meshlm_jinja_flag(a, 0, "case_sensitive");
    jv items, seen;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    rc = meshlm_jinja_list_new(0, out);
    if (!rc && (rc = meshlm_jinja_list_new(0, &seen))) meshlm_jinja_unref(*out);
    if (rc) return meshlm_jinja_unref(items), rc;
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        jv key;
        rc = attr ? attr_path(c, items.u.l->v[i], attr, &key) : (key = meshlm_jinja_ref(items.u.l->v[i]), 0);
        if (!rc && !cs && key.kind == JV_STR) {
            jv low;
            rc = meshlm_jinja_case(key, 'l', &low);
            meshlm_jinja_unref(key);
            key = rc ? jv_undef(NULL) : low;
        }
        bool dup = false;
        if (!rc) rc = meshlm_jinja_contains(seen, key, &dup);
        if (!rc && !dup) {
            rc = meshlm_jinja_list_push(seen, key);
            if (!rc) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(items.u.l->v[i]));
        } else {
            meshlm_jinja_unref(key);
        }
    }
    meshlm_jinja_unref(items);
    meshlm_jinja_unref(seen);
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int f_minmax(jctx *c, jv in, const jargs *a, bool max, jv *out) {
    jv items, s;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    rc = sorted(c, items, meshlm_jinja_arg(a, 1, "attribute"), meshlm_jinja_flag(a, 0, "case_sensitive"), false, &s);
    meshlm_jinja_unref(items);
    if (rc) return rc;
    size_t n = s.u.l->n;
    *out = n ? meshlm_jinja_ref(s.u.l->v[max ? n - 1 : 0]) : jv_undef(NULL);
    meshlm_jinja_unref(s);
    return 0;
}

static int f_min(jctx *c, jv in, const jargs *a, jv *out) { return f_minmax(c, in, a, false, out); }
static int f_max(jctx *c, jv in, const jargs *a, jv *out) { return f_minmax(c, in, a, true, out); }

static int f_items(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    if (in.kind == JV_UNDEF) return meshlm_jinja_list_new(0, out);
    if (in.kind != JV_DICT) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "can only get item pairs from a mapping");
    return meshlm_jinja_dict_items(in, out);
}

static int f_list(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    rc = meshlm_jinja_slice(items, NULL, NULL, NULL, out);
    if (!rc) out->u.l->tuple = false;
    meshlm_jinja_unref(items);
    return rc;
}

static int f_reverse(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    jv step = jv_int(-1), items;
    if (in.kind == JV_STR) return meshlm_jinja_slice(in, NULL, NULL, &step, out);
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    rc = meshlm_jinja_slice(items, NULL, NULL, &step, out);
    meshlm_jinja_unref(items);
    return rc;
}

static int f_batch(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    const jv *nv = meshlm_jinja_arg(a, 0, "linecount"), *fill = meshlm_jinja_arg(a, 1, "fill_with");
    if (!nv || nv->kind != JV_INT || nv->u.i <= 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "batch needs a positive count");
    size_t per = (size_t)nv->u.i;
    jv items, row = jv_undef(NULL);
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    if ((rc = meshlm_jinja_list_new(0, out))) return meshlm_jinja_unref(items), rc;
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        if (row.kind == JV_UNDEF) rc = meshlm_jinja_list_new(0, &row);
        if (!rc) rc = meshlm_jinja_list_push(row, meshlm_jinja_ref(items.u.l->v[i]));
        if (!rc && row.u.l->n == per) {
            rc = meshlm_jinja_list_push(*out, row);
            row = jv_undef(NULL);
        }
    }
    while (!rc && row.kind == JV_LIST && fill && fill->kind != JV_NONE && row.u.l->n < per)
        rc = meshlm_jinja_list_push(row, meshlm_jinja_ref(*fill));
    if (!rc && row.kind == JV_LIST) {
        rc = meshlm_jinja_list_push(*out, row);
        row = jv_undef(NULL);
    }
    meshlm_jinja_unref(row);
    meshlm_jinja_unref(items);
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int f_sum(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *attr = meshlm_jinja_arg(a, 0, "attribute"), *start = meshlm_jinja_arg(a, 1, "start");
    jv items;
    int rc = meshlm_jinja_iterate(in, &items);
    if (rc) return rc;
    jv acc = start ? meshlm_jinja_ref(*start) : jv_int(0);
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        jv v, next;
        rc = attr ? attr_path(c, items.u.l->v[i], attr, &v) : (v = meshlm_jinja_ref(items.u.l->v[i]), 0);
        if (!rc) rc = meshlm_jinja_binop(c, OP_ADD, acc, v, &next);
        meshlm_jinja_unref(v);
        if (!rc) {
            meshlm_jinja_unref(acc);
            acc = next;
        }
    }
    meshlm_jinja_unref(items);
    if (rc) meshlm_jinja_unref(acc);
    else *out = acc;
    return rc;
}

static int f_attr(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *name = meshlm_jinja_arg(a, 0, "name");
    if (!name || name->kind != JV_STR) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "attr needs a name");
    int rc = meshlm_jinja_getattr(c, in, name->u.s->p, name->u.s->n, out);
    if (!rc && out->kind == JV_UNDEF && !out->unsafe) out->u.name = NULL; /* the name dies with the argument */
    return rc;
}

static int f_pprint(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    jbuf b = {0};
    return meshlm_jinja_buf_finish(&b, meshlm_jinja_write_repr(&b, in), out);
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"default", f_default}, {"d", f_default},           {"length", f_length},         {"count", f_length},
    {"first", f_first},     {"last", f_last},           {"join", f_join},             {"map", f_map},
    {"select", f_select},   {"reject", f_reject},       {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr},
    {"sort", f_sort},       {"dictsort", f_dictsort},   {"unique", f_unique},         {"min", f_min},
    {"max", f_max},         {"items", f_items},         {"list", f_list},             {"reverse", f_reverse},
    {"batch", f_batch},     {"sum", f_sum},             {"attr", f_attr},             {"pprint", f_pprint},
};

bool meshlm_jinja_has_filter(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return true;
    return meshlm_jinja_has_str_filter(name);
}

int meshlm_jinja_filter(jctx *c, const char *name, jv in, const jargs *a, jv *out) {
    int rc = meshlm_jinja_charge_steps(c, in, jv_none());
    if (rc) return rc;
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return filters[i].fn(c, in, a, out);
    rc = meshlm_jinja_str_filter(c, name, in, a, out);
    return rc <= 0 ? rc : meshlm_fail(MESHLM_ERR_INVALID_ARG, "no filter named '%s'", name);
}

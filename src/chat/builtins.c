/* Global functions templates call: range, dict, namespace, and the two Hugging Face adds,
 * raise_exception and strftime_now (on a fixed date so renderings repeat). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/jinja_impl.h"

enum { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME, G_COUNT };

static const char *const global_names[G_COUNT] = {"range", "dict", "namespace", "raise_exception", "strftime_now"};

int meshlm_jinja_global(const char *name, jv *out) {
    for (int i = 0; i < G_COUNT; i++)
        if (!strcmp(name, global_names[i])) {
            int rc = meshlm_jinja_func_new(FN_BUILTIN, out);
            if (!rc) out->u.fn->id = i;
            return rc;
        }
    return 1;
}

static int int_arg(const jv *v, const char *what, int64_t *out) {
    if (!v || (v->kind != JV_INT && v->kind != JV_BOOL))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s must be an integer", what);
    *out = v->kind == JV_INT ? v->u.i : v->u.b;
    return 0;
}

static int call_range(const jargs *a, jv *out) {
    int64_t start = 0, stop = 0, step = 1;
    int rc;
    if (a->npos == 1) {
        rc = int_arg(&a->pos[0], "range() argument", &stop);
    } else if (a->npos == 2 || a->npos == 3) {
        rc = int_arg(&a->pos[0], "range() argument", &start);
        if (!rc) rc = int_arg(&a->pos[1], "range() argument", &stop);
        if (!rc && a->npos == 3) rc = int_arg(&a->pos[2], "range() argument", &step);
    } else {
        rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "range() takes 1 to 3 arguments");
    }
    if (rc) return rc;
    if (step == 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "range() arg 3 must not be zero");
    double count = step > 0 ? ((double)stop - (double)start) / (double)step : ((double)start - (double)stop) / (double)-step;
    if (count > JINJA_RANGE_MAX)
        return meshlm_fail(MESHLM_ERR_RANGE, "range() of more than %d items", JINJA_RANGE_MAX);
    rc = meshlm_jinja_list_new(count > 0 ? (size_t)count + 1 : 0, out);
    for (int64_t i = start; !rc && (step > 0 ? i < stop : i > stop); i += step) rc = meshlm_jinja_list_push(*out, jv_int(i));
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

/* dict(...) and namespace(...): an optional mapping, then keyword arguments. */
static int call_mapping(jv_kind kind, const jargs *a, jv *out) {
    int rc = meshlm_jinja_dict_new(kind, out);
    if (rc) return rc;
    if (a->npos > 1 || (a->npos == 1 && a->pos[0].kind != JV_DICT && a->pos[0].kind != JV_NS)) {
        meshlm_jinja_unref(*out);
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s() takes a mapping and keyword arguments",
                           kind == JV_NS ? "namespace" : "dict");
    }
    if (a->npos == 1) {
        const jdict *d = a->pos[0].u.d;
        for (size_t i = 0; i < d->n && !rc; i++)
            rc = meshlm_jinja_dict_set(*out, meshlm_jinja_ref(d->k[i]), meshlm_jinja_ref(d->v[i]));
    }
    for (size_t i = 0; i < a->nkw && !rc; i++) {
        jv k;
        rc = meshlm_jinja_str_new(a->kwn[i], strlen(a->kwn[i]), &k);
        if (!rc) rc = meshlm_jinja_dict_set(*out, k, meshlm_jinja_ref(a->kwv[i]));
    }
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int call_raise(const jargs *a) {
    const jv *msg = meshlm_jinja_arg(a, 0, "message");
    jbuf b = {0};
    int rc = msg ? meshlm_jinja_write_str(&b, *msg) : 0;
    if (rc) {
        free(b.p);
        return rc;
    }
    rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s", b.p ? b.p : "raise_exception() called");
    free(b.p);
    return rc;
}

/* strftime on Friday 26 July 2024, 00:00:00: templates print "today's date" with it. */
static int call_strftime(const jargs *a, jv *out) {
    const jv *fmt = meshlm_jinja_arg(a, 0, "format");
    if (!fmt || fmt->kind != JV_STR) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "strftime_now() needs a format string");
    if (fmt->u.s->n > 256) return meshlm_fail(MESHLM_ERR_RANGE, "strftime_now() format longer than 256 bytes");
    struct tm tm = {.tm_year = 124, .tm_mon = 6, .tm_mday = 26, .tm_wday = 5, .tm_yday = 207, .tm_isdst = 0};
    char buf[8192];
    size_t n = fmt->u.s->n ? strftime(buf, sizeof buf, fmt->u.s->p, &tm) : 0;
    if (n == 0 && fmt->u.s->n) return meshlm_jinja_str_new("", 0, out);
    return meshlm_jinja_str_new(buf, n, out);
}

int meshlm_jinja_call_global(jctx *c, int id, const jargs *a, jv *out) {
    (void)c;
    switch (id) {
    case G_RANGE: return call_range(a, out);
    case G_DICT: return call_mapping(JV_DICT, a, out);
    case G_NAMESPACE: return call_mapping(JV_NS, a, out);
    case G_RAISE: return call_raise(a);
    case G_STRFTIME: return call_strftime(a, out);
    default: return meshlm_fail(MESHLM_ERR_INTERNAL, "bad global");
    }
}

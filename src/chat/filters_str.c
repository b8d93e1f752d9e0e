/* Filters on strings and scalars (trim, indent, replace, int, round, tojson, escape, ...)
 * and the filter dispatch table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

typedef int (*filter_fn)(jctx *c, jv in, const jargs *a, jv *out);

/* Runs fn on str(in): the string filters accept any value as Jinja2's soft_str does. */
static int on_str(jv in, int (*fn)(jv s, const void *ctx, jv *out), const void *ctx, jv *out) {
    jv s;
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    rc = fn(s, ctx, out);
    meshlm_jinja_unref(s);
    return rc;
}

static int do_case(jv s, const void *mode, jv *out) { return meshlm_jinja_case(s, *(const char *)mode, out); }
static int f_upper(jctx *c, jv in, const jargs *a, jv *out) { return (void)c, (void)a, on_str(in, do_case, "u", out); }
static int f_lower(jctx *c, jv in, const jargs *a, jv *out) { return (void)c, (void)a, on_str(in, do_case, "l", out); }
static int f_title(jctx *c, jv in, const jargs *a, jv *out) { return (void)c, (void)a, on_str(in, do_case, "t", out); }

static int f_capitalize(jctx *c, jv in, const jargs *a, jv *out) { return (void)c, (void)a, on_str(in, do_case, "c", out); }

static int do_trim(jv s, const void *chars, jv *out) { return meshlm_jinja_strip(s, chars, 3, out); }
static int f_trim(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    return on_str(in, do_trim, meshlm_jinja_arg(a, 0, "chars"), out);
}

static int f_replace(jctx *c, jv in, const jargs *a, jv *out) {
    jv s;
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    const jv *count = meshlm_jinja_arg(a, 2, "count");
    rc = meshlm_jinja_replace(c, s, meshlm_jinja_arg(a, 0, "old"), meshlm_jinja_arg(a, 1, "new"),
                              count && count->kind == JV_NONE ? NULL : count, out);
    meshlm_jinja_unref(s);
    return rc;
}

static int f_center(jctx *c, jv in, const jargs *a, jv *out) {
    jv s, width = jv_int(80);
    const jv *w = meshlm_jinja_arg(a, 0, "width");
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    rc = meshlm_jinja_pad(c, s, w ? w : &width, NULL, 'c', out);
    meshlm_jinja_unref(s);
    return rc;
}

/* Jinja2 3.1's indent: every line after the first (and the first with first=True) gets the
 * indentation; blank lines only with blank=True. */
static int f_indent(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *w = meshlm_jinja_arg(a, 0, "width");
    jbuf ind = {0}, b = {0};
    int rc = 0;
    if (w && w->kind == JV_STR) rc = meshlm_jinja_buf_put(&ind, w->u.s->p, w->u.s->n);
    else {
        int64_t n = w ? (w->kind == JV_INT ? w->u.i : -1) : 4;
        if (n < 0) rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "indent width must be an integer or a string");
        else if ((uint64_t)n > c->max_out) rc = meshlm_fail(MESHLM_ERR_RANGE, "indent width exceeds the output cap");
        for (int64_t i = 0; i < n && !rc; i++) rc = meshlm_jinja_buf_putc(&ind, ' ');
    }
    bool first = meshlm_jinja_flag(a, 1, "first"), blank = meshlm_jinja_flag(a, 2, "blank");
    jv s, lines = jv_undef(NULL);
    if (!rc) rc = meshlm_jinja_to_str(in, &s);
    if (rc) return meshlm_jinja_buf_finish(&ind, rc, out);
    jbuf tmp = {0};
    rc = meshlm_jinja_buf_put(&tmp, s.u.s->p, s.u.s->n);
    if (!rc) rc = meshlm_jinja_buf_putc(&tmp, '\n');
    meshlm_jinja_unref(s);
    if (!rc) rc = meshlm_jinja_buf_take(&tmp, &s);
    if (!rc) rc = meshlm_jinja_splitlines(s, false, &lines);
    if (!rc) rc = meshlm_jinja_buf_put(&b, "", 0);
    if (!rc && first) rc = meshlm_jinja_buf_put(&b, ind.p ? ind.p : "", ind.n);
    for (size_t i = 0; !rc && i < lines.u.l->n; i++) {
        const jstr *line = lines.u.l->v[i].u.s;
        if (i) rc = meshlm_jinja_buf_putc(&b, '\n');
        if (!rc && i && (blank || line->n)) rc = meshlm_jinja_buf_put(&b, ind.p ? ind.p : "", ind.n);
        if (!rc) rc = meshlm_jinja_buf_put(&b, line->p, line->n);
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
    }
    free(tmp.p);
    free(ind.p);
    meshlm_jinja_unref(lines);
    if (s.kind == JV_STR) meshlm_jinja_unref(s);
    return meshlm_jinja_buf_finish(&b, rc, out);
}

/* Python's int() of a string: optional sign, digits with single underscores between. */
static bool parse_pyint(const char *p, size_t n, int64_t *out) {
    size_t i = 0;
    while (i < n && meshlm_jinja_py_space((unsigned char)p[i])) i++;
    while (n > i && meshlm_jinja_py_space((unsigned char)p[n - 1])) n--;
    bool neg = i < n && p[i] == '-';
    if (i < n && (p[i] == '-' || p[i] == '+')) i++;
    if (i >= n) return false;
    int64_t v = 0;
    for (size_t k = i; k < n; k++) {
        if (p[k] == '_' && k > i && k + 1 < n && p[k - 1] != '_' && p[k + 1] != '_') continue;
        if (p[k] < '0' || p[k] > '9') return false;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, p[k] - '0', &v)) return false;
    }
    *out = neg ? -v : v;
    return true;
}

static bool parse_pyfloat(const char *p, size_t n, double *out) {
    char tmp[128];
    if (n >= sizeof tmp) return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    if (end == tmp) return false;
    while (*end && meshlm_jinja_py_space((unsigned char)*end)) end++;
    return *end == '\0' && !(tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X'));
}

static int f_int(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    const jv *def = meshlm_jinja_arg(a, 0, "default");
    double f;
    int64_t i;
    if (in.kind == JV_INT || in.kind == JV_BOOL) *out = jv_int(in.kind == JV_INT ? in.u.i : in.u.b);
    else if (in.kind == JV_FLOAT && isfinite(in.u.f) && fabs(in.u.f) < 9.2e18) *out = jv_int((int64_t)in.u.f);
    else if (in.kind == JV_STR && parse_pyint(in.u.s->p, in.u.s->n, &i)) *out = jv_int(i);
    else if (in.kind == JV_STR && parse_pyfloat(in.u.s->p, in.u.s->n, &f) && isfinite(f) && fabs(f) < 9.2e18)
        *out = jv_int((int64_t)f);
    else *out = def ? meshlm_jinja_ref(*def) : jv_int(0);
    return 0;
}

static int f_float(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    const jv *def = meshlm_jinja_arg(a, 0, "default");
    double f;
    if (meshlm_jinja_is_number(in)) *out = jv_float(meshlm_jinja_num(in));
    else if (in.kind == JV_STR && parse_pyfloat(in.u.s->p, in.u.s->n, &f)) *out = jv_float(f);
    else *out = def ? meshlm_jinja_ref(*def) : jv_float(0.0);
    return 0;
}

static int f_round(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    const jv *pv = meshlm_jinja_arg(a, 0, "precision"), *mv = meshlm_jinja_arg(a, 1, "method");
    int64_t p = pv && pv->kind == JV_INT ? pv->u.i : 0;
    const char *method = mv && mv->kind == JV_STR ? mv->u.s->p : "common";
    if (!meshlm_jinja_is_number(in)) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "round needs a number");
    if (strcmp(method, "common") && strcmp(method, "floor") && strcmp(method, "ceil"))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "method must be common, ceil or floor");
    if (in.kind != JV_FLOAT && !strcmp(method, "common") && p >= 0) {
        *out = jv_int(in.kind == JV_INT ? in.u.i : in.u.b);
        return 0;
    }
    double scale = pow(10.0, (double)(p < -300 ? -300 : p > 300 ? 300 : p)), x = meshlm_jinja_num(in) * scale;
    x = !strcmp(method, "floor") ? floor(x) : !strcmp(method, "ceil") ? ceil(x) : nearbyint(x);
    *out = jv_float(x / scale);
    return 0;
}

static int f_abs(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    if (in.kind == JV_FLOAT) *out = jv_float(fabs(in.u.f));
    else if ((in.kind == JV_INT && in.u.i != INT64_MIN) || in.kind == JV_BOOL)
        *out = jv_int(in.kind == JV_INT ? (in.u.i < 0 ? -in.u.i : in.u.i) : in.u.b);
    else return meshlm_fail(MESHLM_ERR_INVALID_ARG, "bad operand type for abs(): '%s'", meshlm_jinja_type_name(in));
    return 0;
}

static int f_string(jctx *c, jv in, const jargs *a, jv *out) { return (void)c, (void)a, meshlm_jinja_to_str(in, out); }

static int f_safe(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    *out = meshlm_jinja_ref(in);
    return 0;
}

static int f_escape(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    jv s;
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    jbuf b = {0};
    rc = meshlm_jinja_buf_put(&b, "", 0);
    for (size_t i = 0; i < s.u.s->n && !rc; i++) {
        char ch = s.u.s->p[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;"
                      : ch == '\'' ? "&#39;" : NULL;
        rc = e ? meshlm_jinja_buf_put(&b, e, strlen(e)) : meshlm_jinja_buf_putc(&b, ch);
    }
    meshlm_jinja_unref(s);
    return meshlm_jinja_buf_finish(&b, rc, out);
}

static int f_tojson(jctx *c, jv in, const jargs *a, jv *out) {
    const jv *ind = meshlm_jinja_arg(a, 0, "indent");
    jbuf spaces = {0}, b = {0};
    int rc = 0;
    const char *indent = NULL;
    size_t indent_n = 0;
    if (ind && ind->kind == JV_STR) {
        indent = ind->u.s->p;
        indent_n = ind->u.s->n;
    } else if (ind && (ind->kind == JV_INT || ind->kind == JV_BOOL)) {
        int64_t n = ind->kind == JV_INT ? ind->u.i : ind->u.b;
        if ((uint64_t)(n < 0 ? 0 : n) > c->max_out) rc = meshlm_fail(MESHLM_ERR_RANGE, "tojson indent too large");
        for (int64_t i = 0; i < n && !rc; i++) rc = meshlm_jinja_buf_putc(&spaces, ' ');
        indent = spaces.p ? spaces.p : "";
        indent_n = spaces.n;
    } else if (ind && ind->kind != JV_NONE) {
        rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "tojson indent must be an integer or a string");
    }
    if (!rc) rc = meshlm_jinja_write_json(&b, in, indent, indent_n, meshlm_jinja_flag(a, JINJA_KW_ONLY, "sort_keys"), 0, c->max_out);
    if (!rc) rc = meshlm_jinja_check_len(c, b.n);
    free(spaces.p);
    return meshlm_jinja_buf_finish(&b, rc, out);
}

static int f_format(jctx *c, jv in, const jargs *a, jv *out) {
    jv s, args;
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    if (a->nkw) {
        rc = meshlm_jinja_dict_new(JV_DICT, &args);
        for (size_t i = 0; i < a->nkw && !rc; i++) {
            jv k;
            rc = meshlm_jinja_str_new(a->kwn[i], strlen(a->kwn[i]), &k);
            if (!rc) rc = meshlm_jinja_dict_set(args, k, meshlm_jinja_ref(a->kwv[i]));
        }
    } else {
        rc = meshlm_jinja_list_new(a->npos, &args);
        if (!rc) args.u.l->tuple = true;
        for (size_t i = 0; i < a->npos && !rc; i++) rc = meshlm_jinja_list_push(args, meshlm_jinja_ref(a->pos[i]));
    }
    if (!rc) rc = meshlm_jinja_percent_format(c, s, args, out);
    if (args.kind == JV_LIST || args.kind == JV_DICT) meshlm_jinja_unref(args);
    meshlm_jinja_unref(s);
    return rc;
}

static int f_wordcount(jctx *c, jv in, const jargs *a, jv *out) {
    (void)c;
    (void)a;
    jv s;
    int rc = meshlm_jinja_to_str(in, &s);
    if (rc) return rc;
    int64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.u.s->n; i++) {
        unsigned char ch = (unsigned char)s.u.s->p[i];
        bool w = ch >= 0x80 || ch == '_' || (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'z');
        if (w && !in_word) n++;
        in_word = w;
    }
    meshlm_jinja_unref(s);
    *out = jv_int(n);
    return 0;
}

static const struct {
    const char *name;
    filter_fn fn;
} str_filters[] = {
    {"upper", f_upper},   {"lower", f_lower},     {"title", f_title},       {"capitalize", f_capitalize},
    {"trim", f_trim},     {"replace", f_replace}, {"center", f_center},     {"indent", f_indent},
    {"int", f_int},       {"float", f_float},     {"round", f_round},       {"abs", f_abs},
    {"string", f_string}, {"safe", f_safe},       {"escape", f_escape},     {"e", f_escape},
    {"forceescape", f_escape}, {"tojson", f_tojson}, {"format", f_format}, {"wordcount", f_wordcount},
};

/* 0 or an error when name is a string filter, 1 when it is not one. */
int meshlm_jinja_str_filter(jctx *c, const char *name, jv in, const jargs *a, jv *out) {
    for (size_t i = 0; i < sizeof str_filters / sizeof str_filters[0]; i++)
        if (!strcmp(str_filters[i].name, name)) return str_filters[i].fn(c, in, a, out);
    return 1;
}

bool meshlm_jinja_has_str_filter(const char *name) {
    for (size_t i = 0; i < sizeof str_filters / sizeof str_filters[0]; i++)
        if (!strcmp(str_filters[i].name, name)) return true;
    return false;
}

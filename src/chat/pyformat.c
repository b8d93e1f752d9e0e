/* Python string formatting: str.format ("{}", "{0}", "{name:>8}") and the % operator
 * ("%s", "%d", "%.2f", "%(name)s"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

typedef struct spec {
    char fill, align, sign, type;
    bool alt, zero;
    int width, prec;
} spec;

/* Pads text to the spec's width (code points) with its fill and alignment. */
static int put_padded(jbuf *b, const char *s, size_t n, const spec *sp, char default_align) {
    size_t len = meshlm_jinja_utf8_len(s, n), pad = sp->width > (int)len ? (size_t)sp->width - len : 0;
    char align = sp->align ? sp->align : default_align;
    size_t left = align == '>' || align == '=' ? pad : align == '^' ? pad / 2 : 0;
    int rc = 0;
    if (align == '=' && n && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) {
        rc = meshlm_jinja_buf_putc(b, s[0]);
        s++;
        n--;
        left = pad;
    }
    for (size_t i = 0; i < left && !rc; i++) rc = meshlm_jinja_buf_putc(b, sp->fill ? sp->fill : ' ');
    if (!rc) rc = meshlm_jinja_buf_put(b, s, n);
    for (size_t i = left; i < pad && !rc; i++) rc = meshlm_jinja_buf_putc(b, sp->fill ? sp->fill : ' ');
    return rc;
}

/* A number under a spec, through snprintf. */
static int put_number(jbuf *b, jv v, const spec *sp) {
    char fmt[32], tmp[512];
    size_t k = 0;
    fmt[k++] = '%';
    if (sp->sign == '+' || sp->sign == ' ') fmt[k++] = sp->sign;
    if (sp->alt) fmt[k++] = '#';
    char t = sp->type;
    if (t == 'c' && v.kind != JV_FLOAT) {
        jbuf ch = {0};
        int64_t cp = v.kind == JV_INT ? v.u.i : v.u.b;
        int rc = cp >= 0 && cp <= 0x10FFFF ? meshlm_jinja_utf8_put(&ch, (uint32_t)cp)
                                           : meshlm_fail(MESHLM_ERR_INVALID_ARG, "%%c arg not in range(0x110000)");
        if (!rc) rc = put_padded(b, ch.p, ch.n, sp, '>');
        free(ch.p);
        return rc;
    }
    if (!t || !strchr("dixXofFeEgG", t))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "unsupported format character '%c'", t ? t : '?');
    bool integral = t == 'd' || t == 'i' || t == 'x' || t == 'X' || t == 'o';
    if (integral && v.kind == JV_FLOAT && t != 'd' && t != 'i')
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%%%c format requires an integer", t);
    int n;
    if (integral) {
        k += (size_t)snprintf(fmt + k, sizeof fmt - k, "ll%c", t == 'i' ? 'd' : t);
        long long i = v.kind == JV_FLOAT ? (long long)v.u.f : v.kind == JV_INT ? v.u.i : v.u.b;
        n = snprintf(tmp, sizeof tmp, fmt, i);
    } else {
        int prec = sp->prec >= 0 ? (sp->prec > 100 ? 100 : sp->prec) : 6;
        k += (size_t)snprintf(fmt + k, sizeof fmt - k, ".%d%c", prec, t);
        n = snprintf(tmp, sizeof tmp, fmt, meshlm_jinja_num(v));
    }
    if (n < 0) return meshlm_fail(MESHLM_ERR_INTERNAL, "formatting failed");
    spec padded = *sp;
    if (sp->zero && !sp->align) {
        padded.fill = '0';
        padded.align = '=';
    }
    return put_padded(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1, &padded, '>');
}

/* One value under a spec: numbers through put_number, anything else as str (or repr). */
static int put_value(jbuf *b, jv v, const spec *sp, bool repr) {
    bool number = meshlm_jinja_is_number(v) && sp->type && !strchr("sr", sp->type);
    if (number) return put_number(b, v, sp);
    if (sp->type && !strchr("sr", sp->type))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "format code '%c' needs a number, not %s", sp->type,
                           meshlm_jinja_type_name(v));
    jbuf tmp = {0};
    int rc = repr ? meshlm_jinja_write_repr(&tmp, v) : meshlm_jinja_write_str(&tmp, v);
    size_t n = tmp.n;
    if (!rc && sp->prec >= 0) {
        size_t cut = 0;
        for (int k = 0; k < sp->prec && cut < n; k++) meshlm_jinja_utf8_next(tmp.p, n, &cut);
        n = cut;
    }
    if (!rc) rc = put_padded(b, tmp.p ? tmp.p : "", n, sp, meshlm_jinja_is_number(v) ? '>' : '<');
    free(tmp.p);
    return rc;
}

static int parse_int(const char **s, const char *end) {
    int v = 0;
    while (*s < end && **s >= '0' && **s <= '9') {
        if (v < 100000) v = v * 10 + (**s - '0');
        (*s)++;
    }
    return v;
}

/* A str.format spec: [[fill]align][sign][#][0][width][,][.precision][type]. */
static void parse_format_spec(const char *s, const char *end, spec *sp) {
    *sp = (spec){.prec = -1};
    if (end - s >= 2 && strchr("<>^=", s[1])) {
        sp->fill = s[0];
        sp->align = s[1];
        s += 2;
    } else if (s < end && strchr("<>^=", *s)) {
        sp->align = *s++;
    }
    if (s < end && strchr("+- ", *s)) sp->sign = *s++;
    if (s < end && *s == '#') sp->alt = s++;
    if (s < end && *s == '0') sp->zero = s++;
    sp->width = parse_int(&s, end);
    if (s < end && *s == ',') s++;
    if (s < end && *s == '.') {
        s++;
        sp->prec = parse_int(&s, end);
    }
    if (s < end) sp->type = *s;
}

/* The value a str.format field names: position, keyword, then .attr or [key] parts. */
static int field_value(jctx *c, const jargs *a, const char *f, const char *end, size_t *auto_i, jv *out) {
    const char *p = f;
    *out = jv_undef(NULL); /* on failure too: the caller releases what it gets */
    while (p < end && *p != '.' && *p != '[') p++;
    const jv *v;
    if (p == f) {
        v = *auto_i < a->npos ? &a->pos[(*auto_i)++] : NULL;
    } else if (*f >= '0' && *f <= '9') {
        const char *q = f;
        int i = parse_int(&q, p);
        v = (size_t)i < a->npos ? &a->pos[i] : NULL;
    } else {
        v = NULL;
        for (size_t k = 0; k < a->nkw && !v; k++)
            if (strlen(a->kwn[k]) == (size_t)(p - f) && !memcmp(a->kwn[k], f, (size_t)(p - f))) v = &a->kwv[k];
    }
    if (!v) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "format field '%.*s' has no argument", (int)(end - f), f);
    *out = meshlm_jinja_ref(*v);
    while (p < end) {
        const char *q = ++p;
        while (p < end && *p != '.' && *p != '[' && *p != ']') p++;
        jv next, key;
        bool digits = p > q;
        for (const char *k = q; k < p; k++) digits = digits && *k >= '0' && *k <= '9';
        int rc = digits ? (key = jv_int(strtoll(q, NULL, 10)), 0) : meshlm_jinja_str_new(q, (size_t)(p - q), &key);
        if (!rc) rc = meshlm_jinja_getitem(c, *out, key, &next);
        meshlm_jinja_unref(key);
        meshlm_jinja_unref(*out);
        *out = jv_undef(NULL);
        if (rc) return rc;
        *out = next;
        if (p < end && *p == ']') p++;
    }
    return 0;
}

int meshlm_jinja_str_format(jctx *c, jv self, const jargs *a, jv *out) {
    const char *s = self.u.s->p, *end = s + self.u.s->n;
    jbuf b = {0};
    size_t auto_i = 0;
    int rc = meshlm_jinja_buf_put(&b, "", 0);
    while (!rc && s < end) {
        if ((*s == '{' || *s == '}') && s + 1 < end && s[1] == *s) {
            rc = meshlm_jinja_buf_putc(&b, *s);
            s += 2;
            continue;
        }
        if (*s != '{') {
            rc = meshlm_jinja_buf_putc(&b, *s++);
            continue;
        }
        const char *close = memchr(s, '}', (size_t)(end - s));
        if (!close) {
            rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "single '{' encountered in format string");
            break;
        }
        const char *f = s + 1, *colon = memchr(f, ':', (size_t)(close - f)), *bang = memchr(f, '!', (size_t)(close - f));
        const char *fend = bang ? bang : colon ? colon : close;
        spec sp;
        parse_format_spec(colon ? colon + 1 : close, close, &sp);
        jv v;
        rc = field_value(c, a, f, fend, &auto_i, &v);
        if (!rc) rc = put_value(&b, v, &sp, bang && bang[1] == 'r');
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
        meshlm_jinja_unref(v);
        s = close + 1;
    }
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

/* A %-conversion: [(name)][flags][width][.precision]type, after the '%'. */
static const char *parse_percent_spec(const char *s, const char *end, spec *sp, const char **name, size_t *name_n) {
    *sp = (spec){.prec = -1};
    *name = NULL;
    if (s < end && *s == '(') {
        const char *close = memchr(s, ')', (size_t)(end - s));
        if (!close) return NULL;
        *name = s + 1;
        *name_n = (size_t)(close - s - 1);
        s = close + 1;
    }
    for (; s < end && strchr("-+ 0#", *s); s++) {
        if (*s == '-') sp->align = '<';
        else if (*s == '0') sp->zero = true;
        else if (*s == '#') sp->alt = true;
        else sp->sign = *s;
    }
    sp->width = parse_int(&s, end);
    if (s < end && *s == '.') {
        s++;
        sp->prec = parse_int(&s, end);
    }
    if (s >= end) return NULL;
    sp->type = *s;
    if (sp->align == '<') sp->zero = false;
    return s + 1;
}

int meshlm_jinja_percent_format(jctx *c, jv fmt, jv args, jv *out) {
    const char *s = fmt.u.s->p, *end = s + fmt.u.s->n;
    bool multi = args.kind == JV_LIST && args.u.l->tuple;
    size_t next = 0;
    jbuf b = {0};
    int rc = meshlm_jinja_buf_put(&b, "", 0);
    while (!rc && s < end) {
        if (*s != '%') {
            rc = meshlm_jinja_buf_putc(&b, *s++);
            continue;
        }
        spec sp;
        const char *name;
        size_t name_n = 0;
        const char *after = parse_percent_spec(s + 1, end, &sp, &name, &name_n);
        if (!after) {
            rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "incomplete format");
            break;
        }
        s = after;
        if (sp.type == '%') {
            rc = meshlm_jinja_buf_putc(&b, '%');
            continue;
        }
        const jv *v = NULL;
        if (name) v = args.kind == JV_DICT ? meshlm_jinja_dict_gets(args, name, name_n) : NULL;
        else if (multi) v = next < args.u.l->n ? &args.u.l->v[next] : NULL;
        else v = next == 0 ? &args : NULL;
        next++;
        if (!v) {
            rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "not enough arguments for format string");
            break;
        }
        if (sp.type == 's' || sp.type == 'r') {
            char t = sp.type;
            sp.type = 0;
            if (!sp.align) sp.align = '>';
            rc = put_value(&b, *v, &sp, t == 'r');
        } else if (meshlm_jinja_is_number(*v)) {
            rc = put_number(&b, *v, &sp);
        } else {
            rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "%%%c format: a number is required, not %s", sp.type,
                             meshlm_jinja_type_name(*v));
        }
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
    }
    if (!rc && multi && next < args.u.l->n) rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "not all arguments converted during string formatting");
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

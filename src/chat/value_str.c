/* Python's str() and repr() of template values: what {{ x }} prints for numbers, None,
 * booleans, lists and dicts. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

int meshlm_jinja_buf_printf(jbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return meshlm_fail(MESHLM_ERR_INTERNAL, "formatting failed");
    return meshlm_jinja_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Python's float repr: the shortest digits that read back exactly, in fixed notation for
 * exponents in [-4, 16) and scientific ("1e-05") otherwise. */
int meshlm_jinja_write_float(jbuf *b, double f) {
    if (isnan(f)) return meshlm_jinja_buf_put(b, "nan", 3);
    if (isinf(f)) return f > 0 ? meshlm_jinja_buf_put(b, "inf", 3) : meshlm_jinja_buf_put(b, "-inf", 4);
    char tmp[48];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    char digits[24], out[64];
    size_t nd = 0, o = 0;
    const char *s = tmp;
    if (*s == '-') out[o++] = *s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    int e = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (e >= -4 && e < 16) {
        if (e < 0) {
            o += (size_t)snprintf(out + o, sizeof out - o, "0.");
            for (int z = 0; z < -e - 1; z++) out[o++] = '0';
            memcpy(out + o, digits, nd);
            o += nd;
        } else {
            for (int k = 0; k <= e; k++) out[o++] = (size_t)k < nd ? digits[k] : '0';
            out[o++] = '.';
            if ((size_t)e + 1 < nd) {
                memcpy(out + o, digits + e + 1, nd - (size_t)e - 1);
                o += nd - (size_t)e - 1;
            } else {
                out[o++] = '0';
            }
        }
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    return meshlm_jinja_buf_put(b, out, o);
}

/* Code points Python's repr() escapes rather than prints (str.isprintable() is false). */
static bool py_unprintable(uint32_t cp) {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x2064) ||
           cp == 0x3000 || cp == 0xFEFF;
}

static int write_str_repr(jbuf *b, const char *s, size_t n) {
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    int rc = meshlm_jinja_buf_putc(b, q);
    for (size_t i = 0; i < n && !rc;) {
        size_t at = i;
        uint32_t cp = meshlm_jinja_utf8_next(s, n, &i);
        if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            rc = meshlm_jinja_buf_put(b, e, 2);
        } else if (cp == '\n') {
            rc = meshlm_jinja_buf_put(b, "\\n", 2);
        } else if (cp == '\r') {
            rc = meshlm_jinja_buf_put(b, "\\r", 2);
        } else if (cp == '\t') {
            rc = meshlm_jinja_buf_put(b, "\\t", 2);
        } else if (py_unprintable(cp)) {
            rc = cp < 0x100 ? meshlm_jinja_buf_printf(b, "\\x%02x", (unsigned)cp)
                            : meshlm_jinja_buf_printf(b, "\\u%04x", (unsigned)cp);
        } else {
            rc = meshlm_jinja_buf_put(b, s + at, i - at);
        }
    }
    return rc ? rc : meshlm_jinja_buf_putc(b, q);
}

static int write_list_repr(jbuf *b, const jlist *l) {
    int rc = meshlm_jinja_buf_putc(b, l->tuple ? '(' : '[');
    for (size_t i = 0; i < l->n && !rc; i++) {
        if (i) rc = meshlm_jinja_buf_put(b, ", ", 2);
        if (!rc) rc = meshlm_jinja_write_repr(b, l->v[i]);
    }
    if (!rc && l->tuple && l->n == 1) rc = meshlm_jinja_buf_putc(b, ',');
    return rc ? rc : meshlm_jinja_buf_putc(b, l->tuple ? ')' : ']');
}

static int write_dict_repr(jbuf *b, const jdict *d) {
    int rc = meshlm_jinja_buf_putc(b, '{');
    for (size_t i = 0; i < d->n && !rc; i++) {
        if (i) rc = meshlm_jinja_buf_put(b, ", ", 2);
        if (!rc) rc = meshlm_jinja_write_repr(b, d->k[i]);
        if (!rc) rc = meshlm_jinja_buf_put(b, ": ", 2);
        if (!rc) rc = meshlm_jinja_write_repr(b, d->v[i]);
    }
    return rc ? rc : meshlm_jinja_buf_putc(b, '}');
}

int meshlm_jinja_write_repr(jbuf *b, jv v) {
    switch (v.kind) {
    case JV_STR: return write_str_repr(b, v.u.s->p, v.u.s->n);
    case JV_UNDEF: return meshlm_jinja_buf_put(b, "Undefined", 9);
    default: return meshlm_jinja_write_str(b, v);
    }
}

int meshlm_jinja_write_str(jbuf *b, jv v) {
    switch (v.kind) {
    case JV_UNDEF: return 0;
    case JV_NONE: return meshlm_jinja_buf_put(b, "None", 4);
    case JV_BOOL: return v.u.b ? meshlm_jinja_buf_put(b, "True", 4) : meshlm_jinja_buf_put(b, "False", 5);
    case JV_INT: return meshlm_jinja_buf_printf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: return meshlm_jinja_write_float(b, v.u.f);
    case JV_STR: return meshlm_jinja_buf_put(b, v.u.s->p, v.u.s->n);
    case JV_LIST: return write_list_repr(b, v.u.l);
    case JV_DICT: return write_dict_repr(b, v.u.d);
    case JV_NS: {
        int rc = meshlm_jinja_buf_put(b, "<Namespace ", 11);
        if (!rc) rc = write_dict_repr(b, v.u.d);
        return rc ? rc : meshlm_jinja_buf_putc(b, '>');
    }
    case JV_FUNC:
        return v.u.fn->kind == FN_MACRO ? meshlm_jinja_buf_printf(b, "<Macro '%s'>", v.u.fn->node->str)
                                        : meshlm_jinja_buf_put(b, "<built-in function>", 19);
    case JV_LOOP: return meshlm_jinja_buf_put(b, "<LoopContext>", 13);
    }
    return 0;
}

int meshlm_jinja_to_str(jv v, jv *out) {
    if (v.kind == JV_STR) {
        *out = meshlm_jinja_ref(v);
        return 0;
    }
    jbuf b = {0};
    int rc = meshlm_jinja_write_str(&b, v);
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

/* Python methods on template values: str (split, strip, replace, find, ...), dict (items,
 * get, ...), list (index, count) and loop.cycle; in-place mutators are refused as in the
 * immutable sandbox Hugging Face renders with. */
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

static const char *const str_methods[] = {
    "upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
    "replace", "find", "rfind", "index", "rindex", "count", "format", "join", "isdigit", "isalpha", "isalnum",
    "isspace", "islower", "isupper", "isnumeric", "isdecimal", "title", "capitalize", "center", "ljust", "rjust",
    "zfill", "partition", "rpartition", "swapcase", "removeprefix", "removesuffix", "casefold", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const dict_unsafe[] = {"pop", "popitem", "update", "clear", "setdefault", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};
static const char *const list_unsafe[] = {"append", "pop", "extend", "insert", "remove", "clear", "sort", "reverse", NULL};

static const char *in_set(const char *const *set, const char *name) {
    for (; *set; set++)
        if (!strcmp(*set, name)) return *set;
    return NULL;
}

const char *meshlm_jinja_method_name(jv obj, const char *name, const char **unsafe) {
    static const char *const loop_methods[] = {"cycle", NULL};
    *unsafe = NULL;
    switch (obj.kind) {
    case JV_STR: return in_set(str_methods, name);
    case JV_DICT:
        *unsafe = in_set(dict_unsafe, name);
        return in_set(dict_methods, name);
    case JV_LIST:
        *unsafe = in_set(list_unsafe, name);
        return in_set(list_methods, name);
    case JV_LOOP: return in_set(loop_methods, name);
    default: return NULL;
    }
}

static int need_str(const jv *v, const char *what) {
    if (v && v->kind == JV_STR) return 0;
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s must be str, not %s", what, v ? meshlm_jinja_type_name(*v) : "nothing");
}

static bool in_chars(const jv *chars, uint32_t cp) {
    if (!chars || chars->kind != JV_STR) return meshlm_jinja_py_space(cp);
    const jstr *s = chars->u.s;
    for (size_t i = 0; i < s->n;)
        if (meshlm_jinja_utf8_next(s->p, s->n, &i) == cp) return true;
    return false;
}

/* str.strip/lstrip/rstrip: which = 1 left, 2 right, 3 both. */
int meshlm_jinja_strip(jv s, const jv *chars, int which, jv *out) {
    const char *p = s.u.s->p;
    size_t b = 0, e = s.u.s->n;
    if (chars && chars->kind != JV_STR && chars->kind != JV_NONE) return need_str(chars, "strip arg");
    while (which & 1 && b < e) {
        size_t i = b;
        if (!in_chars(chars, meshlm_jinja_utf8_next(p, e, &i))) break;
        b = i;
    }
    while (which & 2 && e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
        size_t i = k;
        if (!in_chars(chars, meshlm_jinja_utf8_next(p, e, &i))) break;
        e = k;
    }
    return meshlm_jinja_str_new(p + b, e - b, out);
}

static int push_str(jv list, const char *s, size_t n) {
    jv v;
    int rc = meshlm_jinja_str_new(s, n, &v);
    return rc ? rc : meshlm_jinja_list_push(list, v);
}

/* Whitespace split (sep None): runs of whitespace separate, ends are ignored. */
static int split_ws(const jstr *s, int64_t maxsplit, jv out) {
    size_t i = 0;
    int rc = 0;
    while (!rc) {
        size_t k;
        while (i < s->n && (k = i, meshlm_jinja_py_space(meshlm_jinja_utf8_next(s->p, s->n, &k)))) i = k;
        if (i >= s->n) break;
        if (maxsplit >= 0 && (int64_t)out.u.l->n >= maxsplit) return push_str(out, s->p + i, s->n - i);
        size_t start = i;
        while (i < s->n && (k = i, !meshlm_jinja_py_space(meshlm_jinja_utf8_next(s->p, s->n, &k)))) i = k;
        rc = push_str(out, s->p + start, i - start);
    }
    return rc;
}

static int split_sep(const jstr *s, const jstr *sep, int64_t maxsplit, jv out) {
    size_t i = 0;
    int rc = 0;
    while (!rc) {
        const char *hit = maxsplit >= 0 && (int64_t)out.u.l->n >= maxsplit ? NULL
                                                                           : memmem(s->p + i, s->n - i, sep->p, sep->n);
        if (!hit) return push_str(out, s->p + i, s->n - i);
        rc = push_str(out, s->p + i, (size_t)(hit - s->p) - i);
        i = (size_t)(hit - s->p) + sep->n;
    }
    return rc;
}

/* The code point ending at byte e: its start in *b. */
static uint32_t prev_cp(const jstr *s, size_t e, size_t *b) {
    size_t k = e - 1;
    while (k > 0 && e - k < 4 && ((unsigned char)s->p[k] & 0xC0) == 0x80) k--;
    size_t i = k;
    uint32_t cp = meshlm_jinja_utf8_next(s->p, e, &i);
    if (i == e) {
        *b = k;
        return cp;
    }
    *b = e - 1;
    return (unsigned char)s->p[e - 1];
}

static void reverse_list(jv out) {
    jlist *l = out.u.l;
    for (size_t a = 0, b = l->n ? l->n - 1 : 0; a < b; a++, b--) {
        jv t = l->v[a];
        l->v[a] = l->v[b];
        l->v[b] = t;
    }
}

/* rsplit on whitespace: the left remainder keeps its leading whitespace. */
static int rsplit_ws(const jstr *s, int64_t maxsplit, jv out) {
    size_t e = s->n, b;
    int rc = 0;
    while (!rc) {
        while (e > 0 && meshlm_jinja_py_space(prev_cp(s, e, &b))) e = b;
        if (e == 0) break;
        if (maxsplit >= 0 && (int64_t)out.u.l->n >= maxsplit) {
            rc = push_str(out, s->p, e);
            break;
        }
        size_t start = e;
        while (start > 0 && !meshlm_jinja_py_space(prev_cp(s, start, &b))) start = b;
        rc = push_str(out, s->p + start, e - start);
        e = start;
    }
    reverse_list(out);
    return rc;
}

/* rsplit with a separator: split from the right, then reverse into place. */
static int rsplit_sep(const jstr *s, const jstr *sep, int64_t maxsplit, jv out) {
    size_t e = s->n;
    int rc = 0;
    while (!rc) {
        const char *hit = NULL;
        if (maxsplit < 0 || (int64_t)out.u.l->n < maxsplit)
            for (size_t k = e >= sep->n ? e - sep->n + 1 : 0; k-- > 0;)
                if (!memcmp(s->p + k, sep->p, sep->n)) {
                    hit = s->p + k;
                    break;
                }
        if (!hit) {
            rc = push_str(out, s->p, e);
            break;
        }
        rc = push_str(out, hit + sep->n, e - (size_t)(hit - s->p) - sep->n);
        e = (size_t)(hit - s->p);
    }
    reverse_list(out);
    return rc;
}

static int method_split(jv self, const jargs *a, bool right, jv *out) {
    const jv *sep = meshlm_jinja_arg(a, 0, "sep"), *max = meshlm_jinja_arg(a, 1, "maxsplit");
    int64_t maxsplit = max && max->kind == JV_INT ? max->u.i : -1;
    if (sep && sep->kind != JV_NONE && sep->kind != JV_STR) return need_str(sep, "separator");
    if (sep && sep->kind == JV_STR && sep->u.s->n == 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "empty separator");
    int rc = meshlm_jinja_list_new(0, out);
    if (rc) return rc;
    if (!sep || sep->kind == JV_NONE)
        rc = right ? rsplit_ws(self.u.s, maxsplit, *out) : split_ws(self.u.s, maxsplit, *out);
    else
        rc = right ? rsplit_sep(self.u.s, sep->u.s, maxsplit, *out) : split_sep(self.u.s, sep->u.s, maxsplit, *out);
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

/* Python's line boundaries for splitlines: \n \r \r\n \v \f \x1c-\x1e \x85 \u2028 \u2029. */
static size_t line_break(const char *p, size_t n, size_t i, size_t *len) {
    size_t k = i;
    uint32_t cp = meshlm_jinja_utf8_next(p, n, &k);
    bool brk = cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
               cp == 0x2028 || cp == 0x2029;
    if (!brk) return 0;
    if (cp == '\r' && k < n && p[k] == '\n') k++;
    *len = k - i;
    return 1;
}

int meshlm_jinja_splitlines(jv self, bool keepends, jv *out) {
    const jstr *s = self.u.s;
    int rc = meshlm_jinja_list_new(0, out);
    size_t start = 0;
    for (size_t i = 0; i < s->n && !rc;) {
        size_t blen;
        if (line_break(s->p, s->n, i, &blen)) {
            rc = push_str(*out, s->p + start, i - start + (keepends ? blen : 0));
            i += blen;
            start = i;
        } else {
            meshlm_jinja_utf8_next(s->p, s->n, &i);
        }
    }
    if (!rc && start < s->n) rc = push_str(*out, s->p + start, s->n - start);
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

/* The other case of cp in the Latin-1, Latin Extended-A, Greek and Cyrillic blocks (the
 * scripts chat templates meet), or cp itself; *cased tells whether cp has case at all. */
static uint32_t swap_case(uint32_t cp, bool to_upper, bool *cased) {
    bool up = (cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3A9) ||
              (cp >= 0x400 && cp <= 0x42F);
    bool low = (cp >= 'a' && cp <= 'z') || (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) || (cp >= 0x3B1 && cp <= 0x3C9) ||
               (cp >= 0x430 && cp <= 0x45F);
    int delta = cp < 0x100 ? 32 : cp < 0x400 ? 32 : cp < 0x410 ? 80 : cp < 0x450 ? 32 : 80;
    if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 && cp != 0x17F) {
        bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
        up = (cp & 1) == odd_upper;
        low = !up;
        delta = 1;
    }
    *cased = up || low || cp == 0xDF || cp == 0x3C2 || cp == 0xFF || cp == 0x178;
    if (to_upper && cp == 0x3C2) return 0x3A3;
    if (to_upper && cp == 0xFF) return 0x178;
    if (!to_upper && cp == 0x178) return 0xFF;
    if (to_upper && low) return cp - (uint32_t)delta;
    if (!to_upper && up) return cp + (uint32_t)delta;
    return cp;
}

/* Case mappings: 'u'pper, 'l'ower, 't'itle, 'c'apitalize, 's'wapcase. */
int meshlm_jinja_case(jv self, char mode, jv *out) {
    const jstr *s = self.u.s;
    jbuf b = {0};
    int rc = meshlm_jinja_buf_put(&b, "", 0);
    bool prev_cased = false;
    for (size_t i = 0; i < s->n && !rc;) {
        size_t at = i;
        uint32_t cp = meshlm_jinja_utf8_next(s->p, s->n, &i);
        bool cased, is_up;
        uint32_t lowered = swap_case(cp, false, &cased);
        is_up = lowered != cp;
        bool want_up = mode == 'u' || (mode == 't' && !prev_cased) || (mode == 'c' && at == 0) || (mode == 's' && !is_up);
        uint32_t mapped = want_up ? swap_case(cp, true, &cased) : lowered;
        if (cp == 0xDF && want_up && mode != 't' && mode != 'c') rc = meshlm_jinja_buf_put(&b, "SS", 2);
        else if (mapped == cp) rc = meshlm_jinja_buf_put(&b, s->p + at, i - at);
        else rc = meshlm_jinja_utf8_put(&b, mapped);
        prev_cased = cased;
    }
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

static bool affix_match(const jstr *s, const jstr *x, bool end) {
    if (x->n > s->n) return false;
    return !memcmp(end ? s->p + s->n - x->n : s->p, x->p, x->n);
}

static int method_affix(jv self, const jargs *a, bool end, jv *out) {
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    if (x && x->kind == JV_LIST) {
        bool any = false;
        for (size_t i = 0; i < x->u.l->n; i++) {
            if (x->u.l->v[i].kind != JV_STR) return need_str(&x->u.l->v[i], "tuple item");
            any = any || affix_match(self.u.s, x->u.l->v[i].u.s, end);
        }
        *out = jv_bool(any);
        return 0;
    }
    int rc = need_str(x, end ? "endswith arg" : "startswith arg");
    if (!rc) *out = jv_bool(affix_match(self.u.s, x->u.s, end));
    return rc;
}

int meshlm_jinja_replace(const jctx *c, jv self, const jv *old, const jv *new, const jv *count, jv *out) {
    int rc = need_str(old, "replace arg 1");
    if (!rc) rc = need_str(new, "replace arg 2");
    if (rc) return rc;
    int64_t left = count && count->kind == JV_INT ? count->u.i : -1;
    const jstr *s = self.u.s, *o = old->u.s, *w = new->u.s;
    jbuf b = {0};
    rc = meshlm_jinja_buf_put(&b, "", 0);
    size_t i = 0;
    while (!rc && i <= s->n) {
        const char *hit = left == 0 ? NULL : o->n ? memmem(s->p + i, s->n - i, o->p, o->n) : s->p + i;
        if (!hit) break;
        size_t at = (size_t)(hit - s->p);
        rc = meshlm_jinja_buf_put(&b, s->p + i, at - i);
        if (!rc) rc = meshlm_jinja_buf_put(&b, w->p, w->n);
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
        if (left > 0) left--;
        i = at + o->n;
        if (!o->n) {
            if (i >= s->n) {
                i = s->n + 1;
                break;
            }
            size_t k = i;
            meshlm_jinja_utf8_next(s->p, s->n, &k);
            if (!rc) rc = meshlm_jinja_buf_put(&b, s->p + i, k - i);
            i = k;
        }
    }
    if (!rc && i < s->n) rc = meshlm_jinja_buf_put(&b, s->p + i, s->n - i);
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

/* find/rfind/index/rindex/count: positions in code points, as Python reports them. */
static int method_find(jv self, const jargs *a, const char *name, jv *out) {
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    int rc = need_str(x, "substring");
    if (rc) return rc;
    const jstr *s = self.u.s, *sub = x->u.s;
    bool right = name[0] == 'r';
    if (!strcmp(name, "count")) {
        int64_t n = 0;
        if (!sub->n) n = (int64_t)meshlm_jinja_utf8_len(s->p, s->n) + 1;
        for (const char *p = s->p; sub->n && (p = memmem(p, s->n - (size_t)(p - s->p), sub->p, sub->n)); p += sub->n) n++;
        *out = jv_int(n);
        return 0;
    }
    long at = -1;
    for (size_t k = 0; k + sub->n <= s->n; k++)
        if (!memcmp(s->p + k, sub->p, sub->n)) {
            at = (long)k;
            if (!right) break;
        }
    if (at < 0 && strstr(name, "index")) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "substring not found");
    *out = jv_int(at < 0 ? -1 : (int64_t)meshlm_jinja_utf8_len(s->p, (size_t)at));
    return 0;
}

static int method_join(const jctx *c, jv self, const jargs *a, jv *out) {
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    if (!x) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "join() takes one argument");
    jv items;
    int rc = meshlm_jinja_iterate(*x, &items);
    if (rc) return rc;
    jbuf b = {0};
    rc = meshlm_jinja_buf_put(&b, "", 0);
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        if (i) rc = meshlm_jinja_buf_put(&b, self.u.s->p, self.u.s->n);
        if (!rc) rc = meshlm_jinja_write_str(&b, items.u.l->v[i]);
        if (!rc) rc = meshlm_jinja_check_len(c, b.n);
    }
    meshlm_jinja_unref(items);
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

static bool ascii_class(char cls, unsigned char ch) {
    switch (cls) {
    case 'd': return ch >= '0' && ch <= '9';
    case 'a': return (ch | 32) >= 'a' && (ch | 32) <= 'z';
    case 'n': return ascii_class('d', ch) || ascii_class('a', ch);
    case 's': return meshlm_jinja_py_space(ch);
    default: return false;
    }
}

/* isdigit/isalpha/isalnum/isspace (non-empty, every character) and islower/isupper. */
static int method_is(jv self, const char *name, jv *out) {
    const jstr *s = self.u.s;
    const char *cls = name + 2;
    if (!strcmp(cls, "lower") || !strcmp(cls, "upper")) {
        bool up = cls[0] == 'u', cased = false, ok = true;
        for (size_t i = 0; i < s->n; i++) {
            char ch = s->p[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
                cased = true;
                ok = ok && ((ch >= 'A' && ch <= 'Z') == up);
            }
        }
        *out = jv_bool(cased && ok);
        return 0;
    }
    char k = !strcmp(cls, "alpha") ? 'a' : !strcmp(cls, "alnum") ? 'n' : !strcmp(cls, "space") ? 's' : 'd';
    bool ok = s->n > 0;
    for (size_t i = 0; i < s->n && ok; i++) ok = ascii_class(k, (unsigned char)s->p[i]);
    *out = jv_bool(ok);
    return 0;
}

/* center/ljust/rjust/zfill: pad to width code points. */
int meshlm_jinja_pad(const jctx *c, jv self, const jv *width, const jv *fill, char how, jv *out) {
    if (!width || width->kind != JV_INT) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "width must be an integer");
    const char *f = fill && fill->kind == JV_STR && fill->u.s->n ? fill->u.s->p : how == 'z' ? "0" : " ";
    size_t fn = fill && fill->kind == JV_STR && fill->u.s->n ? fill->u.s->n : 1;
    size_t len = meshlm_jinja_utf8_len(self.u.s->p, self.u.s->n);
    if (width->u.i <= (int64_t)len) return meshlm_jinja_str_new(self.u.s->p, self.u.s->n, out);
    size_t total = (size_t)width->u.i - len;
    int rc = meshlm_jinja_check_len(c, total * fn + self.u.s->n);
    if (rc) return rc;
    size_t left = how == 'c' ? total / 2 + (total & (size_t)width->u.i & 1) : how == 'l' ? 0 : total;
    jbuf b = {0};
    for (size_t i = 0; i < left && !rc; i++) rc = meshlm_jinja_buf_put(&b, f, fn);
    if (!rc) rc = meshlm_jinja_buf_put(&b, self.u.s->p, self.u.s->n);
    for (size_t i = left; i < total && !rc; i++) rc = meshlm_jinja_buf_put(&b, f, fn);
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

static int method_partition(jv self, const jargs *a, bool right, jv *out) {
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    int rc = need_str(x, "separator");
    if (rc) return rc;
    const jstr *s = self.u.s, *sep = x->u.s;
    long at = -1;
    for (size_t k = 0; sep->n && k + sep->n <= s->n; k++)
        if (!memcmp(s->p + k, sep->p, sep->n)) {
            at = (long)k;
            if (!right) break;
        }
    if ((rc = meshlm_jinja_list_new(3, out))) return rc;
    out->u.l->tuple = true;
    if (at < 0) {
        rc = push_str(*out, right ? "" : s->p, right ? 0 : s->n);
        if (!rc) rc = push_str(*out, "", 0);
        if (!rc) rc = push_str(*out, right ? s->p : "", right ? s->n : 0);
    } else {
        rc = push_str(*out, s->p, (size_t)at);
        if (!rc) rc = push_str(*out, sep->p, sep->n);
        if (!rc) rc = push_str(*out, s->p + at + sep->n, s->n - (size_t)at - sep->n);
    }
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int method_trim_affix(jv self, const jargs *a, bool end, jv *out) {
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    int rc = need_str(x, "affix");
    if (rc) return rc;
    size_t cut = affix_match(self.u.s, x->u.s, end) ? x->u.s->n : 0;
    return meshlm_jinja_str_new(self.u.s->p + (end ? 0 : cut), self.u.s->n - cut, out);
}

static int str_method(jctx *c, jv self, const char *name, const jargs *a, jv *out) {
    if (!strcmp(name, "upper")) return meshlm_jinja_case(self, 'u', out);
    if (!strcmp(name, "lower") || !strcmp(name, "casefold")) return meshlm_jinja_case(self, 'l', out);
    if (!strcmp(name, "title")) return meshlm_jinja_case(self, 't', out);
    if (!strcmp(name, "capitalize")) return meshlm_jinja_case(self, 'c', out);
    if (!strcmp(name, "swapcase")) return meshlm_jinja_case(self, 's', out);
    if (!strcmp(name, "strip")) return meshlm_jinja_strip(self, meshlm_jinja_arg(a, 0, "chars"), 3, out);
    if (!strcmp(name, "lstrip")) return meshlm_jinja_strip(self, meshlm_jinja_arg(a, 0, "chars"), 1, out);
    if (!strcmp(name, "rstrip")) return meshlm_jinja_strip(self, meshlm_jinja_arg(a, 0, "chars"), 2, out);
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) return method_split(self, a, name[0] == 'r', out);
    if (!strcmp(name, "splitlines")) {
        const jv *k = meshlm_jinja_arg(a, 0, "keepends");
        return meshlm_jinja_splitlines(self, k && meshlm_jinja_truthy(*k), out);
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) return method_affix(self, a, name[0] == 'e', out);
    if (!strcmp(name, "replace"))
        return meshlm_jinja_replace(c, self, meshlm_jinja_arg(a, 0, NULL), meshlm_jinja_arg(a, 1, NULL),
                                    meshlm_jinja_arg(a, 2, "count"), out);
    if (strstr(name, "find") || strstr(name, "index") || !strcmp(name, "count")) return method_find(self, a, name, out);
    if (!strcmp(name, "format")) return meshlm_jinja_str_format(c, self, a, out);
    if (!strcmp(name, "join")) return method_join(c, self, a, out);
    if (!strncmp(name, "is", 2)) return method_is(self, name, out);
    if (!strcmp(name, "center") || !strcmp(name, "ljust") || !strcmp(name, "rjust") || !strcmp(name, "zfill"))
        return meshlm_jinja_pad(c, self, meshlm_jinja_arg(a, 0, "width"), meshlm_jinja_arg(a, 1, "fillchar"),
                                name[0] == 'c' ? 'c' : name[0] == 'l' ? 'l' : name[0] == 'z' ? 'z' : 'r', out);
    if (strstr(name, "partition")) return method_partition(self, a, name[0] == 'r', out);
    return method_trim_affix(self, a, !strcmp(name, "removesuffix"), out);
}

/* dict.items() and the items filter: (key, value) tuples in insertion order. */
int meshlm_jinja_dict_items(jv d, jv *out) {
    int rc = meshlm_jinja_list_new(d.u.d->n, out);
    for (size_t i = 0; i < d.u.d->n && !rc; i++) {
        jv pair;
        rc = meshlm_jinja_list_new(2, &pair);
        if (rc) break;
        pair.u.l->tuple = true;
        rc = meshlm_jinja_list_push(pair, meshlm_jinja_ref(d.u.d->k[i]));
        if (!rc) rc = meshlm_jinja_list_push(pair, meshlm_jinja_ref(d.u.d->v[i]));
        if (rc) meshlm_jinja_unref(pair);
        else rc = meshlm_jinja_list_push(*out, pair);
    }
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

static int dict_method(jv self, const char *name, const jargs *a, jv *out) {
    if (!strcmp(name, "items")) return meshlm_jinja_dict_items(self, out);
    if (!strcmp(name, "get")) {
        const jv *k = meshlm_jinja_arg(a, 0, "key"), *d = meshlm_jinja_arg(a, 1, "default");
        if (!k) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "get expected at least 1 argument");
        const jv *v = meshlm_jinja_dict_get(self, *k);
        *out = meshlm_jinja_ref(v ? *v : d ? *d : jv_none());
        return 0;
    }
    if (!strcmp(name, "copy")) {
        int rc = meshlm_jinja_dict_new(JV_DICT, out);
        for (size_t i = 0; i < self.u.d->n && !rc; i++)
            rc = meshlm_jinja_dict_set(*out, meshlm_jinja_ref(self.u.d->k[i]), meshlm_jinja_ref(self.u.d->v[i]));
        if (rc && out->kind == JV_DICT) meshlm_jinja_unref(*out);
        return rc;
    }
    bool keys = !strcmp(name, "keys");
    int rc = meshlm_jinja_list_new(self.u.d->n, out);
    for (size_t i = 0; i < self.u.d->n && !rc; i++)
        rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(keys ? self.u.d->k[i] : self.u.d->v[i]));
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

static int list_method(jv self, const char *name, const jargs *a, jv *out) {
    if (!strcmp(name, "copy")) return meshlm_jinja_slice(self, NULL, NULL, NULL, out);
    const jv *x = meshlm_jinja_arg(a, 0, NULL);
    if (!x) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s() takes exactly one argument", name);
    int64_t n = 0, at = -1;
    for (size_t i = 0; i < self.u.l->n; i++)
        if (meshlm_jinja_equal(self.u.l->v[i], *x)) {
            n++;
            if (at < 0) at = (int64_t)i;
        }
    if (!strcmp(name, "count")) {
        *out = jv_int(n);
        return 0;
    }
    if (at < 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "value is not in list");
    *out = jv_int(at);
    return 0;
}

int meshlm_jinja_method(jctx *c, jv self, const char *name, const jargs *a, jv *out) {
    int rc = meshlm_jinja_charge_steps(c, self, a->npos ? a->pos[0] : jv_none());
    if (rc) return rc;
    switch (self.kind) {
    case JV_STR: return str_method(c, self, name, a, out);
    case JV_DICT: return dict_method(self, name, a, out);
    case JV_LIST: return list_method(self, name, a, out);
    case JV_LOOP:
        if (!a->npos) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "no items for cycling given");
        *out = meshlm_jinja_ref(a->pos[self.u.loop->i % a->npos]);
        return 0;
    default: return meshlm_fail(MESHLM_ERR_INTERNAL, "no such method");
    }
}

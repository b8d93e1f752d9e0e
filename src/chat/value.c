/* Template values: reference counting, containers, Python truthiness, equality and ordering. */
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

static int nomem(void) { return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory"); }

jv meshlm_jinja_ref(jv v) {
    switch (v.kind) {
    case JV_STR: v.u.s->rc++; break;
    case JV_LIST: v.u.l->rc++; break;
    case JV_DICT:
    case JV_NS: v.u.d->rc++; break;
    case JV_FUNC: v.u.fn->rc++; break;
    case JV_LOOP: v.u.loop->rc++; break;
    default: break;
    }
    return v;
}

static void free_list(jlist *l) {
    for (size_t i = 0; i < l->n; i++) meshlm_jinja_unref(l->v[i]);
    free(l->v);
    free(l);
}

static void free_dict(jdict *d) {
    for (size_t i = 0; i < d->n; i++) {
        meshlm_jinja_unref(d->k[i]);
        meshlm_jinja_unref(d->v[i]);
    }
    free(d->k);
    free(d->v);
    free(d);
}

void meshlm_jinja_unref(jv v) {
    switch (v.kind) {
    case JV_STR:
        if (--v.u.s->rc == 0) free(v.u.s);
        break;
    case JV_LIST:
        if (--v.u.l->rc == 0) free_list(v.u.l);
        break;
    case JV_DICT:
    case JV_NS:
        if (--v.u.d->rc == 0) free_dict(v.u.d);
        break;
    case JV_FUNC:
        if (--v.u.fn->rc == 0) {
            meshlm_jinja_unref(v.u.fn->self);
            free(v.u.fn);
        }
        break;
    case JV_LOOP:
        if (--v.u.loop->rc == 0) {
            jv items = {.kind = JV_LIST};
            items.u.l = v.u.loop->items;
            meshlm_jinja_unref(items);
            free(v.u.loop);
        }
        break;
    default: break;
    }
}

int meshlm_jinja_str_new(const char *s, size_t n, jv *out) {
    jstr *p = malloc(sizeof *p + n + 1);
    if (!p) return nomem();
    p->rc = 1;
    p->n = n;
    if (n) memcpy(p->p, s, n);
    p->p[n] = '\0';
    out->kind = JV_STR;
    out->unsafe = 0;
    out->u.s = p;
    return 0;
}

int meshlm_jinja_list_new(size_t cap, jv *out) {
    jlist *l = calloc(1, sizeof *l);
    if (!l) return nomem();
    if (cap && !(l->v = malloc(cap * sizeof *l->v))) {
        free(l);
        return nomem();
    }
    l->rc = 1;
    l->cap = cap;
    *out = (jv){.kind = JV_LIST};
    out->u.l = l;
    return 0;
}

static int depth_of(jv v) {
    if (v.kind == JV_LIST) return v.u.l->depth;
    if (v.kind == JV_DICT || v.kind == JV_NS) return v.u.d->depth;
    return 0;
}

/* Containers nested too deep would overflow the stack when printed or freed. */
static int check_depth(int *depth, jv item) {
    int d = depth_of(item) + 1;
    if (d > JINJA_VALUE_DEPTH) {
        meshlm_jinja_unref(item);
        return meshlm_fail(MESHLM_ERR_RANGE, "lists and dicts nested deeper than %d", JINJA_VALUE_DEPTH);
    }
    if (d > *depth) *depth = d;
    return 0;
}

int meshlm_jinja_list_push(jv list, jv item) {
    jlist *l = list.u.l;
    if (check_depth(&l->depth, item)) return MESHLM_ERR_RANGE;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jv *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            meshlm_jinja_unref(item);
            return nomem();
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = item;
    return 0;
}

int meshlm_jinja_dict_new(jv_kind kind, jv *out) {
    jdict *d = calloc(1, sizeof *d);
    if (!d) return nomem();
    d->rc = 1;
    *out = (jv){.kind = kind};
    out->u.d = d;
    return 0;
}

static long dict_find(const jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (meshlm_jinja_equal(d->k[i], key)) return (long)i;
    return -1;
}

int meshlm_jinja_dict_set(jv dict, jv key, jv val) {
    jdict *d = dict.u.d;
    long at = dict_find(d, key);
    if (at >= 0) {
        meshlm_jinja_unref(key);
        if (check_depth(&d->depth, val)) return MESHLM_ERR_RANGE;
        meshlm_jinja_unref(d->v[at]);
        d->v[at] = val;
        return 0;
    }
    if (check_depth(&d->depth, val)) {
        meshlm_jinja_unref(key);
        return MESHLM_ERR_RANGE;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *k = realloc(d->k, cap * sizeof *k);
        if (k) d->k = k;
        jv *v = k ? realloc(d->v, cap * sizeof *v) : NULL;
        if (!v) {
            meshlm_jinja_unref(key);
            meshlm_jinja_unref(val);
            return nomem();
        }
        d->v = v;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
    return 0;
}

const jv *meshlm_jinja_dict_get(jv dict, jv key) {
    long at = dict_find(dict.u.d, key);
    return at >= 0 ? &dict.u.d->v[at] : NULL;
}

const jv *meshlm_jinja_dict_gets(jv dict, const char *key, size_t n) {
    const jdict *d = dict.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].kind == JV_STR && d->k[i].u.s->n == n && !memcmp(d->k[i].u.s->p, key, n)) return &d->v[i];
    return NULL;
}

int meshlm_jinja_func_new(jfunc_kind kind, jv *out) {
    jfunc *f = calloc(1, sizeof *f);
    if (!f) return nomem();
    f->rc = 1;
    f->kind = kind;
    f->self = jv_undef(NULL);
    *out = (jv){.kind = JV_FUNC};
    out->u.fn = f;
    return 0;
}

bool meshlm_jinja_truthy(jv v) {
    switch (v.kind) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->n > 0;
    case JV_LIST: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    default: return true;
    }
}

bool meshlm_jinja_is_number(jv v) { return v.kind == JV_INT || v.kind == JV_FLOAT || v.kind == JV_BOOL; }

double meshlm_jinja_num(jv v) {
    return v.kind == JV_FLOAT ? v.u.f : v.kind == JV_INT ? (double)v.u.i : v.kind == JV_BOOL ? v.u.b : 0.0;
}

static bool dict_equal(const jdict *a, const jdict *b) {
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        long j = dict_find(b, a->k[i]);
        if (j < 0 || !meshlm_jinja_equal(a->v[i], b->v[j])) return false;
    }
    return true;
}

bool meshlm_jinja_equal(jv a, jv b) {
    if (meshlm_jinja_is_number(a) && meshlm_jinja_is_number(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
            return (a.kind == JV_INT ? a.u.i : a.u.b) == (b.kind == JV_INT ? b.u.i : b.u.b);
        return meshlm_jinja_num(a) == meshlm_jinja_num(b);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a.u.s->n == b.u.s->n && !memcmp(a.u.s->p, b.u.s->p, a.u.s->n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!meshlm_jinja_equal(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT: return dict_equal(a.u.d, b.u.d);
    case JV_NS: return a.u.d == b.u.d;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

int meshlm_jinja_compare(jv a, jv b, int *r) {
    if (meshlm_jinja_is_number(a) && meshlm_jinja_is_number(b)) {
        if (a.kind == JV_INT && b.kind == JV_INT) {
            *r = (a.u.i > b.u.i) - (a.u.i < b.u.i);
        } else {
            double x = meshlm_jinja_num(a), y = meshlm_jinja_num(b);
            *r = (x > y) - (x < y);
        }
        return 0;
    }
    if (a.kind == JV_STR && b.kind == JV_STR) {
        size_t n = a.u.s->n < b.u.s->n ? a.u.s->n : b.u.s->n;
        int c = memcmp(a.u.s->p, b.u.s->p, n);
        *r = c ? (c > 0 ? 1 : -1) : (a.u.s->n > b.u.s->n) - (a.u.s->n < b.u.s->n);
        return 0;
    }
    if (a.kind == JV_LIST && b.kind == JV_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (meshlm_jinja_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return meshlm_jinja_compare(a.u.l->v[i], b.u.l->v[i], r);
        }
        *r = (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
        return 0;
    }
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "cannot compare '%s' with '%s'", meshlm_jinja_type_name(a),
                       meshlm_jinja_type_name(b));
}

const char *meshlm_jinja_type_name(jv v) {
    switch (v.kind) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_FUNC: return "function";
    case JV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ---- byte buffer ---- */

int meshlm_jinja_buf_put(jbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return nomem();
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int meshlm_jinja_buf_putc(jbuf *b, char c) { return meshlm_jinja_buf_put(b, &c, 1); }

int meshlm_jinja_buf_take(jbuf *b, jv *out) {
    int rc = meshlm_jinja_str_new(b->p ? b->p : "", b->n, out);
    free(b->p);
    *b = (jbuf){0};
    return rc;
}

/* ---- UTF-8 ---- */

uint32_t meshlm_jinja_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[*i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k <= 1 || *i + k > n) {
        (*i)++;
        return c;
    }
    uint32_t cp = c & (0x7Fu >> k);
    for (size_t j = 1; j < k; j++) {
        if ((u[*i + j] & 0xC0) != 0x80) {
            (*i)++;
            return c;
        }
        cp = (cp << 6) | (u[*i + j] & 0x3F);
    }
    *i += k;
    return cp;
}

size_t meshlm_jinja_utf8_len(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        meshlm_jinja_utf8_next(s, n, &i);
        count++;
    }
    return count;
}

int meshlm_jinja_utf8_put(jbuf *b, uint32_t cp) {
    char t[4];
    size_t k;
    if (cp < 0x80) {
        t[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    return meshlm_jinja_buf_put(b, t, k);
}

bool meshlm_jinja_py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Expression evaluator: names, literals, attribute and item access with Jinja2's undefined
 * rules, boolean operators returning operands, comparisons, calls, filters and tests. */
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

int meshlm_jinja_undefined_error(jv v) {
    if (v.unsafe)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "SecurityError: access to attribute '%s' of '%s' object is unsafe",
                           v.u.name, v.unsafe == JV_LIST ? "list" : "dict");
    if (v.u.name) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "'%s' is undefined", v.u.name);
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "value is undefined");
}

static int loop_attr(jv obj, const char *name, jv *out) {
    const jloop *lp = obj.u.loop;
    int64_t i = (int64_t)lp->i, n = (int64_t)lp->items->n;
    static const char *const names[] = {"index", "index0", "revindex", "revindex0", "first", "last",
                                        "length", "depth", "depth0", NULL};
    int k = 0;
    while (names[k] && strcmp(names[k], name)) k++;
    switch (k) {
    case 0: *out = jv_int(i + 1); return 0;
    case 1: *out = jv_int(i); return 0;
    case 2: *out = jv_int(n - i); return 0;
    case 3: *out = jv_int(n - i - 1); return 0;
    case 4: *out = jv_bool(i == 0); return 0;
    case 5: *out = jv_bool(i == n - 1); return 0;
    case 6: *out = jv_int(n); return 0;
    case 7: *out = jv_int(1); return 0;
    case 8: *out = jv_int(0); return 0;
    default: break;
    }
    if (!strcmp(name, "previtem"))
        *out = i > 0 ? meshlm_jinja_ref(lp->items->v[i - 1]) : jv_undef("previtem");
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < n ? meshlm_jinja_ref(lp->items->v[i + 1]) : jv_undef("nextitem");
    else
        *out = jv_undef(name);
    return 0;
}

static int bind_method(jv obj, const char *name, jv *out) {
    int rc = meshlm_jinja_func_new(FN_METHOD, out);
    if (rc) return rc;
    out->u.fn->self = meshlm_jinja_ref(obj);
    out->u.fn->name = name;
    return 0;
}

int meshlm_jinja_getattr(jctx *c, jv obj, const char *name, size_t n, jv *out) {
    (void)c;
    const char *unsafe, *method;
    if (obj.kind == JV_UNDEF) return meshlm_jinja_undefined_error(obj);
    if (obj.kind == JV_LOOP && strcmp(name, "cycle")) return loop_attr(obj, name, out);
    if ((method = meshlm_jinja_method_name(obj, name, &unsafe))) return bind_method(obj, method, out);
    if (unsafe) {
        *out = jv_undef(unsafe);
        out->unsafe = (uint8_t)obj.kind;
        return 0;
    }
    if (obj.kind == JV_DICT || obj.kind == JV_NS) {
        const jv *v = meshlm_jinja_dict_gets(obj, name, n);
        *out = v ? meshlm_jinja_ref(*v) : jv_undef(name);
        return 0;
    }
    *out = jv_undef(name);
    return 0;
}

/* The byte offset of code point index k of a string (k within its length). */
static size_t cp_offset(const jstr *s, size_t k) {
    size_t i = 0;
    while (k-- && i < s->n) meshlm_jinja_utf8_next(s->p, s->n, &i);
    return i;
}

static int string_index(jv obj, int64_t k, jv *out) {
    const jstr *s = obj.u.s;
    size_t len = meshlm_jinja_utf8_len(s->p, s->n);
    if (k < 0) k += (int64_t)len;
    if (k < 0 || (size_t)k >= len) {
        *out = jv_undef(NULL);
        return 0;
    }
    size_t at = cp_offset(s, (size_t)k), end = at;
    meshlm_jinja_utf8_next(s->p, s->n, &end);
    return meshlm_jinja_str_new(s->p + at, end - at, out);
}

int meshlm_jinja_getitem(jctx *c, jv obj, jv key, jv *out) {
    if (obj.kind == JV_UNDEF) return meshlm_jinja_undefined_error(obj);
    if (obj.kind == JV_DICT || obj.kind == JV_NS) {
        const jv *v = meshlm_jinja_dict_get(obj, key);
        *out = v ? meshlm_jinja_ref(*v) : jv_undef(NULL);
        return 0;
    }
    if ((obj.kind == JV_LIST || obj.kind == JV_STR) && (key.kind == JV_INT || key.kind == JV_BOOL)) {
        int64_t k = key.kind == JV_INT ? key.u.i : key.u.b;
        if (obj.kind == JV_STR) return string_index(obj, k, out);
        int64_t n = (int64_t)obj.u.l->n;
        if (k < 0) k += n;
        *out = k >= 0 && k < n ? meshlm_jinja_ref(obj.u.l->v[k]) : jv_undef(NULL);
        return 0;
    }
    if (key.kind == JV_STR) {
        int rc = meshlm_jinja_getattr(c, obj, key.u.s->p, key.u.s->n, out);
        /* A missing key's name would point into the key, which dies before the value does. */
        if (!rc && out->kind == JV_UNDEF && !out->unsafe) out->u.name = NULL;
        return rc;
    }
    *out = jv_undef(NULL);
    return 0;
}

int meshlm_jinja_contains(jv hay, jv needle, bool *out) {
    *out = false;
    switch (hay.kind) {
    case JV_STR:
        if (needle.kind != JV_STR)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "'in <string>' requires string as left operand, not %s",
                               meshlm_jinja_type_name(needle));
        *out = needle.u.s->n == 0 || memmem(hay.u.s->p, hay.u.s->n, needle.u.s->p, needle.u.s->n) != NULL;
        return 0;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n && !*out; i++) *out = meshlm_jinja_equal(hay.u.l->v[i], needle);
        return 0;
    case JV_DICT:
    case JV_NS: *out = meshlm_jinja_dict_get(hay, needle) != NULL; return 0;
    case JV_UNDEF: return 0;
    default:
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "argument of type '%s' is not iterable", meshlm_jinja_type_name(hay));
    }
}

int meshlm_jinja_iterate(jv v, jv *out) {
    int rc;
    switch (v.kind) {
    case JV_LIST: *out = meshlm_jinja_ref(v); return 0;
    case JV_UNDEF: return meshlm_jinja_list_new(0, out);
    case JV_DICT:
    case JV_NS:
        rc = meshlm_jinja_list_new(v.u.d->n, out);
        for (size_t i = 0; i < v.u.d->n && !rc; i++) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(v.u.d->k[i]));
        break;
    case JV_STR:
        rc = meshlm_jinja_list_new(v.u.s->n, out);
        for (size_t i = 0; i < v.u.s->n && !rc;) {
            size_t at = i;
            meshlm_jinja_utf8_next(v.u.s->p, v.u.s->n, &i);
            jv ch;
            rc = meshlm_jinja_str_new(v.u.s->p + at, i - at, &ch);
            if (!rc) rc = meshlm_jinja_list_push(*out, ch);
        }
        break;
    default:
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "'%s' object is not iterable", meshlm_jinja_type_name(v));
    }
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

const jv *meshlm_jinja_arg(const jargs *a, size_t i, const char *name) {
    if (i < a->npos) return &a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwn[k], name)) return &a->kwv[k];
    return NULL;
}

static void free_args(jargs *a) {
    for (size_t i = 0; i < a->npos; i++) meshlm_jinja_unref(a->pos[i]);
    for (size_t i = 0; i < a->nkw; i++) meshlm_jinja_unref(a->kwv[i]);
    free(a->pos);
    free(a->kwv);
}

/* Evaluates a node's arguments (kids positional, alt/names keywords); first, if given,
 * becomes positional argument 0. */
static int eval_args(jctx *c, const jnode *n, const jv *first, jargs *a) {
    size_t extra = first ? 1 : 0;
    *a = (jargs){.kwn = n->names};
    a->pos = malloc((n->nkids + extra + 1) * sizeof *a->pos);
    a->kwv = malloc((n->nalt + 1) * sizeof *a->kwv);
    if (!a->pos || !a->kwv) {
        free_args(a);
        return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
    }
    if (first) a->pos[a->npos++] = meshlm_jinja_ref(*first);
    for (size_t i = 0; i < n->nkids; i++) {
        int rc = meshlm_jinja_eval(c, n->kids[i], &a->pos[a->npos]);
        if (rc) return free_args(a), rc;
        a->npos++;
    }
    for (size_t i = 0; i < n->nalt; i++) {
        int rc = meshlm_jinja_eval(c, n->alt[i], &a->kwv[a->nkw]);
        if (rc) return free_args(a), rc;
        a->nkw++;
    }
    return 0;
}

int meshlm_jinja_call(jctx *c, jv fn, const jargs *a, jv *out) {
    if (fn.kind == JV_UNDEF) return meshlm_jinja_undefined_error(fn);
    if (fn.kind != JV_FUNC) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "'%s' object is not callable", meshlm_jinja_type_name(fn));
    const jfunc *f = fn.u.fn;
    switch (f->kind) {
    case FN_BUILTIN: return meshlm_jinja_call_global(c, f->id, a, out);
    case FN_METHOD: return meshlm_jinja_method(c, f->self, f->name, a, out);
    case FN_MACRO: return meshlm_jinja_call_macro(c, f->node, a, jv_undef(NULL), out);
    }
    return meshlm_fail(MESHLM_ERR_INTERNAL, "bad function");
}

int meshlm_jinja_eval_call(jctx *c, const jnode *call, jv caller, jv *out) {
    jv fn;
    jargs a;
    int rc = meshlm_jinja_eval(c, call->a, &fn);
    if (rc) return rc;
    if ((rc = eval_args(c, call, NULL, &a))) {
        meshlm_jinja_unref(fn);
        return rc;
    }
    if (caller.kind != JV_UNDEF && fn.kind == JV_FUNC && fn.u.fn->kind == FN_MACRO)
        rc = meshlm_jinja_call_macro(c, fn.u.fn->node, &a, caller, out);
    else
        rc = meshlm_jinja_call(c, fn, &a, out);
    free_args(&a);
    meshlm_jinja_unref(fn);
    return rc;
}

static int eval_filter_or_test(jctx *c, const jnode *n, jv *out) {
    jv in;
    jargs a;
    int rc = n->a->kind == N_HOLE ? (in = meshlm_jinja_ref(c->hole), 0) : meshlm_jinja_eval(c, n->a, &in);
    if (rc) return rc;
    if ((rc = eval_args(c, n, NULL, &a))) {
        meshlm_jinja_unref(in);
        return rc;
    }
    if (n->kind == N_FILTER) {
        rc = meshlm_jinja_filter(c, n->str, in, &a, out);
    } else {
        bool r = false;
        rc = meshlm_jinja_test(c, n->str, in, &a, &r);
        *out = jv_bool(r != (n->op == 1));
    }
    free_args(&a);
    meshlm_jinja_unref(in);
    return rc;
}

static int eval_seq(jctx *c, const jnode *n, jv *out) {
    int rc = meshlm_jinja_list_new(n->nkids, out);
    if (rc) return rc;
    out->u.l->tuple = n->kind == N_TUPLE;
    for (size_t i = 0; i < n->nkids && !rc; i++) {
        jv v;
        rc = meshlm_jinja_eval(c, n->kids[i], &v);
        if (!rc) rc = meshlm_jinja_list_push(*out, v);
    }
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}

static int eval_dict(jctx *c, const jnode *n, jv *out) {
    int rc = meshlm_jinja_dict_new(JV_DICT, out);
    for (size_t i = 0; i < n->nkids && !rc; i++) {
        jv k, v;
        rc = meshlm_jinja_eval(c, n->kids[i], &k);
        if (rc) break;
        if ((rc = meshlm_jinja_eval(c, n->alt[i], &v))) {
            meshlm_jinja_unref(k);
            break;
        }
        rc = meshlm_jinja_dict_set(*out, k, v);
    }
    if (rc && out->kind == JV_DICT) meshlm_jinja_unref(*out);
    return rc;
}

static int eval_access(jctx *c, const jnode *n, jv *out) {
    jv obj, key = jv_undef(NULL), parts[3] = {jv_undef(NULL), jv_undef(NULL), jv_undef(NULL)};
    int rc = meshlm_jinja_eval(c, n->a, &obj);
    if (rc) return rc;
    if (n->kind == N_ATTR) {
        rc = meshlm_jinja_getattr(c, obj, n->str, n->len, out);
    } else if (n->kind == N_ITEM) {
        rc = meshlm_jinja_eval(c, n->b, &key);
        if (!rc) rc = meshlm_jinja_getitem(c, obj, key, out);
    } else {
        for (int k = 0; k < 3 && !rc; k++)
            if (n->kids[k]) rc = meshlm_jinja_eval(c, n->kids[k], &parts[k]);
        if (!rc)
            rc = meshlm_jinja_slice(obj, n->kids[0] ? &parts[0] : NULL, n->kids[1] ? &parts[1] : NULL,
                                    n->kids[2] ? &parts[2] : NULL, out);
    }
    for (int k = 0; k < 3; k++) meshlm_jinja_unref(parts[k]);
    meshlm_jinja_unref(key);
    meshlm_jinja_unref(obj);
    return rc;
}

static int eval_compare(jctx *c, const jnode *n, jv *out) {
    jv left;
    int rc = meshlm_jinja_eval(c, n->a, &left);
    bool result = true;
    for (size_t i = 0; i < n->nkids && !rc && result; i++) {
        jv right, r;
        rc = meshlm_jinja_eval(c, n->kids[i], &right);
        if (rc) break;
        rc = meshlm_jinja_binop(c, n->ops[i], left, right, &r);
        if (!rc) result = meshlm_jinja_truthy(r);
        meshlm_jinja_unref(left);
        left = right;
    }
    meshlm_jinja_unref(left);
    *out = jv_bool(result);
    return rc;
}

static int eval_unary(jctx *c, const jnode *n, jv *out) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    if (n->kind == N_NOT) {
        *out = jv_bool(!meshlm_jinja_truthy(v));
    } else if (v.kind == JV_INT || v.kind == JV_BOOL) {
        int64_t i = v.kind == JV_INT ? v.u.i : v.u.b;
        if (n->kind == N_NEG && i == INT64_MIN) rc = meshlm_fail(MESHLM_ERR_RANGE, "integer overflow");
        *out = jv_int(n->kind == N_NEG && !rc ? -i : i);
    } else if (v.kind == JV_FLOAT) {
        *out = jv_float(n->kind == N_NEG ? -v.u.f : v.u.f);
    } else {
        rc = v.kind == JV_UNDEF ? meshlm_jinja_undefined_error(v)
                                : meshlm_fail(MESHLM_ERR_INVALID_ARG, "bad operand type for unary %c: '%s'",
                                              n->kind == N_NEG ? '-' : '+', meshlm_jinja_type_name(v));
    }
    meshlm_jinja_unref(v);
    return rc;
}

static int eval_logic(jctx *c, const jnode *n, jv *out) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    if (meshlm_jinja_truthy(v) == (n->kind == N_OR)) {
        *out = v;
        return 0;
    }
    meshlm_jinja_unref(v);
    return meshlm_jinja_eval(c, n->b, out);
}

static int eval_cond(jctx *c, const jnode *n, jv *out) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    bool t = meshlm_jinja_truthy(v);
    meshlm_jinja_unref(v);
    if (t) return meshlm_jinja_eval(c, n->b, out);
    if (n->c) return meshlm_jinja_eval(c, n->c, out);
    *out = jv_undef(NULL);
    return 0;
}

static int eval_node(jctx *c, const jnode *n, jv *out) {
    switch (n->kind) {
    case N_LIT:
        if (n->str) return meshlm_jinja_str_new(n->str, n->len, out);
        *out = n->lit;
        return 0;
    case N_NAME: return meshlm_jinja_lookup(c, n->str, out);
    case N_LIST:
    case N_TUPLE: return eval_seq(c, n, out);
    case N_DICT: return eval_dict(c, n, out);
    case N_ATTR:
    case N_ITEM:
    case N_SLICE: return eval_access(c, n, out);
    case N_CALL: return meshlm_jinja_eval_call(c, n, jv_undef(NULL), out);
    case N_FILTER:
    case N_TEST: return eval_filter_or_test(c, n, out);
    case N_NEG:
    case N_POS:
    case N_NOT: return eval_unary(c, n, out);
    case N_AND:
    case N_OR: return eval_logic(c, n, out);
    case N_BIN: {
        jv a, b;
        int rc = meshlm_jinja_eval(c, n->a, &a);
        if (rc) return rc;
        if ((rc = meshlm_jinja_eval(c, n->b, &b))) {
            meshlm_jinja_unref(a);
            return rc;
        }
        rc = meshlm_jinja_binop(c, n->op, a, b, out);
        meshlm_jinja_unref(a);
        meshlm_jinja_unref(b);
        return rc;
    }
    case N_CMP: return eval_compare(c, n, out);
    case N_COND: return eval_cond(c, n, out);
    case N_HOLE: *out = meshlm_jinja_ref(c->hole); return 0;
    default: return meshlm_fail(MESHLM_ERR_INTERNAL, "not an expression");
    }
}

int meshlm_jinja_eval(jctx *c, const jnode *n, jv *out) {
    *out = jv_undef(NULL);
    int rc = meshlm_jinja_enter(c);
    if (rc) return meshlm_jinja_fail_at(c, n, rc);
    rc = eval_node(c, n, out);
    c->depth--;
    if (rc) *out = jv_undef(NULL);
    return meshlm_jinja_fail_at(c, n, rc);
}

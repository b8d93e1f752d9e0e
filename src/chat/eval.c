/* Statement evaluator: scopes, output with its cap, for loops with `loop`, set, macros and
 * their calls, call/filter blocks, break/continue; and the render entry point. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

/* Positive exec results that unwind to the enclosing loop; errors are negative. */
enum { FLOW_BREAK = 1, FLOW_CONTINUE = 2 };

struct jscope {
    jscope *parent;
    jv vars; /* a dict of names */
};

static int scope_push(jctx *c, jscope *s, jscope *parent) {
    s->parent = parent;
    int rc = meshlm_jinja_dict_new(JV_DICT, &s->vars);
    if (rc) return rc;
    c->scope = s;
    return 0;
}

static void scope_pop(jctx *c, jscope *s, jscope *back) {
    meshlm_jinja_unref(s->vars);
    c->scope = back;
}

int meshlm_jinja_fail_at(jctx *c, const jnode *n, int rc) {
    if (rc < 0 && !c->pos_set) {
        meshlm_fail_prefix(rc, "line %d, col %d", n->line, n->col);
        c->pos_set = true;
    }
    return rc;
}

int meshlm_jinja_charge(jctx *c, size_t bytes) {
    c->total_out += bytes;
    if (c->total_out > c->max_out)
        return meshlm_fail(MESHLM_ERR_RANGE, "output exceeds %zu bytes", c->max_out);
    return 0;
}

int meshlm_jinja_emit(jctx *c, const char *s, size_t n) {
    int rc = meshlm_jinja_charge(c, n);
    return rc ? rc : meshlm_jinja_buf_put(c->out, s, n);
}

int meshlm_jinja_lookup(jctx *c, const char *name, jv *out) {
    size_t n = strlen(name);
    for (jscope *s = c->scope; s; s = s->parent) {
        const jv *v = meshlm_jinja_dict_gets(s->vars, name, n);
        if (v) {
            *out = meshlm_jinja_ref(*v);
            return 0;
        }
    }
    if (meshlm_jinja_global(name, out) == 0) return 0;
    *out = jv_undef(name);
    return 0;
}

int meshlm_jinja_assign(jctx *c, const char *name, jv v) {
    size_t n = strlen(name);
    jdict *d = c->scope->vars.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].u.s->n == n && !memcmp(d->k[i].u.s->p, name, n)) {
            meshlm_jinja_unref(d->v[i]);
            d->v[i] = v;
            return 0;
        }
    jv key;
    int rc = meshlm_jinja_str_new(name, n, &key);
    if (rc) {
        meshlm_jinja_unref(v);
        return rc;
    }
    return meshlm_jinja_dict_set(c->scope->vars, key, v);
}

/* Binds assignment targets: one name takes the value, several unpack it. */
static int assign_targets(jctx *c, const jnode *n, jv v) {
    if (n->nnames == 1) return meshlm_jinja_assign(c, n->names[0], v);
    jv items;
    int rc = meshlm_jinja_iterate(v, &items);
    meshlm_jinja_unref(v);
    if (rc) return rc;
    if (items.u.l->n != n->nnames) {
        rc = meshlm_fail(MESHLM_ERR_INVALID_ARG, "cannot unpack %zu values into %zu names", items.u.l->n, n->nnames);
    }
    for (size_t i = 0; i < n->nnames && !rc; i++)
        rc = meshlm_jinja_assign(c, n->names[i], meshlm_jinja_ref(items.u.l->v[i]));
    meshlm_jinja_unref(items);
    return rc;
}

/* Runs a body into a fresh buffer and returns what it printed as a string. */
static int capture(jctx *c, jnode *const *body, size_t n, jv *out) {
    jbuf buf = {0}, *saved = c->out;
    c->out = &buf;
    int rc = meshlm_jinja_exec_body(c, body, n);
    c->out = saved;
    if (rc) {
        free(buf.p);
        return rc < 0 ? rc : 0;
    }
    return meshlm_jinja_buf_take(&buf, out);
}

static int exec_out(jctx *c, const jnode *n) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    size_t before = c->out->n;
    rc = meshlm_jinja_write_str(c->out, v);
    meshlm_jinja_unref(v);
    return rc ? rc : meshlm_jinja_charge(c, c->out->n - before);
}

/* The items a for loop visits: its iterable, filtered by the loop's "if" condition. */
static int loop_items(jctx *c, const jnode *n, jv *items) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    rc = meshlm_jinja_iterate(v, items);
    meshlm_jinja_unref(v);
    if (rc || !n->b) return rc;
    jv kept;
    if ((rc = meshlm_jinja_list_new(items->u.l->n, &kept))) {
        meshlm_jinja_unref(*items);
        return rc;
    }
    for (size_t i = 0; i < items->u.l->n && !rc; i++) {
        jv cond;
        rc = meshlm_jinja_charge_steps(c, jv_none(), jv_none());
        if (!rc) rc = assign_targets(c, n, meshlm_jinja_ref(items->u.l->v[i]));
        if (!rc) rc = meshlm_jinja_eval(c, n->b, &cond);
        if (rc) break;
        if (meshlm_jinja_truthy(cond)) rc = meshlm_jinja_list_push(kept, meshlm_jinja_ref(items->u.l->v[i]));
        meshlm_jinja_unref(cond);
    }
    meshlm_jinja_unref(*items);
    *items = kept;
    if (rc) meshlm_jinja_unref(kept);
    return rc;
}

static int run_loop(jctx *c, const jnode *n, jv items) {
    jloop *lp = calloc(1, sizeof *lp);
    if (!lp) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
    lp->rc = 1;
    lp->items = meshlm_jinja_ref(items).u.l;
    jv loop = {.kind = JV_LOOP};
    loop.u.loop = lp;
    int rc = 0;
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        lp->i = i;
        rc = meshlm_jinja_charge_steps(c, jv_none(), jv_none());
        if (!rc) rc = assign_targets(c, n, meshlm_jinja_ref(items.u.l->v[i]));
        if (!rc) rc = meshlm_jinja_assign(c, "loop", meshlm_jinja_ref(loop));
        if (!rc) rc = meshlm_jinja_exec_body(c, n->kids, n->nkids);
        if (rc == FLOW_CONTINUE) rc = 0;
    }
    meshlm_jinja_unref(loop);
    return rc == FLOW_BREAK ? 0 : rc;
}

static int exec_for(jctx *c, const jnode *n) {
    jscope s, *back = c->scope;
    int rc = scope_push(c, &s, back);
    if (rc) return rc;
    jv items;
    bool empty = false;
    rc = loop_items(c, n, &items);
    if (!rc) {
        empty = items.u.l->n == 0;
        if (!empty) rc = run_loop(c, n, items);
        meshlm_jinja_unref(items);
    }
    scope_pop(c, &s, back);
    return empty ? meshlm_jinja_exec_body(c, n->alt, n->nalt) : rc;
}

static int exec_set(jctx *c, const jnode *n) {
    jv v;
    int rc = meshlm_jinja_eval(c, n->a, &v);
    if (rc) return rc;
    if (!n->c) return assign_targets(c, n, v);
    jv ns;
    meshlm_jinja_lookup(c, n->str, &ns);
    if (ns.kind != JV_NS) {
        meshlm_jinja_unref(ns);
        meshlm_jinja_unref(v);
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "cannot assign attribute on non-namespace object");
    }
    jv key;
    rc = meshlm_jinja_str_new(n->c->str, n->c->len, &key);
    if (rc) meshlm_jinja_unref(v);
    else rc = meshlm_jinja_dict_set(ns, key, v);
    meshlm_jinja_unref(ns);
    return rc;
}

static int exec_setblock(jctx *c, const jnode *n) {
    jv v;
    int rc = capture(c, n->kids, n->nkids, &v);
    if (rc || !n->b) return rc ? rc : assign_targets(c, n, v);
    jv saved = c->hole, out;
    c->hole = v;
    rc = meshlm_jinja_eval(c, n->b, &out);
    c->hole = saved;
    meshlm_jinja_unref(v);
    return rc ? rc : assign_targets(c, n, out);
}

static int exec_macro_def(jctx *c, const jnode *n) {
    jv f;
    int rc = meshlm_jinja_func_new(FN_MACRO, &f);
    if (rc) return rc;
    f.u.fn->node = n;
    return meshlm_jinja_assign(c, n->str, f);
}

static int exec_filter_block(jctx *c, const jnode *n) {
    jv body, out;
    int rc = capture(c, n->kids, n->nkids, &body);
    if (rc) return rc;
    jv saved = c->hole;
    c->hole = body;
    rc = meshlm_jinja_eval(c, n->a, &out);
    c->hole = saved;
    meshlm_jinja_unref(body);
    if (rc) return rc;
    size_t before = c->out->n;
    rc = meshlm_jinja_write_str(c->out, out);
    meshlm_jinja_unref(out);
    return rc ? rc : meshlm_jinja_charge(c, c->out->n - before);
}

static int exec_call_block(jctx *c, const jnode *n) {
    jv caller, out;
    int rc = meshlm_jinja_func_new(FN_MACRO, &caller);
    if (rc) return rc;
    caller.u.fn->node = n->b;
    rc = meshlm_jinja_eval_call(c, n->a, caller, &out);
    meshlm_jinja_unref(caller);
    if (rc) return rc;
    size_t before = c->out->n;
    rc = meshlm_jinja_write_str(c->out, out);
    meshlm_jinja_unref(out);
    return rc ? rc : meshlm_jinja_charge(c, c->out->n - before);
}

static int exec_node(jctx *c, const jnode *n) {
    switch (n->kind) {
    case S_TEXT: return meshlm_jinja_emit(c, n->str, n->len);
    case S_OUT: return exec_out(c, n);
    case S_IF: {
        jv v;
        int rc = meshlm_jinja_eval(c, n->a, &v);
        if (rc) return rc;
        bool t = meshlm_jinja_truthy(v);
        meshlm_jinja_unref(v);
        return t ? meshlm_jinja_exec_body(c, n->kids, n->nkids) : meshlm_jinja_exec_body(c, n->alt, n->nalt);
    }
    case S_FOR: return exec_for(c, n);
    case S_SET: return exec_set(c, n);
    case S_SETBLOCK: return exec_setblock(c, n);
    case S_MACRO: return exec_macro_def(c, n);
    case S_CALLBLOCK: return exec_call_block(c, n);
    case S_FILTER: return exec_filter_block(c, n);
    case S_BREAK: return FLOW_BREAK;
    case S_CONTINUE: return FLOW_CONTINUE;
    case S_BODY: return meshlm_jinja_exec_body(c, n->kids, n->nkids);
    default: return meshlm_fail(MESHLM_ERR_INTERNAL, "not a statement");
    }
}

static size_t work_of(jv v) {
    return v.kind == JV_LIST ? v.u.l->n : v.kind == JV_DICT || v.kind == JV_NS ? v.u.d->n : v.kind == JV_STR ? v.u.s->n : 0;
}

int meshlm_jinja_charge_steps(jctx *c, jv a, jv b) {
    c->steps += 1 + (long long)((work_of(a) + work_of(b)) / 8);
    if (c->steps > c->max_steps)
        return meshlm_fail(MESHLM_ERR_RANGE, "template exceeds its budget of %lld steps", c->max_steps);
    return 0;
}

int meshlm_jinja_enter(jctx *c) {
    if (++c->steps > c->max_steps)
        return meshlm_fail(MESHLM_ERR_RANGE, "template exceeds its budget of %lld steps", c->max_steps);
    if (c->depth >= JINJA_EVAL_DEPTH)
        return meshlm_fail(MESHLM_ERR_RANGE, "evaluation nested deeper than %d", JINJA_EVAL_DEPTH);
    c->depth++;
    return 0;
}

int meshlm_jinja_exec(jctx *c, const jnode *n) {
    int rc = meshlm_jinja_enter(c);
    if (rc) return meshlm_jinja_fail_at(c, n, rc);
    rc = exec_node(c, n);
    c->depth--;
    return meshlm_jinja_fail_at(c, n, rc);
}

int meshlm_jinja_exec_body(jctx *c, jnode *const *body, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = meshlm_jinja_exec(c, body[i]);
        if (rc) return rc;
    }
    return 0;
}

/* Binds a macro's parameters: positional, then keywords, then defaults; extras go to
 * varargs and kwargs as in Jinja2. */
static int bind_params(jctx *c, const jnode *m, const jargs *a) {
    jv varargs, kwargs;
    int rc = meshlm_jinja_list_new(0, &varargs);
    if (rc) return rc;
    varargs.u.l->tuple = true;
    if ((rc = meshlm_jinja_dict_new(JV_DICT, &kwargs))) {
        meshlm_jinja_unref(varargs);
        return rc;
    }
    for (size_t i = m->nnames; i < a->npos && !rc; i++) rc = meshlm_jinja_list_push(varargs, meshlm_jinja_ref(a->pos[i]));
    for (size_t k = 0; k < a->nkw && !rc; k++) {
        size_t i = 0;
        while (i < m->nnames && strcmp(m->names[i], a->kwn[k])) i++;
        if (i < m->nnames) continue;
        jv key;
        rc = meshlm_jinja_str_new(a->kwn[k], strlen(a->kwn[k]), &key);
        if (!rc) rc = meshlm_jinja_dict_set(kwargs, key, meshlm_jinja_ref(a->kwv[k]));
    }
    for (size_t i = 0; i < m->nnames && !rc; i++) {
        const jv *given = meshlm_jinja_arg(a, i, m->names[i]);
        jv v = jv_undef(m->names[i]);
        if (given) v = meshlm_jinja_ref(*given);
        else if (i < m->nalt && m->alt[i]) rc = meshlm_jinja_eval(c, m->alt[i], &v);
        if (!rc) rc = meshlm_jinja_assign(c, m->names[i], v);
    }
    if (!rc) rc = meshlm_jinja_assign(c, "varargs", meshlm_jinja_ref(varargs));
    if (!rc) rc = meshlm_jinja_assign(c, "kwargs", meshlm_jinja_ref(kwargs));
    meshlm_jinja_unref(varargs);
    meshlm_jinja_unref(kwargs);
    return rc;
}

int meshlm_jinja_call_macro(jctx *c, const jnode *m, const jargs *a, jv caller, jv *out) {
    if (c->calls >= JINJA_CALL_DEPTH)
        return meshlm_fail(MESHLM_ERR_RANGE, "macro '%s' called recursively deeper than %d", m->str, JINJA_CALL_DEPTH);
    jscope s, *back = c->scope;
    int rc = scope_push(c, &s, c->root);
    if (rc) return rc;
    c->calls++;
    rc = bind_params(c, m, a);
    if (!rc && caller.kind != JV_UNDEF) rc = meshlm_jinja_assign(c, "caller", meshlm_jinja_ref(caller));
    if (!rc) rc = capture(c, m->kids, m->nkids, out);
    c->calls--;
    scope_pop(c, &s, back);
    return rc;
}

static int bind_vars(jctx *c, const json_t *vars) {
    if (!vars) return 0;
    if (!json_is_object(vars)) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "template variables must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vars, key, val) {
        jv k, v;
        int rc = meshlm_jinja_from_json(val, 0, &v);
        if (rc) return rc;
        if ((rc = meshlm_jinja_str_new(key, strlen(key), &k))) {
            meshlm_jinja_unref(v);
            return rc;
        }
        if ((rc = meshlm_jinja_dict_set(c->root->vars, k, v))) return rc;
    }
    return 0;
}

int meshlm_jinja_render_limited(const meshlm_jinja *t, const json_t *vars, size_t max_output, long long max_steps,
                                char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    jbuf buf = {0};
    jscope root;
    jctx c = {.out = &buf, .max_out = max_output ? max_output : JINJA_OUTPUT_MAX,
              .max_steps = max_steps > 0 ? max_steps : JINJA_STEPS_MAX, .hole = jv_undef(NULL)};
    int rc = scope_push(&c, &root, NULL);
    if (rc) return rc;
    c.root = &root;
    rc = bind_vars(&c, vars);
    if (!rc) rc = meshlm_jinja_exec_body(&c, t->root->kids, t->root->nkids);
    if (!rc) rc = meshlm_jinja_buf_put(&buf, "", 0);
    scope_pop(&c, &root, NULL);
    if (rc) {
        free(buf.p);
        return rc > 0 ? meshlm_fail(MESHLM_ERR_INTERNAL, "break outside a loop") : rc;
    }
    *out = buf.p;
    *len = buf.n;
    return 0;
}

int meshlm_jinja_render(const meshlm_jinja *t, const json_t *vars, char **out, size_t *len) {
    return meshlm_jinja_render_limited(t, vars, 0, 0, out, len);
}

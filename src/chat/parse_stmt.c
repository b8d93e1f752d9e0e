/* Statement parser: text, {{ output }}, and the block tags (if, for, set, macro, call, filter,
 * break, continue, generation) into a tree of nodes; also the parse entry point. */
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

static const jtok *cur(const jparser *p) { return &p->t[p->pos]; }

static int nomem(void) { return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory"); }

static int expect_end(jparser *p) {
    const jtok *t = cur(p);
    if (t->kind == TK_BLOCK_END) {
        p->pos++;
        return 0;
    }
    return meshlm_jinja_perr(t, "expected end of block tag, found '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
}

static bool accept_name(jparser *p, const char *name) {
    if (!meshlm_jinja_tok_is(cur(p), TK_NAME, name)) return false;
    p->pos++;
    return true;
}

/* A body up to one of ends, then that end tag's remaining tokens are the caller's. */
static int body_until(jparser *p, const char *const *ends, jnode *n, bool alt, size_t *which) {
    jnode *b;
    int rc = meshlm_jinja_parse_body(p, ends, &b, which);
    if (rc) return rc;
    if (alt) {
        n->alt = b->kids;
        n->nalt = b->nkids;
    } else {
        n->kids = b->kids;
        n->nkids = b->nkids;
    }
    return 0;
}

static int parse_if(jparser *p, jnode *n) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    size_t which;
    int rc = meshlm_jinja_parse_expr(p, &n->a);
    if (!rc) rc = expect_end(p);
    if (!rc) rc = body_until(p, ends, n, false, &which);
    if (rc) return rc;
    if (which == 0) {
        jnode *elif = meshlm_jinja_node(p, S_IF, cur(p));
        if (!elif || !(n->alt = meshlm_jinja_alloc(p->arena, sizeof *n->alt))) return nomem();
        n->alt[0] = elif;
        n->nalt = 1;
        return parse_if(p, elif);
    }
    if (which == 1) {
        rc = expect_end(p);
        if (!rc) rc = body_until(p, ends_else, n, true, &which);
    }
    return rc ? rc : expect_end(p);
}

/* Assignment targets as names in n->names. */
static int take_targets(jparser *p, jnode *n, jnode *t) {
    jnode **items = t->kind == N_TUPLE ? t->kids : &t;
    size_t k = t->kind == N_TUPLE ? t->nkids : 1;
    n->names = meshlm_jinja_alloc(p->arena, (k ? k : 1) * sizeof *n->names);
    if (!n->names) return nomem();
    for (size_t i = 0; i < k; i++) n->names[i] = items[i]->str;
    n->nnames = k;
    return 0;
}

static int parse_for(jparser *p, jnode *n) {
    static const char *const ends[] = {"else", "endfor", NULL};
    static const char *const ends_else[] = {"endfor", NULL};
    jnode *targets;
    size_t which;
    int rc = meshlm_jinja_parse_tuple(p, TUPLE_NAMES, &targets);
    if (!rc) rc = take_targets(p, n, targets);
    if (!rc && !accept_name(p, "in")) rc = meshlm_jinja_perr(cur(p), "expected 'in' in for loop");
    if (!rc) rc = meshlm_jinja_parse_tuple(p, TUPLE_NO_COND, &n->a);
    if (!rc && accept_name(p, "if")) rc = meshlm_jinja_parse_expr(p, &n->b);
    if (!rc && accept_name(p, "recursive")) rc = meshlm_jinja_perr(&p->t[p->pos - 1], "recursive loops are not supported");
    if (!rc) rc = expect_end(p);
    p->loops++;
    if (!rc) rc = body_until(p, ends, n, false, &which);
    p->loops--;
    if (!rc && which == 0) {
        rc = expect_end(p);
        if (!rc) rc = body_until(p, ends_else, n, true, &which);
    }
    return rc ? rc : expect_end(p);
}

static int parse_set(jparser *p, jnode *n) {
    static const char *const ends[] = {"endset", NULL};
    const jtok *t = cur(p);
    int rc;
    if (t->kind == TK_NAME && meshlm_jinja_tok_is(t + 1, TK_OP, ".") && t[2].kind == TK_NAME) {
        if (!(n->c = meshlm_jinja_node(p, N_ATTR, t + 1))) return nomem();
        n->c->str = meshlm_jinja_strdup(p, t[2].s, t[2].n);
        n->c->len = t[2].n;
        n->str = meshlm_jinja_strdup(p, t->s, t->n);
        if (!n->str || !n->c->str) return nomem();
        p->pos += 3;
        rc = 0;
    } else {
        jnode *targets;
        rc = meshlm_jinja_parse_tuple(p, TUPLE_NAMES, &targets);
        if (!rc) rc = take_targets(p, n, targets);
    }
    if (rc) return rc;
    if (meshlm_jinja_tok_is(cur(p), TK_OP, "=")) {
        p->pos++;
        rc = meshlm_jinja_parse_tuple(p, TUPLE_EXPR, &n->a);
        return rc ? rc : expect_end(p);
    }
    n->kind = S_SETBLOCK;
    if (meshlm_jinja_tok_is(cur(p), TK_OP, "|")) {
        if (!(n->b = meshlm_jinja_node(p, N_HOLE, cur(p)))) return nomem();
        rc = meshlm_jinja_parse_filters(p, &n->b);
    }
    size_t which;
    if (!rc) rc = expect_end(p);
    if (!rc) rc = body_until(p, ends, n, false, &which);
    return rc ? rc : expect_end(p);
}

/* "(a, b=default, ...)" of a macro or call block into names and alt (defaults). */
static int parse_params(jparser *p, jnode *n) {
    jnvec defs = {0};
    const char *names[64];
    size_t k = 0;
    int rc = 0;
    if (!meshlm_jinja_tok_is(cur(p), TK_OP, "(")) return meshlm_jinja_perr(cur(p), "expected '('");
    p->pos++;
    while (!rc && !meshlm_jinja_tok_is(cur(p), TK_OP, ")")) {
        if (k && !meshlm_jinja_tok_is(cur(p), TK_OP, ",")) {
            rc = meshlm_jinja_perr(cur(p), "expected ',' or ')'");
            break;
        }
        if (k) p->pos++;
        const jtok *t = cur(p);
        if (t->kind != TK_NAME || k == 64) {
            rc = meshlm_jinja_perr(t, k == 64 ? "too many parameters" : "expected a parameter name");
            break;
        }
        if (!(names[k++] = meshlm_jinja_strdup(p, t->s, t->n))) rc = nomem();
        p->pos++;
        jnode *d = NULL;
        if (!rc && meshlm_jinja_tok_is(cur(p), TK_OP, "=")) {
            p->pos++;
            rc = meshlm_jinja_parse_expr(p, &d);
        }
        if (!rc) rc = meshlm_jinja_nvec_push(&defs, d);
    }
    if (!rc) p->pos++;
    if (!rc) rc = meshlm_jinja_nvec_done(p, &defs, &n->alt, &n->nalt);
    free(defs.v);
    if (rc) return rc;
    n->names = meshlm_jinja_alloc(p->arena, (k ? k : 1) * sizeof *n->names);
    if (!n->names) return nomem();
    memcpy(n->names, names, k * sizeof *names);
    n->nnames = k;
    return 0;
}

static int parse_macro(jparser *p, jnode *n) {
    static const char *const ends[] = {"endmacro", NULL};
    const jtok *t = cur(p);
    if (t->kind != TK_NAME) return meshlm_jinja_perr(t, "expected a macro name");
    if (!(n->str = meshlm_jinja_strdup(p, t->s, t->n))) return nomem();
    n->len = t->n;
    p->pos++;
    int rc = parse_params(p, n), loops = p->loops;
    size_t which;
    if (!rc) rc = expect_end(p);
    p->loops = 0;
    if (!rc) rc = body_until(p, ends, n, false, &which);
    p->loops = loops;
    return rc ? rc : expect_end(p);
}

/* {% call [(params)] macro(args) %}body{% endcall %}: the body becomes a macro named caller. */
static int parse_call_block(jparser *p, jnode *n) {
    static const char *const ends[] = {"endcall", NULL};
    jnode *m = meshlm_jinja_node(p, S_MACRO, cur(p));
    if (!m) return nomem();
    m->str = "caller";
    m->len = 6;
    int rc = meshlm_jinja_tok_is(cur(p), TK_OP, "(") ? parse_params(p, m) : 0;
    if (!rc) rc = meshlm_jinja_parse_expr(p, &n->a);
    if (!rc && n->a->kind != N_CALL) rc = meshlm_jinja_perr(cur(p), "a call block needs a macro call");
    size_t which;
    if (!rc) rc = expect_end(p);
    if (!rc) rc = body_until(p, ends, m, false, &which);
    n->b = m;
    return rc ? rc : expect_end(p);
}

static int parse_filter_block(jparser *p, jnode *n) {
    static const char *const ends[] = {"endfilter", NULL};
    if (!(n->a = meshlm_jinja_node(p, N_HOLE, cur(p)))) return nomem();
    int rc = meshlm_jinja_parse_filter_call(p, cur(p), &n->a);
    if (!rc) rc = meshlm_jinja_parse_filters(p, &n->a);
    size_t which;
    if (!rc) rc = expect_end(p);
    if (!rc) rc = body_until(p, ends, n, false, &which);
    return rc ? rc : expect_end(p);
}

static int parse_simple(jparser *p, jnode *n, const jtok *kw) {
    static const char *const gen_ends[] = {"endgeneration", NULL};
    size_t which;
    if (meshlm_jinja_tok_is(kw, TK_NAME, "generation")) {
        n->kind = S_BODY;
        int rc = expect_end(p);
        if (!rc) rc = body_until(p, gen_ends, n, false, &which);
        return rc ? rc : expect_end(p);
    }
    n->kind = meshlm_jinja_tok_is(kw, TK_NAME, "break") ? S_BREAK : S_CONTINUE;
    if (!p->loops) return meshlm_jinja_perr(kw, "'%.*s' outside of a loop", (int)kw->n, kw->s);
    return expect_end(p);
}

/* One block tag after its "{%" and keyword. */
static int parse_block(jparser *p, const jtok *kw, jnode **out) {
    static const struct {
        const char *name;
        jnode_kind kind;
        int (*fn)(jparser *, jnode *);
    } tags[] = {{"if", S_IF, parse_if},         {"for", S_FOR, parse_for},
                {"set", S_SET, parse_set},      {"macro", S_MACRO, parse_macro},
                {"call", S_CALLBLOCK, parse_call_block}, {"filter", S_FILTER, parse_filter_block}};
    int rc = 0;
    if (++p->depth > JINJA_PARSE_DEPTH)
        return meshlm_jinja_perr(kw, "blocks nested deeper than %d", JINJA_PARSE_DEPTH);
    jnode *n = meshlm_jinja_node(p, S_BODY, kw);
    if (!n) return nomem();
    *out = n;
    size_t k = 0;
    while (k < sizeof tags / sizeof tags[0] && !meshlm_jinja_tok_is(kw, TK_NAME, tags[k].name)) k++;
    if (k < sizeof tags / sizeof tags[0]) {
        n->kind = tags[k].kind;
        rc = tags[k].fn(p, n);
    } else if (meshlm_jinja_tok_is(kw, TK_NAME, "generation") || meshlm_jinja_tok_is(kw, TK_NAME, "break") ||
               meshlm_jinja_tok_is(kw, TK_NAME, "continue")) {
        rc = parse_simple(p, n, kw);
    } else {
        rc = meshlm_jinja_perr(kw, "unknown tag '%.*s'", (int)(kw->n > 40 ? 40 : kw->n), kw->s);
    }
    p->depth--;
    return rc;
}

static bool is_end(const jtok *t, const char *const *ends, size_t *which) {
    for (size_t i = 0; ends && ends[i]; i++)
        if (meshlm_jinja_tok_is(t, TK_NAME, ends[i])) {
            *which = i;
            return true;
        }
    return false;
}

/* The "{% endfor %}"-style tag that ends[] expects, for the message of a missing one. */
static int missing_end(const jtok *t, const char *const *ends) {
    size_t k = 0;
    while (ends[k + 1]) k++;
    return meshlm_jinja_perr(t, "unexpected end of template, expected '%s'", ends[k]);
}

int meshlm_jinja_parse_body(jparser *p, const char *const *ends, jnode **out, size_t *which) {
    jnvec body = {0};
    jnode *holder = meshlm_jinja_node(p, S_BODY, cur(p));
    int rc = holder ? 0 : nomem();
    while (!rc) {
        const jtok *t = cur(p);
        jnode *n = NULL;
        if (t->kind == TK_EOF) {
            if (ends) rc = missing_end(t, ends);
            break;
        }
        p->pos++;
        if (t->kind == TK_TEXT) {
            if (!(n = meshlm_jinja_node(p, S_TEXT, t))) rc = nomem();
            else {
                n->str = t->s;
                n->len = t->n;
            }
        } else if (t->kind == TK_VAR_BEGIN) {
            if (!(n = meshlm_jinja_node(p, S_OUT, t))) rc = nomem();
            if (!rc) rc = meshlm_jinja_parse_tuple(p, TUPLE_EXPR, &n->a);
            if (!rc && cur(p)->kind != TK_VAR_END)
                rc = meshlm_jinja_perr(cur(p), "expected '}}', found '%.*s'", (int)(cur(p)->n > 40 ? 40 : cur(p)->n), cur(p)->s);
            p->pos++;
        } else if (t->kind == TK_BLOCK_BEGIN) {
            const jtok *kw = cur(p);
            if (kw->kind != TK_NAME) {
                rc = meshlm_jinja_perr(kw, "expected a tag name");
                break;
            }
            p->pos++;
            if (is_end(kw, ends, which)) break;
            rc = parse_block(p, kw, &n);
        } else {
            rc = meshlm_jinja_perr(t, "unexpected '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
        }
        if (!rc) rc = meshlm_jinja_nvec_push(&body, n);
    }
    if (!rc) rc = meshlm_jinja_nvec_done(p, &body, &holder->kids, &holder->nkids);
    free(body.v);
    *out = holder;
    return rc;
}

/* Jinja2's newline handling: \r\n and \r become \n, and one trailing newline is dropped. */
static char *normalize(jarena **a, const char *src, size_t len, size_t *n) {
    char *d = meshlm_jinja_alloc(a, len + 1);
    if (!d) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            d[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            d[k++] = src[i];
        }
    }
    if (k && d[k - 1] == '\n') k--;
    d[k] = '\0';
    *n = k;
    return d;
}

int meshlm_jinja_parse(const char *src, size_t len, meshlm_jinja **out) {
    *out = NULL;
    meshlm_jinja *t = calloc(1, sizeof *t);
    if (!t) return nomem();
    size_t n;
    const char *s = normalize(&t->arena, src, len, &n);
    jtoks toks = {0};
    int rc = s ? meshlm_jinja_lex(s, n, &toks) : nomem();
    if (!rc) {
        jparser p = {.t = toks.v, .n = toks.n, .arena = &t->arena};
        size_t which;
        rc = meshlm_jinja_parse_body(&p, NULL, &t->root, &which);
    }
    free(toks.v);
    if (rc) {
        meshlm_jinja_free(t);
        return rc == MESHLM_ERR_NOMEM ? rc : MESHLM_ERR_FORMAT;
    }
    *out = t;
    return 0;
}

void meshlm_jinja_free(meshlm_jinja *t) {
    if (!t) return;
    meshlm_jinja_arena_free(t->arena);
    free(t);
}

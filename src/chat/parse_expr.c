/* Expression parser: recursive descent with Jinja2's precedence (conditional, or, and, not,
 * comparisons, + -, ~, * / // %, **, unary, then postfix, filters and tests). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

struct jarena {
    jarena *next;
    size_t used, cap;
    max_align_t data[];
};

void *meshlm_jinja_alloc(jarena **a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!*a || (*a)->used + n > (*a)->cap) {
        size_t cap = n > 65536 ? n : 65536;
        jarena *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += n;
    memset(p, 0, n);
    return p;
}

void meshlm_jinja_arena_free(jarena *a) {
    while (a) {
        jarena *next = a->next;
        free(a);
        a = next;
    }
}

int meshlm_jinja_perr(const jtok *t, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return meshlm_fail(MESHLM_ERR_FORMAT, "line %d, col %d: %s", t->line, t->col, msg);
}

bool meshlm_jinja_tok_is(const jtok *t, jtok_kind k, const char *s) {
    return t->kind == k && (!s || (strlen(s) == t->n && !memcmp(t->s, s, t->n)));
}

jnode *meshlm_jinja_node(jparser *p, jnode_kind kind, const jtok *at) {
    jnode *n = meshlm_jinja_alloc(p->arena, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    n->lit = jv_undef(NULL);
    return n;
}

char *meshlm_jinja_strdup(jparser *p, const char *s, size_t n) {
    char *d = meshlm_jinja_alloc(p->arena, n + 1);
    if (d) memcpy(d, s, n);
    return d;
}

int meshlm_jinja_nvec_push(jnvec *v, jnode *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        jnode **p = realloc(v->v, cap * sizeof *p);
        if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

int meshlm_jinja_nvec_done(jparser *p, jnvec *v, jnode ***out, size_t *n) {
    *out = NULL;
    *n = v->n;
    if (v->n) {
        *out = meshlm_jinja_alloc(p->arena, v->n * sizeof **out);
        if (*out) memcpy(*out, v->v, v->n * sizeof **out);
    }
    free(v->v);
    *v = (jnvec){0};
    return *n && !*out ? meshlm_fail(MESHLM_ERR_NOMEM, "out of memory") : 0;
}

static const jtok *cur(const jparser *p) { return &p->t[p->pos]; }

static bool at_op(const jparser *p, const char *op) { return meshlm_jinja_tok_is(cur(p), TK_OP, op); }
static bool at_name(const jparser *p, const char *name) { return meshlm_jinja_tok_is(cur(p), TK_NAME, name); }

static bool accept_op(jparser *p, const char *op) {
    if (!at_op(p, op)) return false;
    p->pos++;
    return true;
}

static int expect_op(jparser *p, const char *op) {
    if (accept_op(p, op)) return 0;
    const jtok *t = cur(p);
    return meshlm_jinja_perr(t, "expected '%s', found '%.*s'", op, (int)(t->n > 40 ? 40 : t->n), t->s);
}

static int nomem(void) { return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory"); }

static int enter(jparser *p) {
    if (++p->depth > JINJA_PARSE_DEPTH)
        return meshlm_jinja_perr(cur(p), "expression nested deeper than %d", JINJA_PARSE_DEPTH);
    return 0;
}

static int parse_or(jparser *p, jnode **out);
static int parse_unary(jparser *p, bool with_filter, jnode **out);

/* Decodes one escape after a backslash at s[*i] (Python's unicode-escape rules). */
static int decode_escape(const char *s, size_t n, size_t *i, jbuf *b) {
    char c = s[*i];
    const char *simple = strchr("nrtbfva0\\'\"", c);
    static const char map[] = "\n\r\t\b\f\v\a\0\\'\"";
    if (c && simple) {
        (*i)++;
        return meshlm_jinja_buf_putc(b, map[simple - "nrtbfva0\\'\""]);
    }
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (digits && *i + (size_t)digits < n) {
        uint32_t cp = 0;
        for (int k = 1; k <= digits; k++) {
            char h = s[*i + (size_t)k];
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) return meshlm_jinja_buf_putc(b, '\\');
            cp = cp * 16 + (uint32_t)d;
        }
        if (cp > 0x10FFFF) return meshlm_jinja_buf_putc(b, '\\');
        *i += (size_t)digits + 1;
        return meshlm_jinja_utf8_put(b, cp);
    }
    return meshlm_jinja_buf_putc(b, '\\');
}

/* One or more adjacent string literals, concatenated. */
static int parse_string(jparser *p, jnode **out) {
    const jtok *first = cur(p);
    jbuf b = {0};
    int rc = meshlm_jinja_buf_put(&b, "", 0);
    while (!rc && cur(p)->kind == TK_STRING) {
        const jtok *t = &p->t[p->pos++];
        const char *s = t->s + 1;
        size_t n = t->n - 2;
        for (size_t i = 0; i < n && !rc;) {
            if (s[i] == '\\' && i + 1 < n) {
                i++;
                rc = decode_escape(s, n, &i, &b);
            } else {
                rc = meshlm_jinja_buf_putc(&b, s[i++]);
            }
        }
    }
    jnode *nd = rc ? NULL : meshlm_jinja_node(p, N_LIT, first);
    if (!rc && nd) {
        nd->str = meshlm_jinja_strdup(p, b.p, b.n);
        nd->len = b.n;
        if (!nd->str) rc = nomem();
    } else if (!rc) {
        rc = nomem();
    }
    free(b.p);
    *out = nd;
    return rc;
}

static int parse_number(jparser *p, jnode **out) {
    const jtok *t = &p->t[p->pos++];
    char tmp[64];
    size_t k = 0;
    for (size_t i = 0; i < t->n && k + 1 < sizeof tmp; i++)
        if (t->s[i] != '_') tmp[k++] = t->s[i];
    tmp[k] = '\0';
    jnode *n = meshlm_jinja_node(p, N_LIT, t);
    if (!n) return nomem();
    errno = 0;
    if (t->kind == TK_INT) {
        long long v = strtoll(tmp, NULL, 10);
        if (errno || k + 1 >= sizeof tmp) return meshlm_jinja_perr(t, "integer literal out of range");
        n->lit = jv_int(v);
    } else {
        n->lit = jv_float(strtod(tmp, NULL));
    }
    *out = n;
    return 0;
}

/* Comma-separated items up to the closing bracket; dict literals also take "key: value". */
static int parse_items(jparser *p, const char *close, bool dict, jnode *n) {
    jnvec keys = {0}, vals = {0};
    int rc = 0;
    while (!rc && !at_op(p, close)) {
        if (keys.n && (rc = expect_op(p, ","))) break;
        if (at_op(p, close)) break;
        jnode *k = NULL, *v = NULL;
        rc = meshlm_jinja_parse_expr(p, &k);
        if (!rc) rc = meshlm_jinja_nvec_push(&keys, k);
        if (!rc && dict) rc = expect_op(p, ":");
        if (!rc && dict) rc = meshlm_jinja_parse_expr(p, &v);
        if (!rc && dict) rc = meshlm_jinja_nvec_push(&vals, v);
    }
    if (!rc) rc = expect_op(p, close);
    if (!rc) rc = meshlm_jinja_nvec_done(p, &keys, &n->kids, &n->nkids);
    if (!rc) rc = meshlm_jinja_nvec_done(p, &vals, &n->alt, &n->nalt);
    free(keys.v);
    free(vals.v);
    return rc;
}

static int parse_primary(jparser *p, jnode **out) {
    const jtok *t = cur(p);
    if (t->kind == TK_STRING) return parse_string(p, out);
    if (t->kind == TK_INT || t->kind == TK_FLOAT) return parse_number(p, out);
    if (t->kind == TK_NAME) {
        jnode *n = meshlm_jinja_node(p, N_LIT, t);
        if (!n) return nomem();
        p->pos++;
        if (meshlm_jinja_tok_is(t, TK_NAME, "true") || meshlm_jinja_tok_is(t, TK_NAME, "True")) n->lit = jv_bool(true);
        else if (meshlm_jinja_tok_is(t, TK_NAME, "false") || meshlm_jinja_tok_is(t, TK_NAME, "False")) n->lit = jv_bool(false);
        else if (meshlm_jinja_tok_is(t, TK_NAME, "none") || meshlm_jinja_tok_is(t, TK_NAME, "None")) n->lit = jv_none();
        else {
            n->kind = N_NAME;
            n->len = t->n;
            if (!(n->str = meshlm_jinja_strdup(p, t->s, t->n))) return nomem();
        }
        *out = n;
        return 0;
    }
    if (accept_op(p, "(")) {
        if (accept_op(p, ")")) {
            jnode *n = meshlm_jinja_node(p, N_TUPLE, t);
            *out = n;
            return n ? 0 : nomem();
        }
        int rc = meshlm_jinja_parse_tuple(p, TUPLE_EXPR, out);
        return rc ? rc : expect_op(p, ")");
    }
    if (accept_op(p, "[") || accept_op(p, "{")) {
        bool dict = t->s[0] == '{';
        jnode *n = meshlm_jinja_node(p, dict ? N_DICT : N_LIST, t);
        if (!n) return nomem();
        *out = n;
        return parse_items(p, dict ? "}" : "]", dict, n);
    }
    if (t->kind == TK_EOF || t->kind == TK_BLOCK_END || t->kind == TK_VAR_END)
        return meshlm_jinja_perr(t, "unexpected end of expression");
    return meshlm_jinja_perr(t, "unexpected '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
}

/* Call arguments after "(": positional, then name=value keywords. */
static int parse_args(jparser *p, jnode *n) {
    jnvec pos = {0}, kwv = {0};
    const char *names[64];
    size_t nn = 0;
    int rc = 0;
    while (!rc && !at_op(p, ")")) {
        if ((pos.n || kwv.n) && (rc = expect_op(p, ","))) break;
        if (at_op(p, ")")) break;
        const jtok *t = cur(p);
        jnode *e = NULL;
        if (t->kind == TK_NAME && meshlm_jinja_tok_is(t + 1, TK_OP, "=")) {
            if (nn == 64) {
                rc = meshlm_jinja_perr(t, "too many keyword arguments");
                break;
            }
            if (!(names[nn++] = meshlm_jinja_strdup(p, t->s, t->n))) rc = nomem();
            p->pos += 2;
            if (!rc) rc = meshlm_jinja_parse_expr(p, &e);
            if (!rc) rc = meshlm_jinja_nvec_push(&kwv, e);
        } else if (kwv.n) {
            rc = meshlm_jinja_perr(t, "positional argument after keyword argument");
        } else {
            rc = meshlm_jinja_parse_expr(p, &e);
            if (!rc) rc = meshlm_jinja_nvec_push(&pos, e);
        }
    }
    if (!rc) rc = expect_op(p, ")");
    if (!rc) rc = meshlm_jinja_nvec_done(p, &pos, &n->kids, &n->nkids);
    if (!rc) rc = meshlm_jinja_nvec_done(p, &kwv, &n->alt, &n->nalt);
    if (!rc && nn) {
        n->names = meshlm_jinja_alloc(p->arena, nn * sizeof *n->names);
        if (!n->names) rc = nomem();
        else memcpy(n->names, names, nn * sizeof *names);
        n->nnames = nn;
    }
    free(pos.v);
    free(kwv.v);
    return rc;
}

/* The inside of [...]: an index, or a slice with optional start, stop and step. */
static int parse_subscript(jparser *p, jnode *obj, const jtok *at, jnode **out) {
    jnode *parts[3] = {NULL, NULL, NULL};
    int rc = 0, k = 0;
    bool slice = false;
    for (;;) {
        if (!at_op(p, ":") && !at_op(p, "]")) rc = meshlm_jinja_parse_expr(p, &parts[k]);
        if (rc || !accept_op(p, ":")) break;
        slice = true;
        if (++k == 3) return meshlm_jinja_perr(cur(p), "too many ':' in slice");
    }
    if (rc || (rc = expect_op(p, "]"))) return rc;
    jnode *n = meshlm_jinja_node(p, slice ? N_SLICE : N_ITEM, at);
    if (!n) return nomem();
    n->a = obj;
    if (slice) {
        n->kids = meshlm_jinja_alloc(p->arena, 3 * sizeof *n->kids);
        if (!n->kids) return nomem();
        memcpy(n->kids, parts, sizeof parts);
        n->nkids = 3;
    } else if (!parts[0]) {
        return meshlm_jinja_perr(at, "empty subscript");
    } else {
        n->b = parts[0];
    }
    *out = n;
    return 0;
}

/* .name, .0, [index], [slice] and (call) after a primary. */
static int parse_postfix(jparser *p, jnode **node) {
    for (;;) {
        const jtok *t = cur(p);
        int rc = 0;
        if (accept_op(p, ".")) {
            const jtok *a = cur(p);
            if (a->kind != TK_NAME && a->kind != TK_INT) return meshlm_jinja_perr(a, "expected an attribute name");
            p->pos++;
            jnode *n = meshlm_jinja_node(p, a->kind == TK_NAME ? N_ATTR : N_ITEM, t);
            if (!n) return nomem();
            n->a = *node;
            if (a->kind == TK_NAME) {
                n->len = a->n;
                if (!(n->str = meshlm_jinja_strdup(p, a->s, a->n))) return nomem();
            } else {
                if (!(n->b = meshlm_jinja_node(p, N_LIT, a))) return nomem();
                n->b->lit = jv_int(strtoll(a->s, NULL, 10));
            }
            *node = n;
        } else if (accept_op(p, "[")) {
            rc = parse_subscript(p, *node, t, node);
        } else if (accept_op(p, "(")) {
            jnode *n = meshlm_jinja_node(p, N_CALL, t);
            if (!n) return nomem();
            n->a = *node;
            *node = n;
            rc = parse_args(p, n);
        } else {
            return 0;
        }
        if (rc) return rc;
    }
}

/* A filter or test name, possibly dotted. */
static int parse_dotted_name(jparser *p, jnode *n) {
    const jtok *t = cur(p);
    if (t->kind != TK_NAME) return meshlm_jinja_perr(t, "expected a name");
    const char *start = t->s;
    p->pos++;
    while (at_op(p, ".") && p->t[p->pos + 1].kind == TK_NAME) p->pos += 2;
    const jtok *last = &p->t[p->pos - 1];
    n->len = (size_t)(last->s + last->n - start);
    n->str = meshlm_jinja_strdup(p, start, n->len);
    return n->str ? 0 : nomem();
}

static int parse_test(jparser *p, jnode **node) {
    jnode *n = meshlm_jinja_node(p, N_TEST, cur(p));
    if (!n) return nomem();
    n->a = *node;
    *node = n;
    if (at_name(p, "not")) {
        p->pos++;
        n->op = 1;
    }
    const jtok *name = cur(p);
    int rc = parse_dotted_name(p, n);
    if (!rc && !meshlm_jinja_has_test(n->str)) rc = meshlm_jinja_perr(name, "no test named '%s'", n->str);
    if (rc) return rc;
    const jtok *t = cur(p);
    if (accept_op(p, "(")) return parse_args(p, n);
    bool starts_arg = t->kind == TK_NAME || t->kind == TK_STRING || t->kind == TK_INT || t->kind == TK_FLOAT ||
                      at_op(p, "[") || at_op(p, "{");
    if (!starts_arg || at_name(p, "else") || at_name(p, "or") || at_name(p, "and") || at_name(p, "is") ||
        at_name(p, "if") || at_name(p, "in") || at_name(p, "not"))
        return 0;
    jnode *arg;
    rc = parse_primary(p, &arg);
    if (!rc) rc = parse_postfix(p, &arg);
    if (rc) return rc;
    if (!(n->kids = meshlm_jinja_alloc(p->arena, sizeof *n->kids))) return nomem();
    n->kids[0] = arg;
    n->nkids = 1;
    return 0;
}

int meshlm_jinja_parse_filter_call(jparser *p, const jtok *at, jnode **node) {
    jnode *n = meshlm_jinja_node(p, N_FILTER, at);
    if (!n) return nomem();
    n->a = *node;
    *node = n;
    const jtok *name = cur(p);
    int rc = parse_dotted_name(p, n);
    if (!rc && !meshlm_jinja_has_filter(n->str)) rc = meshlm_jinja_perr(name, "no filter named '%s'", n->str);
    if (!rc && accept_op(p, "(")) rc = parse_args(p, n);
    return rc;
}

/* Filters ("|name(args)"), tests ("is [not] name arg") and more postfix after a unary. */
int meshlm_jinja_parse_filters(jparser *p, jnode **node) {
    for (;;) {
        int rc;
        const jtok *t = cur(p);
        if (accept_op(p, "|")) {
            rc = meshlm_jinja_parse_filter_call(p, t, node);
        } else if (at_name(p, "is")) {
            p->pos++;
            rc = parse_test(p, node);
        } else if (at_op(p, "(") || at_op(p, "[") || at_op(p, ".")) {
            rc = parse_postfix(p, node);
        } else {
            return 0;
        }
        if (rc) return rc;
    }
}

static int parse_unary(jparser *p, bool with_filter, jnode **out) {
    const jtok *t = cur(p);
    int rc = enter(p);
    if (!rc && (at_op(p, "-") || at_op(p, "+"))) {
        p->pos++;
        jnode *n = meshlm_jinja_node(p, t->s[0] == '-' ? N_NEG : N_POS, t);
        if (!n) return nomem();
        rc = parse_unary(p, false, &n->a);
        *out = n;
    } else if (!rc) {
        rc = parse_primary(p, out);
    }
    if (!rc) rc = parse_postfix(p, out);
    if (!rc && with_filter) rc = meshlm_jinja_parse_filters(p, out);
    p->depth--;
    return rc;
}

static jnode *binary(jparser *p, const jtok *at, int op, jnode *a, jnode *b) {
    jnode *n = meshlm_jinja_node(p, N_BIN, at);
    if (n) {
        n->op = op;
        n->a = a;
        n->b = b;
    }
    return n;
}

/* One left-associative level of binary operators: ops[i] maps to codes[i]. */
static int parse_level(jparser *p, int level, jnode **out);

static const char *const level_ops[4][5] = {{"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
static const int level_codes[4][4] = {{OP_ADD, OP_SUB}, {OP_CONCAT}, {OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD}, {OP_POW}};

static int parse_level(jparser *p, int level, jnode **out) {
    int rc = level == 3 ? parse_unary(p, true, out) : parse_level(p, level + 1, out);
    while (!rc) {
        const jtok *t = cur(p);
        int k = 0;
        while (level_ops[level][k] && !at_op(p, level_ops[level][k])) k++;
        if (!level_ops[level][k]) return 0;
        p->pos++;
        jnode *rhs;
        rc = level == 3 ? parse_unary(p, true, &rhs) : parse_level(p, level + 1, &rhs);
        if (!rc && !(*out = binary(p, t, level_codes[level][k], *out, rhs))) rc = nomem();
    }
    return rc;
}

static int compare_op(jparser *p) {
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    static const int codes[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    for (int k = 0; k < 6; k++)
        if (accept_op(p, ops[k])) return codes[k];
    if (at_name(p, "in")) {
        p->pos++;
        return OP_IN;
    }
    if (at_name(p, "not") && meshlm_jinja_tok_is(cur(p) + 1, TK_NAME, "in")) {
        p->pos += 2;
        return OP_NOTIN;
    }
    return -1;
}

static int parse_compare(jparser *p, jnode **out) {
    const jtok *t = cur(p);
    jnode *first;
    int rc = parse_level(p, 0, &first);
    jnvec operands = {0};
    int ops[32], nops = 0;
    while (!rc) {
        int op = compare_op(p);
        if (op < 0) break;
        if (nops == 32) {
            rc = meshlm_jinja_perr(t, "comparison chain too long");
            break;
        }
        ops[nops++] = op;
        jnode *rhs;
        rc = parse_level(p, 0, &rhs);
        if (!rc) rc = meshlm_jinja_nvec_push(&operands, rhs);
    }
    if (rc || !nops) {
        free(operands.v);
        *out = first;
        return rc;
    }
    jnode *n = meshlm_jinja_node(p, N_CMP, t);
    if (!n || !(n->ops = meshlm_jinja_alloc(p->arena, (size_t)nops * sizeof *n->ops))) {
        free(operands.v);
        return nomem();
    }
    memcpy(n->ops, ops, (size_t)nops * sizeof *ops);
    n->a = first;
    *out = n;
    return meshlm_jinja_nvec_done(p, &operands, &n->kids, &n->nkids);
}

static int parse_not(jparser *p, jnode **out) {
    if (!at_name(p, "not")) return parse_compare(p, out);
    const jtok *t = &p->t[p->pos++];
    jnode *n = meshlm_jinja_node(p, N_NOT, t);
    if (!n) return nomem();
    *out = n;
    int rc = enter(p);
    if (!rc) rc = parse_not(p, &n->a);
    p->depth--;
    return rc;
}

static int parse_bool_level(jparser *p, bool is_or, jnode **out) {
    int rc = is_or ? parse_bool_level(p, false, out) : parse_not(p, out);
    while (!rc && at_name(p, is_or ? "or" : "and")) {
        const jtok *t = &p->t[p->pos++];
        jnode *n = meshlm_jinja_node(p, is_or ? N_OR : N_AND, t);
        if (!n) return nomem();
        n->a = *out;
        *out = n;
        rc = is_or ? parse_bool_level(p, false, &n->b) : parse_not(p, &n->b);
    }
    return rc;
}

static int parse_or(jparser *p, jnode **out) { return parse_bool_level(p, true, out); }

int meshlm_jinja_parse_expr(jparser *p, jnode **out) {
    int rc = enter(p);
    if (!rc) rc = parse_or(p, out);
    while (!rc && at_name(p, "if")) {
        const jtok *t = &p->t[p->pos++];
        jnode *n = meshlm_jinja_node(p, N_COND, t);
        if (!n) return nomem();
        n->b = *out;
        *out = n;
        rc = parse_or(p, &n->a);
        if (!rc && at_name(p, "else")) {
            p->pos++;
            rc = meshlm_jinja_parse_expr(p, &n->c);
        }
    }
    p->depth--;
    return rc;
}

int meshlm_jinja_parse_tuple(jparser *p, int mode, jnode **out) {
    const jtok *t = cur(p);
    jnvec items = {0};
    bool comma = false;
    int rc = 0;
    for (;;) {
        jnode *e = NULL;
        if (mode == TUPLE_NAMES) {
            if (cur(p)->kind != TK_NAME) return free(items.v), meshlm_jinja_perr(cur(p), "expected a name");
            rc = parse_primary(p, &e);
            if (!rc && e->kind != N_NAME) rc = meshlm_jinja_perr(t, "cannot assign to a constant");
        } else {
            rc = mode == TUPLE_NO_COND ? parse_or(p, &e) : meshlm_jinja_parse_expr(p, &e);
        }
        if (!rc) rc = meshlm_jinja_nvec_push(&items, e);
        if (rc || !accept_op(p, ",")) break;
        comma = true;
        const jtok *n = cur(p);
        if (n->kind == TK_BLOCK_END || n->kind == TK_VAR_END || at_op(p, ")") || at_op(p, "=") || at_name(p, "in"))
            break;
    }
    if (rc || (!comma && items.n == 1)) {
        *out = items.n ? items.v[0] : NULL;
        free(items.v);
        return rc;
    }
    jnode *n = meshlm_jinja_node(p, N_TUPLE, t);
    if (!n) return free(items.v), nomem();
    *out = n;
    return meshlm_jinja_nvec_done(p, &items, &n->kids, &n->nkids);
}

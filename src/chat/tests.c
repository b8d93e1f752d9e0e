/* The "is" tests: defined, none, string, mapping, iterable, comparisons and the rest of
 * Jinja2's built-in tests, with Python's type rules (a bool is a number, not an integer). */
#include <string.h>

#include "chat/jinja_impl.h"

static const char *const test_names[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false",
    "mapping", "iterable", "sequence", "callable", "equalto", "eq", "==", "ne", "!=", "lt", "<", "gt", ">",
    "le", "<=", "ge", ">=", "greaterthan", "lessthan", "in", "odd", "even", "divisibleby", "lower", "upper",
    "sameas", "escaped", NULL};

bool meshlm_jinja_has_test(const char *name) {
    for (int i = 0; test_names[i]; i++)
        if (!strcmp(test_names[i], name)) return true;
    return false;
}

static int compare_test(const char *name, jv in, const jv *other, bool *out) {
    static const struct {
        const char *name;
        int op;
    } ops[] = {{"equalto", OP_EQ}, {"eq", OP_EQ}, {"==", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE},
               {"lt", OP_LT},      {"<", OP_LT},  {"lessthan", OP_LT}, {"gt", OP_GT}, {">", OP_GT},
               {"greaterthan", OP_GT}, {"le", OP_LE}, {"<=", OP_LE}, {"ge", OP_GE}, {">=", OP_GE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].name, name)) continue;
        if (!other) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "test '%s' needs an argument", name);
        if (ops[i].op == OP_EQ || ops[i].op == OP_NE) {
            *out = meshlm_jinja_equal(in, *other) == (ops[i].op == OP_EQ);
            return 0;
        }
        int r;
        int rc = meshlm_jinja_compare(in, *other, &r);
        if (!rc) *out = ops[i].op == OP_LT ? r < 0 : ops[i].op == OP_GT ? r > 0 : ops[i].op == OP_LE ? r <= 0 : r >= 0;
        return rc;
    }
    return 1;
}

static int int_test(const char *name, jv in, const jv *arg, bool *out) {
    if (in.kind != JV_INT && in.kind != JV_BOOL)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "test '%s' needs an integer, not %s", name, meshlm_jinja_type_name(in));
    int64_t v = in.kind == JV_INT ? in.u.i : in.u.b;
    if (!strcmp(name, "odd")) *out = v % 2 != 0;
    else if (!strcmp(name, "even")) *out = v % 2 == 0;
    else {
        if (!arg || arg->kind != JV_INT || arg->u.i == 0)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "divisibleby needs a non-zero integer");
        *out = v % arg->u.i == 0;
    }
    return 0;
}

static bool case_test(jv in, bool upper) {
    if (in.kind != JV_STR) return false;
    bool cased = false;
    for (size_t i = 0; i < in.u.s->n; i++) {
        char ch = in.u.s->p[i];
        if ((ch >= 'a' && ch <= 'z' && upper) || (ch >= 'A' && ch <= 'Z' && !upper)) return false;
        cased = cased || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
    }
    return cased;
}

static bool sameas(jv a, jv b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case JV_NONE:
    case JV_UNDEF: return true;
    case JV_BOOL: return a.u.b == b.u.b;
    case JV_INT: return a.u.i == b.u.i;
    case JV_FLOAT: return a.u.f == b.u.f;
    case JV_STR: return a.u.s == b.u.s;
    case JV_LIST: return a.u.l == b.u.l;
    case JV_DICT:
    case JV_NS: return a.u.d == b.u.d;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    }
    return false;
}

int meshlm_jinja_test(jctx *c, const char *name, jv in, const jargs *a, bool *out) {
    const jv *arg = meshlm_jinja_arg(a, 0, NULL);
    int rc = meshlm_jinja_charge_steps(c, in, arg ? *arg : jv_none());
    if (rc) return rc;
    jv_kind k = in.kind;
    *out = false;
    if (!strcmp(name, "defined")) *out = k != JV_UNDEF;
    else if (!strcmp(name, "undefined")) *out = k == JV_UNDEF;
    else if (!strcmp(name, "none")) *out = k == JV_NONE;
    else if (!strcmp(name, "string")) *out = k == JV_STR;
    else if (!strcmp(name, "number")) *out = k == JV_INT || k == JV_FLOAT || k == JV_BOOL;
    else if (!strcmp(name, "integer")) *out = k == JV_INT;
    else if (!strcmp(name, "float")) *out = k == JV_FLOAT;
    else if (!strcmp(name, "boolean")) *out = k == JV_BOOL;
    else if (!strcmp(name, "true")) *out = k == JV_BOOL && in.u.b;
    else if (!strcmp(name, "false")) *out = k == JV_BOOL && !in.u.b;
    else if (!strcmp(name, "mapping")) *out = k == JV_DICT;
    else if (!strcmp(name, "iterable")) *out = k == JV_STR || k == JV_LIST || k == JV_DICT || k == JV_UNDEF || k == JV_LOOP;
    else if (!strcmp(name, "sequence")) *out = k == JV_STR || k == JV_LIST || k == JV_DICT || k == JV_UNDEF;
    else if (!strcmp(name, "callable")) *out = k == JV_FUNC;
    else if (!strcmp(name, "in")) {
        if (!arg) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "test 'in' needs an argument");
        return meshlm_jinja_contains(*arg, in, out);
    } else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby"))
        return int_test(name, in, arg, out);
    else if (!strcmp(name, "lower") || !strcmp(name, "upper")) *out = case_test(in, name[0] == 'u');
    else if (!strcmp(name, "sameas")) *out = arg && sameas(in, *arg);
    else if (!strcmp(name, "escaped")) *out = false;
    else {
        rc = compare_test(name, in, arg, out);
        if (rc <= 0) return rc;
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "no test named '%s'", name);
    }
    return 0;
}

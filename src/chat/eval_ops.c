/* Binary operators with Python semantics (int/float promotion, floor division and modulo
 * signs, string and list repetition within the output cap) and Python slicing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

static const char *const op_names[] = {"+", "-", "*", "/", "//", "%", "**", "~"};

static int type_error(int op, jv a, jv b) {
    if (a.kind == JV_UNDEF) return meshlm_jinja_undefined_error(a);
    if (b.kind == JV_UNDEF) return meshlm_jinja_undefined_error(b);
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "unsupported operand type(s) for %s: '%s' and '%s'", op_names[op],
                       meshlm_jinja_type_name(a), meshlm_jinja_type_name(b));
}

int meshlm_jinja_check_len(const jctx *c, size_t n) {
    if (n > c->max_out) return meshlm_fail(MESHLM_ERR_RANGE, "string of %zu bytes exceeds the output cap", n);
    return 0;
}

static int64_t as_int(jv v) { return v.kind == JV_INT ? v.u.i : v.u.b; }

static int overflow(void) { return meshlm_fail(MESHLM_ERR_RANGE, "integer overflow"); }

static int int_pow(int64_t a, int64_t b, jv *out) {
    int64_t r = 1;
    while (b > 0) {
        if (b & 1 && __builtin_mul_overflow(r, a, &r)) return overflow();
        b >>= 1;
        if (b && __builtin_mul_overflow(a, a, &a)) return overflow();
    }
    *out = jv_int(r);
    return 0;
}

static int int_op(int op, int64_t a, int64_t b, jv *out) {
    int64_t r = 0;
    switch (op) {
    case OP_ADD: if (__builtin_add_overflow(a, b, &r)) return overflow(); break;
    case OP_SUB: if (__builtin_sub_overflow(a, b, &r)) return overflow(); break;
    case OP_MUL: if (__builtin_mul_overflow(a, b, &r)) return overflow(); break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (b == 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "integer division or modulo by zero");
        if (a == INT64_MIN && b == -1) return overflow();
        r = op == OP_FLOORDIV ? a / b : a % b;
        if (op == OP_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
        if (op == OP_MOD && r != 0 && ((r < 0) != (b < 0))) r += b;
        break;
    case OP_POW:
        if (b < 0) {
            *out = jv_float(pow((double)a, (double)b));
            return 0;
        }
        return int_pow(a, b, out);
    default: break;
    }
    *out = jv_int(r);
    return 0;
}

static int float_op(int op, double a, double b, jv *out) {
    double r = 0;
    if ((op == OP_DIV || op == OP_FLOORDIV || op == OP_MOD) && b == 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "float division by zero");
    switch (op) {
    case OP_ADD: r = a + b; break;
    case OP_SUB: r = a - b; break;
    case OP_MUL: r = a * b; break;
    case OP_DIV: r = a / b; break;
    case OP_FLOORDIV: r = floor(a / b); break;
    case OP_MOD:
        r = fmod(a, b);
        if (r != 0 && ((r < 0) != (b < 0))) r += b;
        break;
    case OP_POW: r = pow(a, b); break;
    default: break;
    }
    *out = jv_float(r);
    return 0;
}

static int repeat_str(const jctx *c, jv s, int64_t times, jv *out) {
    if (times <= 0 || s.u.s->n == 0) return meshlm_jinja_str_new("", 0, out);
    if ((uint64_t)times > c->max_out / s.u.s->n) return meshlm_jinja_check_len(c, c->max_out + 1);
    jbuf b = {0};
    int rc = 0;
    for (int64_t i = 0; i < times && !rc; i++) rc = meshlm_jinja_buf_put(&b, s.u.s->p, s.u.s->n);
    if (rc) {
        free(b.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&b, out);
}

static int concat_lists(jv a, jv b, int64_t times, jv *out) {
    size_t n = a.u.l->n + (b.kind == JV_LIST ? b.u.l->n : 0);
    if (times < 0) times = 0;
    if (n && (uint64_t)times > JINJA_LIST_MAX / n) return meshlm_fail(MESHLM_ERR_RANGE, "list longer than %d items", JINJA_LIST_MAX);
    int rc = meshlm_jinja_list_new(n * (size_t)times, out);
    for (int64_t t = 0; t < times && !rc; t++) {
        for (size_t i = 0; i < a.u.l->n && !rc; i++) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(a.u.l->v[i]));
        for (size_t i = 0; b.kind == JV_LIST && i < b.u.l->n && !rc; i++)
            rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(b.u.l->v[i]));
    }
    if (rc && out->kind == JV_LIST) meshlm_jinja_unref(*out);
    return rc;
}

static int concat_str(const jctx *c, jv a, jv b, jv *out) {
    jv sa, sb;
    int rc = meshlm_jinja_to_str(a, &sa);
    if (rc) return rc;
    if ((rc = meshlm_jinja_to_str(b, &sb))) {
        meshlm_jinja_unref(sa);
        return rc;
    }
    jbuf buf = {0};
    rc = meshlm_jinja_check_len(c, sa.u.s->n + sb.u.s->n);
    if (!rc) rc = meshlm_jinja_buf_put(&buf, sa.u.s->p, sa.u.s->n);
    if (!rc) rc = meshlm_jinja_buf_put(&buf, sb.u.s->p, sb.u.s->n);
    meshlm_jinja_unref(sa);
    meshlm_jinja_unref(sb);
    if (rc) {
        free(buf.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&buf, out);
}

static int compare_op(int op, jv a, jv b, jv *out) {
    int r = 0, rc = 0;
    bool in;
    switch (op) {
    case OP_EQ: *out = jv_bool(meshlm_jinja_equal(a, b)); return 0;
    case OP_NE: *out = jv_bool(!meshlm_jinja_equal(a, b)); return 0;
    case OP_IN:
    case OP_NOTIN:
        rc = meshlm_jinja_contains(b, a, &in);
        *out = jv_bool(in == (op == OP_IN));
        return rc;
    default: break;
    }
    if (a.kind == JV_UNDEF) return meshlm_jinja_undefined_error(a);
    if (b.kind == JV_UNDEF) return meshlm_jinja_undefined_error(b);
    if ((rc = meshlm_jinja_compare(a, b, &r))) return rc;
    *out = jv_bool(op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0);
    return 0;
}

int meshlm_jinja_binop(jctx *c, int op, jv a, jv b, jv *out) {
    int rc = meshlm_jinja_charge_steps(c, a, b);
    if (rc) return rc;
    if (op >= OP_EQ) return compare_op(op, a, b, out);
    if (op == OP_CONCAT) return concat_str(c, a, b, out);
    bool na = meshlm_jinja_is_number(a), nb = meshlm_jinja_is_number(b);
    if (na && nb) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT && op != OP_DIV) return int_op(op, as_int(a), as_int(b), out);
        return float_op(op, meshlm_jinja_num(a), meshlm_jinja_num(b), out);
    }
    if (op == OP_ADD && a.kind == JV_STR && b.kind == JV_STR) return concat_str(c, a, b, out);
    if (op == OP_ADD && a.kind == JV_LIST && b.kind == JV_LIST) return concat_lists(a, b, 1, out);
    if (op == OP_MUL && (a.kind == JV_STR || a.kind == JV_LIST) && nb && b.kind != JV_FLOAT) {
        if (a.kind == JV_STR) return repeat_str(c, a, as_int(b), out);
        return concat_lists(a, jv_none(), as_int(b), out);
    }
    if (op == OP_MUL && (b.kind == JV_STR || b.kind == JV_LIST) && na && a.kind != JV_FLOAT)
        return meshlm_jinja_binop(c, op, b, a, out);
    if (op == OP_MOD && a.kind == JV_STR) return meshlm_jinja_percent_format(c, a, b, out);
    return type_error(op, a, b);
}

/* Python's slice index adjustment for a sequence of length n. */
static int slice_bounds(int64_t n, const jv *start, const jv *stop, const jv *step, int64_t *b, int64_t *e,
                        int64_t *s) {
    const jv *in[3] = {start, stop, step};
    for (int k = 0; k < 3; k++)
        if (in[k] && in[k]->kind != JV_NONE && in[k]->kind != JV_INT && in[k]->kind != JV_BOOL)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "slice indices must be integers or None");
    *s = step && step->kind != JV_NONE ? as_int(*step) : 1;
    if (*s == 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "slice step cannot be zero");
    int64_t lo = *s < 0 ? -1 : 0, hi = *s < 0 ? n - 1 : n;
    int64_t *ends[2] = {b, e};
    const jv *given[2] = {start, stop};
    for (int k = 0; k < 2; k++) {
        if (!given[k] || given[k]->kind == JV_NONE) {
            *ends[k] = (k == 0) == (*s < 0) ? hi : lo;
            continue;
        }
        int64_t v = as_int(*given[k]);
        if (v < 0) v += n;
        *ends[k] = v < lo ? lo : v > hi ? hi : v;
    }
    return 0;
}

/* Byte offsets of each code point of s, plus the end. */
static int cp_offsets(const jstr *s, size_t **offs, size_t *n) {
    *offs = malloc((s->n + 1) * sizeof **offs);
    if (!*offs) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < s->n;) {
        (*offs)[k++] = i;
        meshlm_jinja_utf8_next(s->p, s->n, &i);
    }
    (*offs)[k] = s->n;
    *n = k;
    return 0;
}

static int slice_str(const jstr *s, const jv *start, const jv *stop, const jv *step, jv *out) {
    size_t *offs, n = 0;
    int64_t b, e, st;
    int rc = cp_offsets(s, &offs, &n);
    if (rc) return rc;
    rc = slice_bounds((int64_t)n, start, stop, step, &b, &e, &st);
    jbuf buf = {0};
    if (!rc) rc = meshlm_jinja_buf_put(&buf, "", 0);
    for (int64_t i = b; !rc && (st > 0 ? i < e : i > e); i += st)
        rc = meshlm_jinja_buf_put(&buf, s->p + offs[i], offs[i + 1] - offs[i]);
    free(offs);
    if (rc) {
        free(buf.p);
        return rc;
    }
    return meshlm_jinja_buf_take(&buf, out);
}

int meshlm_jinja_slice(jv obj, const jv *start, const jv *stop, const jv *step, jv *out) {
    if (obj.kind == JV_STR) return slice_str(obj.u.s, start, stop, step, out);
    if (obj.kind == JV_UNDEF) return meshlm_jinja_undefined_error(obj);
    if (obj.kind != JV_LIST)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "'%s' object is not subscriptable", meshlm_jinja_type_name(obj));
    int64_t b, e, st;
    int rc = slice_bounds((int64_t)obj.u.l->n, start, stop, step, &b, &e, &st);
    if (!rc) rc = meshlm_jinja_list_new(0, out);
    if (rc) return rc;
    out->u.l->tuple = obj.u.l->tuple;
    for (int64_t i = b; !rc && (st > 0 ? i < e : i > e); i += st) rc = meshlm_jinja_list_push(*out, meshlm_jinja_ref(obj.u.l->v[i]));
    if (rc) meshlm_jinja_unref(*out);
    return rc;
}
